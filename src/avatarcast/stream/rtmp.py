"""RTMP push output (`Protocol: rtmp`): the session's H.264 + AAC as FLV to an RTMP server.

Where it goes: `ProtocolOption.CssCustomPushUrl` when the client gives one and its host is
allowed (`rtmp_push_hosts`; by default only the ingest's host), else the configured
ingest `rtmp_ingest_url` + "/" + the stream key (the SessionId). `PlayStreamAddr` comes from
`rtmp_play_url_template` (`{stream_key}`, `{session_id}`), or is the push URL itself (what
nginx-rtmp, SRS and most servers play) when no template is set or a custom URL was given.

How: the output subscribes to the live stream's fan-outs (so it starts at a keyframe and, if it
falls behind, skips to the next one without slowing anyone) and hands each slot to its own
writer thread (`SerialWorker`), which copies the H.264 packets and encodes AAC (`LiveMuxer`).

When the server goes away: the failed connection is closed, and the writer reconnects after
0.5 s, 1 s, 2 s ... up to `rtmp_reconnect_max_s`; meanwhile slots are dropped. Once connected it
asks the live stream for a keyframe and resumes there, with timestamps from 0 again (a new
publish). The session, its viewers and its other outputs never wait for any of this.
`status()` shows the state; each loss and recovery is logged and offered to the command
channel as a notice (when the drive channel has a `notice` method).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from avatarcast.errors import RequestError
from avatarcast.stream.fanout import FanOutClosed, Subscription
from avatarcast.stream.packets import AudioChunk, MediaSource, VideoPacket
from avatarcast.stream.remux import LiveMuxer, SerialWorker, access_unit

if TYPE_CHECKING:
    from avatarcast.settings import Settings
    from avatarcast.stream.target import OutputTarget

log = logging.getLogger(__name__)

RECONNECT_MIN_S = 0.5
VIDEO_QUEUE = 50  # 2 s of frames waiting for the writer; beyond that, skip to a keyframe
AUDIO_QUEUE = 100
STALL_S = 5.0  # a write blocked this long is reported as stalled
STOP_WAIT_S = 5.0


# ---- URLs ------------------------------------------------------------------------------------
def _custom_url(target: OutputTarget) -> str:
    url = target.option("CssCustomPushUrl")
    return url.strip() if isinstance(url, str) else ""


def allowed_push_hosts(settings: Settings) -> list[str]:
    """`host` or `host:port` entries a CssCustomPushUrl may name: the setting
    `rtmp_push_hosts` ("*" allows any), or else the host of `rtmp_ingest_url` alone."""
    listed = [h.lower().rstrip(".") for h in settings.split(settings.rtmp_push_hosts)]
    if listed:
        return listed
    host = urlsplit(settings.rtmp_ingest_url).hostname if settings.rtmp_ingest_url else None
    return [host.rstrip(".")] if host else []


def check_push_host(url: str, settings: Settings) -> None:
    """RequestError (100001) unless `url`'s host is allowed.

    Without this, a key holder could make the server open a connection to any address it
    can reach (an internal service, a metadata endpoint): the push URL is the client's.
    """
    try:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "rtmps" else 1935)
    except ValueError:
        raise RequestError("ProtocolOption.CssCustomPushUrl is not a valid URL") from None
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise RequestError("ProtocolOption.CssCustomPushUrl has no host")
    allowed = allowed_push_hosts(settings)
    if "*" not in allowed and host not in allowed and f"{host}:{port}" not in allowed:
        shown = ", ".join(allowed) or "none"
        raise RequestError(
            f"ProtocolOption.CssCustomPushUrl: pushing to {host}:{port} is not allowed by this "
            f"server (allowed hosts: {shown}; setting rtmp_push_hosts)"
        )


def push_url(target: OutputTarget, settings: Settings) -> str:
    """Where this session's stream is pushed; RequestError (100001) if nowhere."""
    custom = _custom_url(target)
    if custom:
        if not custom.startswith(("rtmp://", "rtmps://")):
            raise RequestError("ProtocolOption.CssCustomPushUrl must be an rtmp:// URL")
        check_push_host(custom, settings)
        return custom
    if not settings.rtmp_ingest_url:
        raise RequestError(
            "Protocol rtmp needs ProtocolOption.CssCustomPushUrl: this server has no RTMP "
            "ingest configured (setting rtmp_ingest_url)"
        )
    return f"{settings.rtmp_ingest_url.rstrip('/')}/{target.session_id}"


def play_url(target: OutputTarget, settings: Settings) -> str:
    """PlayStreamAddr of an rtmp session."""
    url = push_url(target, settings)
    if _custom_url(target) or not settings.rtmp_play_url_template:
        return url
    sid = target.session_id
    return settings.rtmp_play_url_template.format(stream_key=sid, session_id=sid)


def redact(url: str) -> str:
    """A push URL fit for status and logs: query strings often hold publish secrets."""
    return url.split("?", 1)[0]


# ---- the output ------------------------------------------------------------------------------
class RtmpOutput:
    name = "rtmp"

    def __init__(
        self,
        live: MediaSource,
        url: str,
        *,
        target: OutputTarget | None = None,
        reconnect_max_s: float = 10.0,
        audio_bitrate_kbps: int = 64,
    ) -> None:
        self.live = live
        self.url = url
        self.target = target
        self.reconnect_max_s = max(RECONNECT_MIN_S, reconnect_max_s)
        self.audio_bitrate_kbps = audio_bitrate_kbps
        # Writer-thread state (read by status() from the loop: plain attribute reads).
        self.state = "connecting"  # connecting → streaming ↔ reconnecting → stopped
        self.reconnects = 0  # successful connections after a loss
        self.failed_attempts = 0  # failed connection attempts in a row
        self.last_error = ""
        self.frames_sent = 0  # over all connections
        self._mux: LiveMuxer | None = None
        self._headers: bytes | None = None  # a keyframe access unit: SPS/PPS for new connections
        self._backoff = RECONNECT_MIN_S
        self._next_attempt = 0.0
        self._ever_connected = False
        # Loop state.
        self._video: Subscription[VideoPacket] | None = None
        self._audio: Subscription[AudioChunk] | None = None
        self._worker: SerialWorker | None = None
        self._task: asyncio.Task[None] | None = None
        self._job_since: float | None = None

    @property
    def first_slot(self) -> int | None:
        """Live-stream slot at time 0 of the current connection (None while down)."""
        mux = self._mux
        return mux.first_slot if mux is not None else None

    async def start(self) -> None:
        """Begin pushing; returns at once (connecting happens on the writer thread)."""
        self._video = self.live.video.subscribe(VIDEO_QUEUE)
        self._audio = self.live.audio.subscribe(AUDIO_QUEUE)
        self._worker = SerialWorker(f"rtmp-{self.target.session_id if self.target else 'out'}")
        self._task = asyncio.create_task(self._pump(), name="rtmp-pump")
        self.live.request_keyframe()  # the subscription starts at a keyframe: make it soon

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for sub in (self._video, self._audio):
            if sub is not None:
                sub.close()
        if self._worker is not None:
            # After any write in flight; a server that hangs cannot hold the close up.
            closing = self._worker.submit(self._disconnect)
            self._worker.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(closing, STOP_WAIT_S)
        self.state = "stopped"

    def status(self) -> dict[str, Any]:
        since = self._job_since
        return {
            "name": self.name,
            "url": redact(self.url),
            "state": self.state,
            "reconnects": self.reconnects,
            "failed_attempts": self.failed_attempts,
            "last_error": self.last_error,
            "frames_sent": self.frames_sent,
            "frames_skipped": self._video.dropped if self._video is not None else 0,
            "stalled": since is not None and time.monotonic() - since > STALL_S,
        }

    # ---- loop side -------------------------------------------------------------------------
    async def _pump(self) -> None:
        assert self._video is not None and self._audio is not None and self._worker is not None
        while True:
            try:
                vp = await self._video.get()
            except FanOutClosed:
                return
            audio: list[AudioChunk] = []
            with contextlib.suppress(FanOutClosed):
                while (chunk := self._audio.get_nowait()) is not None:
                    audio.append(chunk)
            # Handed to the writer thread without waiting for it; while it is behind (more
            # than the worker's max_in_flight slots), newer slots wait in the subscription
            # (bounded), and a write that hangs shows as `stalled`.
            await self._worker.feed(functools.partial(self._push, vp, audio), self._on_events)

    def _on_events(self, events: list[str]) -> None:
        for event in events:
            self._on_event(event)

    def _on_event(self, event: str) -> None:
        where = redact(self.url)
        if event == "connected" or event == "reconnected":
            self.live.request_keyframe()  # resume within a fraction of a second
            if event == "reconnected":
                text = f"RTMP push to {where} resumed (reconnect {self.reconnects})"
                log.info("%s", text)
                self._notice(text, state="streaming")
            return
        if event == "lost":
            text = f"RTMP push to {where} lost ({self.last_error}); reconnecting"
        else:  # first failed attempt in a row
            text = f"RTMP push to {where} cannot connect ({self.last_error}); retrying"
        log.warning("%s", text)
        self._notice(text)

    def _notice(self, text: str, state: str | None = None) -> None:
        if self.target is not None:
            # The event is newer than `self.state`, which the writer thread sets.
            self.target.report(self.name, state or self.state, self.reconnects, text)

    # ---- writer thread ---------------------------------------------------------------------
    def _push(self, vp: VideoPacket, audio: list[AudioChunk]) -> list[str] | None:
        """Write one slot, connecting first when due; returns events for the loop (None when
        there are none: nothing goes back to the loop)."""
        self._job_since = time.monotonic()
        try:
            return self._write_slot(vp, audio) or None
        finally:
            self._job_since = None

    def _write_slot(self, vp: VideoPacket, audio: list[AudioChunk]) -> list[str]:
        events: list[str] = []
        if vp.keyframe:
            self._headers = access_unit(vp)
        if self._mux is None:
            if self._headers is None or time.monotonic() < self._next_attempt:
                return events
            try:
                self._mux = LiveMuxer(
                    self.url,
                    "flv",
                    self._headers,
                    fps=self.live.options.fps,
                    audio_bitrate_kbps=self.audio_bitrate_kbps,
                )
            except Exception as exc:
                return self._failed(exc, lost=False)
            if self._ever_connected:
                self.reconnects += 1
            events.append("reconnected" if self._ever_connected else "connected")
            self._ever_connected = True
        try:
            if self._mux.write(vp, audio):
                self.frames_sent += 1
                if self.state != "streaming":
                    self.state = "streaming"
                    self.failed_attempts = 0
                    self._backoff = RECONNECT_MIN_S
        except Exception as exc:
            return events + self._failed(exc, lost=True)
        return events

    def _failed(self, exc: Exception, *, lost: bool) -> list[str]:
        self._disconnect()
        self.last_error = str(exc) or type(exc).__name__
        self.failed_attempts += 1
        if self._ever_connected:
            self.state = "reconnecting"
        self._next_attempt = time.monotonic() + self._backoff
        self._backoff = min(self._backoff * 2, self.reconnect_max_s)
        if lost:
            return ["lost"]
        return ["failed"] if self.failed_attempts == 1 else []

    def _disconnect(self) -> None:
        mux, self._mux = self._mux, None
        if mux is not None:
            with contextlib.suppress(Exception):  # the server may already be gone
                mux.close()


def configured(settings: Settings) -> bool:
    """Whether rtmp sessions need no push URL of their own (the demo page offers RTMP then)."""
    return bool(settings.rtmp_ingest_url)


def make_output(target: OutputTarget, settings: Settings, live: MediaSource) -> RtmpOutput:
    return RtmpOutput(
        live,
        push_url(target, settings),
        target=target,
        reconnect_max_s=settings.rtmp_reconnect_max_s,
        audio_bitrate_kbps=settings.audio_bitrate_kbps,
    )
