"""LiveKit output (`Protocol: trtc`): the session joins a LiveKit room as a participant.

The open-source counterpart of the cloud's RTC option. Settings: `livekit_url` (ws:// or
wss://), `livekit_api_key`, `livekit_api_secret`, `livekit_viewer_token_ttl_s`.

Who and where (from the createsession payload):
- room: `ProtocolOption.RoomName` (string, 1..128 chars); default `avatarcast-<SessionId>`.
- identity of the publishing participant: `UserId`.
- viewer identity (inside the PlayStreamAddr token): `viewer-<SessionId>`.

PlayStreamAddr: `<livekit_url>?room=<room>&token=<viewer token>` (URL-encoded). A viewer
takes `token` out of the query and connects to the URL without its query (a LiveKit client
appends its own path and query). The viewer token is subscribe-only (no publish, no data)
and lives `livekit_viewer_token_ttl_s`. LiveKit allows one participant per identity, so the
token serves one viewer at a time; a second viewer with it replaces the first.

Media: the LiveKit SDK encodes itself (VP8 by default), so it takes *raw* pictures: the
engine's YUV frames (packed 2W x H when the matte is on, so LiveKit carries it too) go to a
`VideoSource` as I420, the 16 kHz mono PCM of the live stream's audio fan-out to an
`AudioSource`. This is a second encode per session, inherent in the SDK.

Failures never touch the session: `start()` returns at once, a connect loop retries with
capped exponential backoff, and `status()` tells statsession what happened.

NOT run against a real LiveKit server (none can be installed here): room join, track
publication and a remote subscriber receiving the media. Tested offline: tokens, play URL,
frame conversion, the publishing loop against the SDK's real sources and tracks with a stand-in
room, and a real connect failure (closed local port).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit

with warnings.catch_warnings():
    # livekit's generated code is protobuf-5 gencode; we pin protobuf 6 (see THIRD_PARTY.md),
    # which runs it fine but warns once per .proto file at import.
    warnings.filterwarnings("ignore", "Protobuf gencode version", UserWarning)
    from livekit import api, rtc

from avatarcast import SAMPLE_RATE_HZ
from avatarcast.errors import RequestError
from avatarcast.media import Pcm
from avatarcast.render.frame import YuvFrame
from avatarcast.stream.fanout import FanOutClosed

if TYPE_CHECKING:
    from avatarcast.settings import Settings
    from avatarcast.stream.packets import MediaSource, RawFrame
    from avatarcast.stream.target import OutputTarget

log = logging.getLogger(__name__)

ROOM_OPTION = "RoomName"  # ProtocolOption field naming the room
MAX_ROOM_CHARS = 128
PUBLISHER_TOKEN_TTL_S = 3600  # only needs to outlive the join; the server refreshes it
CONNECT_TIMEOUT_S = 10.0
BACKOFF_S = (1.0, 2.0, 4.0, 8.0, 15.0, 30.0)  # then 30 s forever
AUDIO_QUEUE_MS = 200  # SDK-side audio buffer: small, so audio stays close to the video
STOP_WAIT_S = 5.0  # stop() waits this long for its tasks, then returns all the same


# ---- configuration, names, tokens -----------------------------------------------------------
@dataclass(frozen=True)
class LiveKitConfig:
    url: str
    api_key: str
    api_secret: str
    viewer_ttl_s: int


def config(settings: Settings) -> LiveKitConfig:
    """The LiveKit settings, or RequestError (100001) when they are missing or unusable.

    Called from `play_url`, which the manager runs inside `create` before the session is
    registered: a trtc createsession on an unconfigured server fails at once with 100001.
    """
    url, key, secret = settings.livekit_url, settings.livekit_api_key, settings.livekit_api_secret
    if not (url and key and secret):
        raise RequestError(
            "LiveKit is not configured: the server needs livekit_url, livekit_api_key and "
            "livekit_api_secret for Protocol 'trtc'"
        )
    if urlsplit(url).scheme not in ("ws", "wss", "http", "https"):
        raise RequestError("LiveKit is not configured: livekit_url must be ws:// or wss://")
    if settings.livekit_viewer_token_ttl_s < 1:
        raise RequestError("LiveKit is not configured: livekit_viewer_token_ttl_s must be > 0")
    return LiveKitConfig(url, key, secret, settings.livekit_viewer_token_ttl_s)


def configured(settings: Settings) -> bool:
    """Whether trtc sessions can be created (the demo page offers LiveKit only then)."""
    try:
        config(settings)
    except RequestError:
        return False
    return True


def room_name(target: OutputTarget) -> str:
    """`ProtocolOption.RoomName`, or a room of the session's own."""
    name = target.option(ROOM_OPTION)
    if name is None:
        return f"avatarcast-{target.session_id}"
    if not isinstance(name, str) or not 0 < len(name) <= MAX_ROOM_CHARS:
        raise RequestError(
            f"ProtocolOption.{ROOM_OPTION} must be a string of 1..{MAX_ROOM_CHARS} characters"
        )
    return name


def viewer_identity(target: OutputTarget) -> str:
    return f"viewer-{target.session_id}"


def publisher_token(cfg: LiveKitConfig, room: str, identity: str) -> str:
    """Join + publish; no subscribe: the avatar never needs the room's other media."""
    grants = api.VideoGrants(
        room_join=True, room=room, can_publish=True, can_subscribe=False, can_publish_data=True
    )
    return (
        api.AccessToken(cfg.api_key, cfg.api_secret)
        .with_identity(identity)
        .with_name(identity)
        .with_grants(grants)
        .with_ttl(timedelta(seconds=PUBLISHER_TOKEN_TTL_S))
        .to_jwt()
    )


def viewer_token(cfg: LiveKitConfig, room: str, identity: str) -> str:
    """Subscribe-only: a leaked play URL cannot inject media or data into the room."""
    grants = api.VideoGrants(
        room_join=True, room=room, can_publish=False, can_subscribe=True, can_publish_data=False
    )
    return (
        api.AccessToken(cfg.api_key, cfg.api_secret)
        .with_identity(identity)
        .with_grants(grants)
        .with_ttl(timedelta(seconds=cfg.viewer_ttl_s))
        .to_jwt()
    )


def play_url(target: OutputTarget, settings: Settings) -> str:
    """PlayStreamAddr: `<livekit_url>?room=<room>&token=<viewer token>`."""
    cfg = config(settings)
    room = room_name(target)
    query = urlencode({"room": room, "token": viewer_token(cfg, room, viewer_identity(target))})
    return f"{cfg.url}{'&' if urlsplit(cfg.url).query else '?'}{query}"


# ---- frame conversion ------------------------------------------------------------------------
def video_frame(frame: YuvFrame) -> rtc.VideoFrame:
    """A YuvFrame is already I420 (Y, then U, then V, tightly packed): hand its bytes over.

    Copied (`tobytes`, ~0.1 ms for 1080x960) so the SDK never sees memory numpy may reuse.
    """
    return rtc.VideoFrame(frame.width, frame.height, rtc.VideoBufferType.I420, frame.data.tobytes())


def audio_frame(pcm: Pcm) -> rtc.AudioFrame:
    return rtc.AudioFrame(pcm.astype("<i2").tobytes(), SAMPLE_RATE_HZ, 1, int(pcm.size))


# ---- the per-frame hook ----------------------------------------------------------------------
def attach_frame_listener(live: MediaSource, fn: Callable[[RawFrame], None]) -> Callable[[], None]:
    """Get every engine frame after it is published; returns the detach function."""
    live.frame_listeners.append(fn)

    def remove() -> None:
        if fn in live.frame_listeners:
            live.frame_listeners.remove(fn)

    return remove


# ---- the output ------------------------------------------------------------------------------
class LiveKitOutput:
    """Publishes one session's live stream into a LiveKit room, reconnecting as needed."""

    name = "livekit"

    def __init__(
        self,
        live: MediaSource,
        cfg: LiveKitConfig,
        room: str,
        identity: str,
        *,
        video_bitrate_kbps: int = 1500,
        backoff_s: tuple[float, ...] = BACKOFF_S,
        connect_timeout_s: float = CONNECT_TIMEOUT_S,
        # rtc.Room, or a stand-in with its connect/disconnect/on/local_participant (tests).
        room_factory: Callable[[], Any] = rtc.Room,
    ) -> None:
        self.live = live
        self.cfg = cfg
        self.room = room
        self.identity = identity
        self.video_bitrate_kbps = video_bitrate_kbps
        self.backoff_s = backoff_s
        self.connect_timeout_s = connect_timeout_s
        self.room_factory = room_factory
        self.state = "idle"  # idle, connecting, connected, reconnecting, waiting, stopped
        self.last_error = ""
        self.connects = 0  # successful joins
        self.failures = 0  # failed joins and lost connections
        self.video_frames = 0  # frames handed to the SDK
        self.audio_frames = 0
        self.frame_errors = 0
        self.retry_at: float | None = None  # time.monotonic() of the next attempt
        self._video_source: rtc.VideoSource | None = None
        self._audio_source: rtc.AudioSource | None = None
        self._room: Any = None  # the rtc.Room while joined
        self._tasks: list[asyncio.Task[None]] = []
        self._detach: Callable[[], None] | None = None
        self._stopping = False
        self._lost: asyncio.Event | None = None  # set when the joined room is lost

    @property
    def publishing(self) -> bool:
        return self.state in ("connected", "reconnecting") and self._room is not None

    async def start(self) -> None:
        """Begin connecting in the background; never waits for, or fails on, the server."""
        opts = self.live.options
        self._video_source = rtc.VideoSource(opts.width, opts.height)
        self._audio_source = rtc.AudioSource(SAMPLE_RATE_HZ, 1, queue_size_ms=AUDIO_QUEUE_MS)
        audio = self.live.audio.subscribe(max_queue=25)  # 1 s; drop-oldest beyond
        self._detach = attach_frame_listener(self.live, self._on_frame)
        self.live.flush_listeners.append(self._on_flush)
        self._tasks = [
            asyncio.create_task(self._connect_loop(), name=f"livekit-{self.room}"),
            asyncio.create_task(self._audio_pump(audio), name=f"livekit-audio-{self.room}"),
        ]

    async def stop(self) -> None:
        # The loops also look at this flag: a cancellation swallowed on its way (Python
        # 3.11's wait_for returns the result when the awaited call finished in the same loop
        # step, and an SDK may catch it) must not keep a loop, and so stop(), running.
        self._stopping = True
        if self._lost is not None:
            self._lost.set()
        if self._detach is not None:
            self._detach()
            self._detach = None
        if self._on_flush in self.live.flush_listeners:
            self.live.flush_listeners.remove(self._on_flush)
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=STOP_WAIT_S)
            for task in pending:  # never expected; stop() returns all the same
                log.warning("livekit %s: %s did not stop", self.room, task.get_name())
        self._tasks = []
        await self._leave()
        for source in (self._video_source, self._audio_source):
            if source is not None:
                await source.aclose()
        self._video_source = self._audio_source = None
        self.state = "stopped"

    @property
    def audio_queued_s(self) -> float:
        """Audio handed to the SDK and not played out yet (its buffer is AUDIO_QUEUE_MS)."""
        source = self._audio_source
        return source.queued_duration if source is not None else 0.0

    def status(self) -> dict[str, Any]:
        retry_in = None
        if self.state == "waiting" and self.retry_at is not None:
            retry_in = round(max(0.0, self.retry_at - time.monotonic()), 1)
        return {
            "name": self.name,
            "state": self.state,
            "url": self.cfg.url,
            "room": self.room,
            "identity": self.identity,
            "connects": self.connects,
            "failures": self.failures,
            "last_error": self.last_error,
            "retry_in_s": retry_in,
            "video_frames": self.video_frames,
            "audio_frames": self.audio_frames,
        }

    # ---- media -------------------------------------------------------------------------------
    def _on_frame(self, frame: RawFrame) -> None:
        """On the event loop, once per frame: capture is a synchronous ~0.1 ms FFI copy."""
        if not self.publishing or self._video_source is None:
            return  # nobody to send to: skip the copy
        try:
            self._video_source.capture_frame(video_frame(frame.video))
            self.video_frames += 1
        except Exception as exc:  # the SDK's problem must not reach the frame loop
            self.frame_errors += 1
            if self.frame_errors == 1:
                log.warning("livekit %s: video capture failed: %s", self.room, exc)

    def _on_flush(self) -> None:
        """An interrupt: the speech in the SDK's audio buffer (up to 200 ms) must not play."""
        if self._audio_source is not None:
            self._audio_source.clear_queue()

    async def _audio_pump(self, sub: Any) -> None:
        try:
            while not self._stopping:
                chunk = await sub.get()
                source = self._audio_source
                if not self.publishing or source is None:
                    continue
                try:
                    # Waits only while the SDK's 200 ms buffer is full; never for long.
                    async with asyncio.timeout(1.0):
                        await source.capture_frame(audio_frame(chunk.pcm))
                    self.audio_frames += 1
                except Exception as exc:  # TimeoutError included
                    self.frame_errors += 1
                    if self.frame_errors == 1:
                        log.warning("livekit %s: audio capture failed: %r", self.room, exc)
        except FanOutClosed:
            pass  # the live stream ended; stop() follows from the session
        finally:
            sub.close()

    # ---- connection --------------------------------------------------------------------------
    async def _connect_loop(self) -> None:
        attempt = 0
        while not self._stopping:
            lost = self._lost = asyncio.Event()
            try:
                self.state = "connecting"
                async with asyncio.timeout(self.connect_timeout_s + 5):
                    await self._join(lost)
                attempt = 0
                await lost.wait()
                if self._stopping:
                    return
                self.last_error = "disconnected from the LiveKit server"
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.last_error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            self.failures += 1
            log.warning("livekit %s: %s; retrying", self.room, self.last_error)
            await self._leave()
            delay = self.backoff_s[min(attempt, len(self.backoff_s) - 1)]
            attempt += 1
            self.state = "waiting"
            self.retry_at = time.monotonic() + delay
            await asyncio.sleep(delay)

    async def _join(self, lost: asyncio.Event) -> None:
        assert self._video_source is not None and self._audio_source is not None
        room = self.room_factory()
        self._room = room

        def on_state(state: str) -> Callable[..., None]:
            def set_state(*_: Any) -> None:
                if self._room is room and self.state != "stopped":
                    self.state = state

            return set_state

        # The SDK resumes short outages itself (reconnecting → reconnected); only a final
        # "disconnected" sends us back to our own loop.
        room.on("reconnecting", on_state("reconnecting"))
        room.on("reconnected", on_state("connected"))
        room.on("disconnected", lambda *_: lost.set())
        token = publisher_token(self.cfg, self.room, self.identity)
        options = rtc.RoomOptions(auto_subscribe=False, connect_timeout=self.connect_timeout_s)
        await room.connect(self.cfg.url, token, options)
        video = rtc.LocalVideoTrack.create_video_track("avatar", self._video_source)
        audio = rtc.LocalAudioTrack.create_audio_track("voice", self._audio_source)
        await room.local_participant.publish_track(
            video,
            rtc.TrackPublishOptions(
                source=rtc.TrackSource.SOURCE_CAMERA,
                # One layer: simulcast would triple the encoding work for a single-viewer room.
                simulcast=False,
                video_encoding=rtc.VideoEncoding(
                    max_framerate=self.live.options.fps,
                    max_bitrate=self.video_bitrate_kbps * 1000,
                ),
            ),
        )
        await room.local_participant.publish_track(
            audio, rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
        )
        self.connects += 1
        self.retry_at = None
        self.state = "connected"
        log.info("livekit %s: publishing as %s", self.room, self.identity)

    async def _leave(self) -> None:
        room, self._room = self._room, None
        if room is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(room.disconnect(), 5.0)


def make_output(target: OutputTarget, settings: Settings, live: MediaSource) -> LiveKitOutput:
    cfg = config(settings)  # raises 100001 if unconfigured (normally caught by play_url first)
    return LiveKitOutput(
        live,
        cfg,
        room_name(target),
        target.user_id,
        video_bitrate_kbps=settings.video_bitrate_kbps,
    )
