"""WebRTC viewers of a live stream (aiortc): one peer connection per viewer, media encoded once.

Each viewer gets two tracks whose `recv()` hands aiortc packets that the session already
encoded: H.264 `av.Packet`s from the video fan-out and Opus `av.Packet`s from the audio
fan-out. aiortc then only packetizes them into RTP, so a viewer costs packetization and
SRTP, not an encoder. The price: aiortc cannot honour a viewer's keyframe request (PLI), so
the stream carries an IDR at least every `keyframe_interval_s` with SPS/PPS repeated, and a
joining viewer asks the live stream for one IDR (rate-limited) so it need not wait a GOP.

A viewer whose sender falls behind loses frames from its own bounded queues (sized in ms)
and skips to the next keyframe; the session and the other viewers never wait for it. A
viewer leaves on `close(resource_id)` (WHEP DELETE), when its connection fails or closes,
when it has not connected within `connect_timeout_s`, or when the live stream ends.

ICE: the servers offered come from settings and are empty by default (no public STUN server
is ever contacted unless configured); `ice_host_addresses` limits the host candidates.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

import aioice.ice
import av
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCRtpSender,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError
from aiortc.rtcrtpparameters import RTCRtpCodecCapability

from avatarcast.errors import QuotaError, RequestError, SessionClosed
from avatarcast.settings import Settings
from avatarcast.stream.fanout import FanOutClosed, Subscription
from avatarcast.stream.packets import AudioChunk, MediaSource, VideoPacket

log = logging.getLogger(__name__)

FRAME_MS = 40  # one video frame / one audio chunk of the live stream

T = TypeVar("T")


# ---- ICE host addresses ----------------------------------------------------------------------
_original_get_host_addresses = aioice.ice.get_host_addresses


def use_host_addresses(addresses: Sequence[str]) -> None:
    """Make aioice gather host candidates on exactly `addresses` (process-wide); [] restores.

    Why a patch: aioice enumerates the machine's interfaces in the module-level function
    `aioice.ice.get_host_addresses` and always leaves out 127.0.0.1, and aiortc exposes no
    per-connection option. So on a loopback-only host (tests, a network namespace) no
    candidate is gathered at all, and on a multi-homed server one may want to offer only
    the public interface. This one function is swapped, in this one place; it applies to
    every peer connection of the process (the setting is process-wide too).
    """
    if not addresses:
        aioice.ice.get_host_addresses = _original_get_host_addresses
        return
    parsed = [ipaddress.ip_address(a) for a in addresses]  # ValueError on a bad address
    fixed = [str(a) for a in parsed]

    def configured(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        return [
            s
            for s, a in zip(fixed, parsed, strict=True)
            if (a.version == 4 and use_ipv4) or (a.version == 6 and use_ipv6)
        ]

    aioice.ice.get_host_addresses = configured


def ice_servers(settings: Settings) -> list[RTCIceServer]:
    """The configured STUN/TURN servers; empty unless `ice_servers` is set."""
    urls = Settings.split(settings.ice_servers)
    if not urls:
        return []
    return [
        RTCIceServer(
            urls=urls,
            username=settings.ice_username or None,
            credential=settings.ice_credential or None,
        )
    ]


def rtc_configuration(settings: Settings) -> RTCConfiguration:
    # Always explicit: aiortc's default configuration would contact a public STUN server.
    return RTCConfiguration(iceServers=ice_servers(settings))


# ---- tracks ----------------------------------------------------------------------------------
class _PacketTrack(MediaStreamTrack, Generic[T]):
    """A track fed by one fan-out of a live stream, subscribed on the first `recv()`.

    Subscribing then, i.e. once DTLS is up and aiortc starts sending, starts the viewer with
    what is live at that moment, not with media queued during ICE/DTLS setup (stale, or
    dropped by then, and only adding latency at the viewer).
    """

    def __init__(self, live: MediaSource, queue_ms: int) -> None:
        super().__init__()
        self._live = live
        self._max_queue = max(2, queue_ms // FRAME_MS)
        self._sub: Subscription[T] | None = None

    @property
    def dropped(self) -> int:
        return self._sub.dropped if self._sub is not None else 0

    def _subscribe(self) -> Subscription[T]:
        raise NotImplementedError

    def _subscription(self) -> Subscription[T] | None:
        """The subscription while the track is live (made on the first call), else None."""
        if self._sub is None and self.readyState == "live":
            self._sub = self._subscribe()
        return self._sub if self.readyState == "live" else None

    def stop(self) -> None:
        if self._sub is not None:
            self._sub.close()
        super().stop()


class H264Track(_PacketTrack[VideoPacket]):
    """Pre-encoded H.264 of a live stream; starts at a keyframe, skips to one after overflow."""

    kind = "video"

    def _subscribe(self) -> Subscription[VideoPacket]:
        # Ask for an IDR now so this viewer starts decoding at once instead of within a GOP.
        sub = self._live.video.subscribe(self._max_queue)
        self._live.request_keyframe()
        return sub

    async def recv(self) -> av.Packet:
        while (sub := self._subscription()) is not None:
            try:
                vp = await sub.get()
            except FanOutClosed:
                break
            if len(vp.packets) == 1:
                return vp.packets[0]
            if vp.packets:  # never with x264 zerolatency; kept correct anyway: one access unit
                joined = av.Packet(b"".join(bytes(p) for p in vp.packets))
                joined.pts = vp.packets[0].pts
                joined.time_base = vp.packets[0].time_base
                return joined
        self.stop()
        raise MediaStreamError


class OpusTrack(_PacketTrack[AudioChunk]):
    """Pre-encoded Opus of a live stream, 20 ms packets; a full queue drops the oldest audio."""

    kind = "audio"

    def __init__(self, live: MediaSource, queue_ms: int) -> None:
        super().__init__(live, queue_ms)
        self._pending: deque[av.Packet] = deque()
        self._flushed = 0  # the subscription's flush count when `_pending` was filled
        self._release_opus: Callable[[], None] | None = None

    def _subscribe(self) -> Subscription[AudioChunk]:
        self._release_opus = self._live.want_opus()
        return self._live.audio.subscribe(self._max_queue)

    def stop(self) -> None:
        if self._release_opus is not None:
            self._release_opus()
        super().stop()

    async def recv(self) -> av.Packet:
        while (sub := self._subscription()) is not None:
            if sub.flushes != self._flushed:
                self._pending.clear()  # the second half of a chunk from before an interrupt
                self._flushed = sub.flushes
            if self._pending:
                return self._pending.popleft()
            try:
                chunk = await sub.get()
            except FanOutClosed:
                break
            self._pending.extend(chunk.opus)
            self._flushed = sub.flushes
        self.stop()
        raise MediaStreamError


def _prefer(kind: str, mime: str) -> list[RTCRtpCodecCapability]:
    """Sender capabilities of `kind` limited to `mime` (and its RTX)."""
    caps = RTCRtpSender.getCapabilities(kind)
    return [c for c in caps.codecs if c.mimeType.lower() in (mime.lower(), f"{kind}/rtx")]


# ---- viewers ---------------------------------------------------------------------------------
@dataclass
class Viewer:
    id: str
    pc: RTCPeerConnection
    video: H264Track
    audio: OpusTrack
    watchdog: asyncio.Task[None] | None = None


class WebRtcOutput:
    """The WebRTC viewers of one live stream, addressed by WHEP resource ids."""

    def __init__(
        self,
        live: MediaSource,
        settings: Settings,
        *,
        max_viewers: int = 32,
        queue_ms: int = 400,
        connect_timeout_s: float = 30.0,
        on_closed: Callable[[], None] | None = None,
    ) -> None:
        self.live = live
        self.on_closed = on_closed  # called once, after the last viewer left a closed output
        self.settings = settings
        self.max_viewers = max_viewers
        self.queue_ms = queue_ms
        self.connect_timeout_s = connect_timeout_s
        self._viewers: dict[str, Viewer] = {}
        self._watch: asyncio.Task[None] | None = None
        self._closed = False
        hosts = Settings.split(settings.ice_host_addresses)
        if hosts:  # empty: leave aioice alone (it offers every interface but loopback)
            use_host_addresses(hosts)

    @property
    def viewers(self) -> int:
        return len(self._viewers)

    def viewer(self, resource_id: str) -> Viewer | None:
        return self._viewers.get(resource_id)

    async def answer(self, offer_sdp: str) -> tuple[str, str]:
        """Accept a viewer's SDP offer; returns (answer SDP with candidates, resource id).

        Raises RequestError for an offer we cannot answer (not SDP, no H.264 or no Opus),
        SessionClosed when the stream has ended, QuotaError when the viewer limit is reached.
        """
        if self._closed or self.live.closed:
            raise SessionClosed("the live stream has ended")
        if len(self._viewers) >= self.max_viewers:
            raise QuotaError(f"this stream already has {self.max_viewers} viewers")
        if "m=" not in offer_sdp:
            raise RequestError("the body is not an SDP offer")
        if self._watch is None:
            self._watch = asyncio.create_task(self._close_when_live_ends())

        pc = RTCPeerConnection(rtc_configuration(self.settings))
        video = H264Track(self.live, self.queue_ms)
        audio = OpusTrack(self.live, self.queue_ms)
        try:
            # Preferences must be set before setRemoteDescription: set later, aiortc
            # silently negotiates VP8 and would try to re-encode our H.264 packets.
            pc.addTransceiver(video, direction="sendonly").setCodecPreferences(
                _prefer("video", "video/H264")
            )
            pc.addTransceiver(audio, direction="sendonly").setCodecPreferences(
                _prefer("audio", "audio/opus")
            )
            try:
                await pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
            except Exception as exc:  # aiortc raises assorted types for a bad or foreign offer
                raise RequestError(f"cannot accept this SDP offer: {exc}") from exc
            await pc.setLocalDescription(await pc.createAnswer())  # waits for ICE gathering
        except BaseException:
            video.stop()
            audio.stop()
            await pc.close()
            raise

        rid = uuid.uuid4().hex
        viewer = Viewer(rid, pc, video, audio)
        self._viewers[rid] = viewer

        @pc.on("connectionstatechange")
        async def on_state() -> None:
            if pc.connectionState in ("failed", "closed"):
                await self.close(rid)

        viewer.watchdog = asyncio.create_task(self._connect_or_drop(viewer))
        log.info("viewer %s joined %s (%d viewers)", rid, self.live.name, len(self._viewers))
        return pc.localDescription.sdp, rid

    async def _connect_or_drop(self, viewer: Viewer) -> None:
        # A network timeout, not media pacing: wall time is right here.
        await asyncio.sleep(self.connect_timeout_s)
        if viewer.pc.connectionState != "connected":
            log.info("viewer %s never connected; dropping it", viewer.id)
            await self.close(viewer.id)

    async def close(self, resource_id: str) -> bool:
        """Disconnect one viewer; False if there is no such viewer (already gone)."""
        viewer = self._viewers.pop(resource_id, None)
        if viewer is None:
            return False
        if viewer.watchdog is not None and viewer.watchdog is not asyncio.current_task():
            viewer.watchdog.cancel()
        viewer.video.stop()
        viewer.audio.stop()
        await viewer.pc.close()
        log.info("viewer %s left %s (%d viewers)", resource_id, self.live.name, len(self._viewers))
        return True

    async def close_all(self) -> None:
        """Disconnect every viewer and accept no more."""
        if self._closed:
            return
        self._closed = True
        if self._watch is not None and self._watch is not asyncio.current_task():
            self._watch.cancel()
        await asyncio.gather(*(self.close(rid) for rid in list(self._viewers)))
        if self.on_closed is not None:
            self.on_closed()

    async def _close_when_live_ends(self) -> None:
        await self.live.wait_closed()
        await self.close_all()

    @property
    def closed(self) -> bool:
        return self._closed

    async def __aenter__(self) -> WebRtcOutput:
        return self

    async def __aexit__(self, *exc: object) -> None:
        with contextlib.suppress(Exception):
            await self.close_all()
