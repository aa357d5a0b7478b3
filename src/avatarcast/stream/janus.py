"""Janus VideoRoom output (`Protocol: janus`, ours): the session publishes into a Janus room.

Janus (Meetecho's WebRTC server, run as a separate process) is the SFU: the session sends its
stream once, as one publisher, and any number of viewers subscribe through Janus, so a large
audience costs this server what one viewer costs. Settings: `janus_url` (the HTTP API root,
e.g. http://127.0.0.1:8088/janus), `janus_api_secret` and `janus_token` (sent with every
request when set), `janus_room_default`.

Who and where (from the createsession payload):
- room: `ProtocolOption.RoomId` (integer 1..2^53-1), else `janus_room_default` when set, else
  a room of the session's own (a number derived from the SessionId). A room that does not
  exist is created (`videocodec` h264, `audiocodec` opus); a room of the session's own is
  destroyed when the session closes, a named one is left alone.
- display name of the publisher: `ProtocolOption.Display` (1..64 characters), else the UserId.
- feed id (the publisher's `id` in the room): derived from the SessionId, so it is known before
  the join and stays the same across reconnects.

PlayStreamAddr: `<janus_url>?room=<room>&feed=<feed>`. A viewer talks to Janus's API at the URL
without its query: attach `janus.plugin.videoroom`, `join` with `ptype` subscriber, `room` and
`streams: [{"feed": <feed>}]`, answer Janus's offer, `start` (the demo page's web/janus.js does
exactly that). The API secret is never put in the URL: viewers need a Janus they may reach
without it (or a token of their own).

Media: the live stream's already-encoded H.264 and Opus go out through aiortc's H264Track and
OpusTrack of stream/webrtc.py (packetized, never encoded again), offered to Janus with
`trickle: false` (aiortc gathers all candidates first).

Failures never touch the session, its WHEP viewers or its other outputs. A server that cannot
be reached, restarts or drops the session (long poll fails, keepalive refused, ICE/DTLS fails)
is retried after 0.5 s, 1 s, 2 s ... up to 10 s, and publishing resumes in a new Janus session
with the same room and feed id (the room is created again after a restart). A refusal that a
retry cannot cure (wrong API secret or token, a room's PIN, a full room, a room without H.264)
sets state `failed` with Janus's message and stops. `status()` shows the state; each loss,
recovery and failure is logged and offered to the command channel as a notice.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit

from aiortc import RTCPeerConnection, RTCSessionDescription

from avatarcast.errors import RequestError
from avatarcast.settings import Settings
from avatarcast.stream.janus_api import (
    ID_EXISTS,
    ROOM_EXISTS,
    JanusError,
    JanusSession,
    JanusUnreachable,
)
from avatarcast.stream.webrtc import (
    H264Track,
    OpusTrack,
    _prefer,
    rtc_configuration,
    use_host_addresses,
)

if TYPE_CHECKING:
    from avatarcast.stream.packets import MediaSource
    from avatarcast.stream.target import OutputTarget

log = logging.getLogger(__name__)

ROOM_OPTION = "RoomId"
DISPLAY_OPTION = "Display"
MAX_ID = 2**53 - 1  # Janus's ids are JSON numbers; browsers hold them exactly up to here
MAX_DISPLAY_CHARS = 64
RECONNECT_MIN_S = 0.5
RECONNECT_MAX_S = 10.0
STOP_WAIT_S = 5.0  # stop() waits this long for the publisher task, then returns
WEBRTCUP_TIMEOUT_S = 15.0
QUEUE_MS = 400  # what the publisher's tracks may queue before skipping (as for WHEP viewers)
ROOM_PUBLISHERS = 16

# Refusals a retry cannot cure: unauthorized (403, 405), the room's PIN or secret (433),
# a full room (432), a bad request (429/430/434/425).
PERMANENT_CODES = frozenset({403, 405, 425, 429, 430, 432, 433, 434})


class Refused(Exception):
    """A refusal by Janus (or a room) that retrying will not change."""


def _derived_id(session_id: str, salt: str) -> int:
    digest = hashlib.sha256(f"{salt}:{session_id}".encode()).digest()
    return int.from_bytes(digest[:7], "big") % MAX_ID + 1


def room_id(target: OutputTarget, settings: Settings) -> tuple[int, bool]:
    """(room, whether it is the session's own room)."""
    value = target.option(ROOM_OPTION)
    if value is None:
        if settings.janus_room_default:
            return settings.janus_room_default, False
        return _derived_id(target.session_id, "room"), True
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= MAX_ID:
        raise RequestError(f"ProtocolOption.{ROOM_OPTION} must be an integer in 1..{MAX_ID}")
    return value, False


def feed_id(target: OutputTarget) -> int:
    return _derived_id(target.session_id, "feed")


def display_name(target: OutputTarget) -> str:
    value = target.option(DISPLAY_OPTION)
    if value is None:
        return target.user_id or f"avatarcast-{target.session_id[:8]}"
    if not isinstance(value, str) or not 0 < len(value) <= MAX_DISPLAY_CHARS:
        raise RequestError(
            f"ProtocolOption.{DISPLAY_OPTION} must be a string of 1..{MAX_DISPLAY_CHARS} characters"
        )
    return value


def _api_url(settings: Settings) -> str:
    if not settings.janus_url:
        raise RequestError(
            "Protocol janus is not available: this server has no Janus configured "
            "(setting janus_url)"
        )
    return settings.janus_url.rstrip("/")


def configured(settings: Settings) -> bool:
    return bool(settings.janus_url)


def play_url(target: OutputTarget, settings: Settings) -> str:
    """PlayStreamAddr: `<janus_url>?room=<room>&feed=<feed>`."""
    url = _api_url(settings)
    room, _ = room_id(target, settings)
    display_name(target)  # a bad Display is refused at createsession, not later
    query = urlencode({"room": room, "feed": feed_id(target)})
    return f"{url}{'&' if urlsplit(url).query else '?'}{query}"


# ---- the output ------------------------------------------------------------------------------
class JanusOutput:
    """Publishes one session's live stream into a Janus VideoRoom, reconnecting as needed."""

    name = "janus"

    def __init__(
        self,
        live: MediaSource,
        settings: Settings,
        room: int,
        feed: int,
        display: str,
        *,
        own_room: bool = False,
        target: OutputTarget | None = None,
        reconnect_max_s: float = RECONNECT_MAX_S,
    ) -> None:
        self.live = live
        self.settings = settings
        self.url = _api_url(settings)
        self.room = room
        self.feed = feed
        self.display = display
        self.own_room = own_room
        self.target = target
        self.reconnect_max_s = max(RECONNECT_MIN_S, reconnect_max_s)
        self.state = "connecting"  # connecting → streaming ↔ reconnecting; failed; stopped
        self.reconnects = 0  # successful publishes after a loss
        self.failed_attempts = 0  # failed attempts in a row
        self.last_error = ""
        self.retry_at: float | None = None
        self.room_created = False
        self._ever_published = False
        self._janus: JanusSession | None = None
        self._pc: RTCPeerConnection | None = None
        self._tracks: tuple[H264Track, OpusTrack] | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False  # the loops look at it too (see stop())
        hosts = Settings.split(settings.ice_host_addresses)
        if hosts:
            use_host_addresses(hosts)

    async def start(self) -> None:
        """Begin publishing in the background; never waits for, or fails on, Janus."""
        self._task = asyncio.create_task(self._run(), name=f"janus-{self.room}-{self.feed}")

    async def stop(self) -> None:
        # A cancellation can be lost on its way (Python 3.11's wait_for drops it when the
        # awaited call finished in the same loop step): the loops also stop on this flag,
        # and stop() does not wait for ever.
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            done, _ = await asyncio.wait({self._task}, timeout=STOP_WAIT_S)
            if not done:  # never expected; stop() returns all the same
                log.warning("janus room %s: the publisher task did not stop", self.room)
            self._task = None
        if self.own_room and self._janus is not None and not self._janus.lost.is_set():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._destroy_room(self._janus), 3.0)
        await self._leave()
        self.state = "stopped"

    @property
    def keepalives(self) -> int:
        """Keepalives the current Janus session sent (0 while not connected)."""
        return self._janus.keepalives if self._janus is not None else 0

    def status(self) -> dict[str, Any]:
        retry_in = None
        if self.state == "reconnecting" and self.retry_at is not None:
            retry_in = round(max(0.0, self.retry_at - time.monotonic()), 1)
        return {
            "name": self.name,
            "url": self.url,
            "room": self.room,
            "feed": self.feed,
            "display": self.display,
            "state": self.state,
            "reconnects": self.reconnects,
            "failed_attempts": self.failed_attempts,
            "last_error": self.last_error,
            "retry_in_s": retry_in,
        }

    # ---- the connect loop --------------------------------------------------------------------
    async def _run(self) -> None:
        backoff = RECONNECT_MIN_S
        while not self._stopping:
            try:
                await self._publish()
            except asyncio.CancelledError:
                raise
            except Refused as exc:
                self.last_error = str(exc)
                self.state = "failed"
                self.retry_at = None
                await self._leave()
                text = f"Janus room {self.room}: {self.last_error}; not retrying"
                log.warning("%s", text)
                self._notice(text)
                return
            except Exception as exc:
                self.last_error = _describe(exc)
                self.failed_attempts += 1
                await self._leave()
                if self._ever_published:
                    self.state = "reconnecting"
                if self.failed_attempts == 1:
                    text = f"Janus room {self.room}: {self.last_error}; retrying"
                    log.warning("%s", text)
                    self._notice(text)
                self.retry_at = time.monotonic() + backoff
                await asyncio.sleep(backoff)  # a network backoff: wall time is right here
                backoff = min(backoff * 2, self.reconnect_max_s)
                continue
            # Published: stay until the connection is lost.
            backoff = RECONNECT_MIN_S
            if self._ever_published:
                self.reconnects += 1
            self.failed_attempts = 0
            self.retry_at = None
            self.state = "streaming"
            text = f"Janus room {self.room}: publishing as feed {self.feed}" + (
                f" again (reconnect {self.reconnects})" if self._ever_published else ""
            )
            log.info("%s", text)
            if self._ever_published:
                self._notice(text)
            self._ever_published = True
            reason = await self._hold()
            self.last_error = reason
            self.state = "reconnecting"
            text = f"Janus room {self.room}: connection lost ({reason}); reconnecting"
            log.warning("%s", text)
            self._notice(text)
            self.failed_attempts = 0
            await self._leave()

    async def _publish(self) -> None:
        """One attempt: session, room, join, publish, until Janus says `webrtcup`."""
        try:
            await self._join_and_publish()
        except JanusError as exc:
            raise _classify(exc) from None

    async def _join_and_publish(self) -> None:
        janus = await JanusSession.open(
            self.url, api_secret=self.settings.janus_api_secret, token=self.settings.janus_token
        )
        self._janus = janus
        handle = await janus.attach()
        await self._ensure_room(janus, handle)
        join = {
            "request": "join",
            "ptype": "publisher",
            "room": self.room,
            "id": self.feed,
            "display": self.display,
        }
        await janus.message(handle, join)

        pc = RTCPeerConnection(rtc_configuration(self.settings))
        self._pc = pc
        video = H264Track(self.live, QUEUE_MS)
        audio = OpusTrack(self.live, QUEUE_MS)
        self._tracks = (video, audio)
        # Preferences before the offer: otherwise aiortc offers VP8 first and would encode.
        sending = pc.addTransceiver(video, direction="sendonly")
        sending.setCodecPreferences(_prefer("video", "video/H264"))
        pc.addTransceiver(audio, direction="sendonly").setCodecPreferences(
            _prefer("audio", "audio/opus")
        )
        # Janus relays its subscribers' keyframe requests (PLI) to the publisher when one
        # joins; aiortc would only flag its (unused) encoder: ask the live stream for an IDR
        # instead (rate-limited there), so a new viewer starts at once, not within a GOP.
        setattr(sending.sender, "_send_keyframe", self.live.request_keyframe)  # noqa: B010
        failed = asyncio.Event()

        @pc.on("connectionstatechange")
        def on_state() -> None:
            if pc.connectionState in ("failed", "closed"):
                failed.set()

        await pc.setLocalDescription(await pc.createOffer())  # gathers every candidate
        offer = {"type": "offer", "sdp": pc.localDescription.sdp, "trickle": False}
        publish = {"request": "publish", "audiocodec": "opus", "videocodec": "h264"}
        _, jsep = await janus.message(handle, publish, offer)
        if not jsep or "sdp" not in jsep:
            raise JanusError(0, "Janus answered the publish without an SDP answer")
        if "h264" not in str(jsep["sdp"]).lower():
            raise Refused(
                f"room {self.room} does not accept H.264 (create it with videocodec h264)"
            )
        await pc.setRemoteDescription(RTCSessionDescription(sdp=jsep["sdp"], type="answer"))
        self.live.request_keyframe()
        await self._wait_webrtcup(janus, failed)

    async def _wait_webrtcup(self, janus: JanusSession, failed: asyncio.Event) -> None:
        deadline = time.monotonic() + WEBRTCUP_TIMEOUT_S
        while not self._stopping:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise JanusError(0, "no WebRTC connection to Janus within 15 s")
            if failed.is_set():
                raise JanusError(0, "the WebRTC connection to Janus failed")
            if janus.lost.is_set():
                raise JanusUnreachable(0, janus.lost_reason)
            try:
                async with asyncio.timeout(min(remaining, 0.25)):
                    event = await janus.events.get()
            except TimeoutError:
                continue
            if event.get("janus") == "webrtcup":
                return
            if event.get("janus") == "hangup":
                raise JanusError(0, f"Janus hung up: {event.get('reason', '')}")
        raise asyncio.CancelledError  # stop() (its cancellation was lost on the way)

    async def _hold(self) -> str:
        """While published (the Janus session sends its own keepalives): why it was lost."""
        janus, pc = self._janus, self._pc
        assert janus is not None and pc is not None
        while not self._stopping:
            if janus.lost.is_set():
                return janus.lost_reason or "the Janus session was lost"
            if pc.connectionState in ("failed", "closed"):
                return f"WebRTC connection {pc.connectionState}"
            try:
                async with asyncio.timeout(0.5):
                    event = await janus.events.get()
            except TimeoutError:
                continue
            kind = event.get("janus")
            if kind == "hangup":
                return f"Janus hung up ({event.get('reason', '')})"
            if kind == "detached":
                return "Janus detached the publisher"
            data = event.get("plugindata", {}).get("data", {})
            if data.get("videoroom") == "destroyed":
                return f"room {self.room} was destroyed"
            if data.get("leaving") == "ok" or data.get("unpublished") == "ok":
                return "Janus removed the publisher"
        raise asyncio.CancelledError  # stop() (its cancellation was lost on the way)

    async def _ensure_room(self, janus: JanusSession, handle: int) -> None:
        data, _ = await janus.message(handle, {"request": "exists", "room": self.room})
        if data.get("exists"):
            return
        try:
            await janus.message(
                handle,
                {
                    "request": "create",
                    "room": self.room,
                    "description": f"avatarcast {self.display}"[:100],
                    "publishers": ROOM_PUBLISHERS,
                    "videocodec": "h264",
                    "audiocodec": "opus",
                    "permanent": False,
                },
            )
            self.room_created = True
        except JanusError as exc:
            if exc.code != ROOM_EXISTS:  # created meanwhile by someone else: fine
                raise

    async def _destroy_room(self, janus: JanusSession) -> None:
        handle = await janus.attach()
        await janus.message(handle, {"request": "destroy", "room": self.room})

    async def _leave(self) -> None:
        pc, self._pc = self._pc, None
        tracks, self._tracks = self._tracks, None
        janus, self._janus = self._janus, None
        if tracks is not None:
            for track in tracks:
                track.stop()
        if pc is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(pc.close(), 5.0)
        if janus is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(janus.close(), 5.0)

    def _notice(self, text: str, state: str | None = None) -> None:
        if self.target is not None:
            self.target.report(self.name, state or self.state, self.reconnects, text)


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return text if text else type(exc).__name__


def _classify(exc: JanusError) -> Exception:
    """A refusal retrying cannot cure becomes `Refused`; others stay retryable."""
    if not isinstance(exc, JanusUnreachable) and exc.code in PERMANENT_CODES:
        return Refused(_describe(exc))
    if exc.code == ID_EXISTS:  # our previous session is still there until it times out
        return JanusError(exc.code, f"{exc.reason}: the previous publisher has not left yet")
    return exc


def make_output(target: OutputTarget, settings: Settings, live: MediaSource) -> JanusOutput:
    room, own = room_id(target, settings)
    return JanusOutput(
        live,
        settings,
        room,
        feed_id(target),
        display_name(target),
        own_room=own,
        target=target,
    )
