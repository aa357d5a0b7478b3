"""A small WHEP viewer (aiortc): watch a session's `PlayStreamAddr` from Python.

    async with WhepViewer(play_url) as v:
        frames = await v.wait_frames(25, timeout_s=5)   # VideoSample: luma, receive time, pts
        audio = list(v.audio)                           # AudioSample: 48 kHz mono PCM, time
        async for frame in v.video_frames():            # new frames as they arrive
            ...

It POSTs an SDP offer (recvonly H.264 video + Opus audio) to the WHEP URL, follows the
`Location` header to DELETE its resource on exit, and closes the peer. Decoded frames go to
bounded buffers (`video`, `audio`: the newest `max_video_frames` / `max_audio_frames`), so a
long watch never grows memory; `crop` keeps only part of each picture (e.g. the mouth) when
many frames must be kept.

Times: `t` is `time.monotonic()` when the decoded frame reached this viewer (what a player
that shows frames at once would show). `pts` is the receiver's timestamp of the frame, in
`time_base` units from the first frame received on that track (aiortc starts each track at
0), so it gives exact spacing within a track but no alignment between video and audio.

These are aiortc's receive times: its video jitter buffer hands a picture over when the
first packet of the next one arrives (about one frame, 40 ms, late) and its audio jitter
buffer holds 4 packets (about 80 ms). A browser syncs the two with RTCP; this viewer does
not. Every network step has a timeout; the peer is always closed on exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from types import TracebackType
from typing import Generic, TypeVar

import aioice.ice
import av
import httpx
import numpy as np
from aiortc import (
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCRtpReceiver,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.rtcrtpparameters import RTCRtpCodecCapability
from numpy.typing import NDArray

log = logging.getLogger(__name__)

Box = tuple[int, int, int, int]  # y0, y1, x0, x1 (luma pixels, end exclusive)
T = TypeVar("T")


class WhepError(Exception):
    """The WHEP endpoint refused the offer (HTTP status and its short text body)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"WHEP {status}: {reason}")
        self.status = status
        self.reason = reason


@dataclass(frozen=True, slots=True, eq=False)  # arrays: compare by identity
class VideoSample:
    t: float  # time.monotonic() when the decoded frame reached the viewer
    pts: int | None  # in time_base units, from the first frame of this track
    time_base: Fraction | None  # 1/90000 for WebRTC video
    width: int
    height: int
    luma: NDArray[np.uint8]  # Y plane (height x width), or the `crop` box of it
    yuv: NDArray[np.uint8] | None = None  # the whole yuv420p picture, with `color=True`


@dataclass(frozen=True, slots=True, eq=False)  # arrays: compare by identity
class AudioSample:
    t: float  # time.monotonic() when the decoded audio reached the viewer
    pts: int | None  # in time_base units (1/sample_rate), from the first audio of the track
    time_base: Fraction | None
    sample_rate: int  # 48000 for Opus
    pcm: NDArray[np.int16]  # mono (channels averaged), usually 20 ms

    @property
    def rms(self) -> float:
        """Root mean square of the samples (0 = silence, 32767 = full scale)."""
        if self.pcm.size == 0:
            return 0.0
        x = self.pcm.astype(np.float64)
        return float(np.sqrt(np.mean(x * x)))


class _Feed(Generic[T]):
    """A bounded buffer of the newest items plus a count of all, with waiting on news.

    Readers remember the count they have seen; an item that fell out of the buffer before a
    reader got to it is simply skipped (a slow reader must not make the viewer grow).
    """

    def __init__(self, maxlen: int) -> None:
        self.buffer: deque[T] = deque(maxlen=maxlen)
        self.count = 0
        self.ended = False
        self._news = asyncio.Event()

    def push(self, item: T) -> None:
        self.buffer.append(item)
        self.count += 1
        self._pulse()

    def end(self) -> None:
        self.ended = True
        self._pulse()

    def _pulse(self) -> None:
        # Wake every waiter once, then give later waiters a fresh event.
        self._news.set()
        self._news = asyncio.Event()

    def since(self, seen: int) -> list[T]:
        """Items after the first `seen` ones that are still buffered."""
        new = min(self.count - seen, len(self.buffer))
        return list(self.buffer)[len(self.buffer) - new :] if new > 0 else []

    async def wait_news(self, timeout_s: float) -> None:
        await asyncio.wait_for(self._news.wait(), timeout_s)

    async def iterate(self, idle_timeout_s: float) -> AsyncIterator[T]:
        seen = self.count
        while True:
            items = self.since(seen)
            seen = self.count
            for item in items:
                yield item
            if self.ended:
                return
            if not items:
                try:
                    await self.wait_news(idle_timeout_s)
                except TimeoutError:
                    return  # nothing for that long: the stream has stalled


def _codecs(kind: str, mime: str) -> list[RTCRtpCodecCapability]:
    caps = RTCRtpReceiver.getCapabilities(kind)
    assert caps is not None
    return [c for c in caps.codecs if c.mimeType.lower() in (mime.lower(), f"{kind}/rtx")]


def _luma(frame: av.VideoFrame, crop: Box | None) -> NDArray[np.uint8]:
    # Only the Y plane, without a colour conversion; rows are padded to line_size.
    plane = frame.planes[0]
    rows = np.frombuffer(memoryview(plane), np.uint8).reshape(-1, plane.line_size)[: frame.height]
    y = rows[:, : frame.width]
    if crop is not None:
        y0, y1, x0, x1 = crop
        y = y[y0:y1, x0:x1]
    return y.copy()  # the decoder reuses its buffers


def _yuv(frame: av.VideoFrame) -> NDArray[np.uint8]:
    return np.asarray(frame.to_ndarray(format="yuv420p"), dtype=np.uint8)


def _mono(frame: av.AudioFrame) -> NDArray[np.int16]:
    data = frame.to_ndarray()
    channels = frame.layout.nb_channels
    if frame.format.is_planar:  # (channels, samples)
        samples = data.astype(np.float64).mean(axis=0)
    else:  # (1, samples * channels), interleaved
        samples = data.reshape(-1, channels).astype(np.float64).mean(axis=1)
    return np.round(samples).astype(np.int16)


class WhepViewer:
    """One WHEP viewer of a WebRTC stream; use as `async with`.

    `ice_host_addresses`: local IPs aioice may use for this viewer's candidates (e.g.
    `["127.0.0.1"]` on a loopback-only test host, where aioice would otherwise find none).
    aioice only has a process-wide switch for that, so it is set just while this viewer
    gathers its candidates and then put back as it was.
    `ice_servers`: STUN/TURN URLs; none by default (no public server is contacted).
    """

    def __init__(
        self,
        play_url: str,
        *,
        ice_host_addresses: Sequence[str] | None = None,
        ice_servers: Sequence[str] = (),
        crop: Box | None = None,
        color: bool = False,
        max_video_frames: int = 250,
        max_audio_frames: int = 1000,
        timeout_s: float = 10.0,
    ) -> None:
        self.play_url = play_url
        self.ice_host_addresses = list(ice_host_addresses or [])
        self.ice_servers = list(ice_servers)
        self.crop = crop
        self.color = color  # keep whole pictures (recording), not only the luma
        self.timeout_s = timeout_s
        self.resource_url: str | None = None
        self._video: _Feed[VideoSample] = _Feed(max_video_frames)
        self._audio: _Feed[AudioSample] = _Feed(max_audio_frames)
        self._pc: RTCPeerConnection | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.connected_at: float | None = None  # monotonic time of the WHEP answer

    # ---- what was received -------------------------------------------------------------------
    @property
    def video(self) -> deque[VideoSample]:
        """The newest decoded video frames, oldest first (bounded)."""
        return self._video.buffer

    @property
    def audio(self) -> deque[AudioSample]:
        """The newest decoded audio frames, oldest first (bounded)."""
        return self._audio.buffer

    @property
    def frames_received(self) -> int:
        """Every video frame decoded so far, including those that left the buffer."""
        return self._video.count

    @property
    def audio_received(self) -> int:
        return self._audio.count

    @property
    def ended(self) -> bool:
        """The video track has ended (the viewer was disconnected or the session closed)."""
        return self._video.ended

    async def wait_frames(self, n: int, timeout_s: float = 10.0) -> list[VideoSample]:
        """Wait until `n` video frames in all have been received; return the buffered ones.

        Raises TimeoutError if they do not come in time, or if the track ends first.
        """
        deadline = time.monotonic() + timeout_s
        while self._video.count < n:
            left = deadline - time.monotonic()
            if self._video.ended or left <= 0:
                why = "the stream ended" if self._video.ended else f"not within {timeout_s} s"
                raise TimeoutError(f"{self._video.count} of {n} frames received: {why}")
            with contextlib.suppress(TimeoutError):
                await self._video.wait_news(left)
        return list(self._video.buffer)

    async def wait_ended(self, timeout_s: float = 10.0) -> None:
        """Wait until the video track ends; TimeoutError if it does not in time."""
        deadline = time.monotonic() + timeout_s
        while not self._video.ended:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"the stream did not end within {timeout_s} s")
            with contextlib.suppress(TimeoutError):
                await self._video.wait_news(left)

    def video_frames(self, idle_timeout_s: float = 5.0) -> AsyncIterator[VideoSample]:
        """Video frames received from now on; stops when the track ends or is silent for
        `idle_timeout_s`. A reader slower than the buffer skips frames."""
        return self._video.iterate(idle_timeout_s)

    def audio_frames(self, idle_timeout_s: float = 5.0) -> AsyncIterator[AudioSample]:
        """Audio frames received from now on (see `video_frames`)."""
        return self._audio.iterate(idle_timeout_s)

    # ---- connecting --------------------------------------------------------------------------
    async def __aenter__(self) -> WhepViewer:
        try:
            await asyncio.wait_for(self._connect(), self.timeout_s)
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def _connect(self) -> None:
        servers = [RTCIceServer(urls=self.ice_servers)] if self.ice_servers else []
        # Explicit (even empty): aiortc's default would contact a public STUN server.
        pc = RTCPeerConnection(RTCConfiguration(iceServers=servers))
        self._pc = pc
        # Ask for exactly what the server sends; preferences must be set before the offer.
        pc.addTransceiver("video", direction="recvonly").setCodecPreferences(
            _codecs("video", "video/H264")
        )
        pc.addTransceiver("audio", direction="recvonly").setCodecPreferences(
            _codecs("audio", "audio/opus")
        )

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            feed_task = (
                self._read_video(track) if track.kind == "video" else self._read_audio(track)
            )
            self._tasks.append(asyncio.create_task(feed_task))

        await self._gather(pc)
        async with httpx.AsyncClient(timeout=self.timeout_s) as http:
            r = await http.post(
                self.play_url,
                content=pc.localDescription.sdp,
                headers={"Content-Type": "application/sdp"},
            )
            if r.status_code != 201:
                raise WhepError(r.status_code, r.text.strip()[:200])
            location = r.headers.get("Location")
            if location:
                self.resource_url = str(httpx.URL(self.play_url).join(location))
        self.connected_at = time.monotonic()
        await pc.setRemoteDescription(RTCSessionDescription(sdp=r.text, type="answer"))

    async def _gather(self, pc: RTCPeerConnection) -> None:
        """setLocalDescription (gathers every candidate), on the configured host addresses."""
        offer = await pc.createOffer()
        if not self.ice_host_addresses:
            await pc.setLocalDescription(offer)
            return
        from avatarcast.stream.webrtc import use_host_addresses

        previous = aioice.ice.get_host_addresses
        use_host_addresses(self.ice_host_addresses)
        try:
            await pc.setLocalDescription(offer)
        finally:
            aioice.ice.get_host_addresses = previous

    async def _read_video(self, track: MediaStreamTrack) -> None:
        try:
            while True:
                frame = await track.recv()
                now = time.monotonic()
                if not isinstance(frame, av.VideoFrame):
                    continue
                self._video.push(
                    VideoSample(
                        now,
                        frame.pts,
                        frame.time_base,
                        frame.width,
                        frame.height,
                        _luma(frame, self.crop),
                        _yuv(frame) if self.color else None,
                    )
                )
        except MediaStreamError:
            pass
        finally:
            self._video.end()

    async def _read_audio(self, track: MediaStreamTrack) -> None:
        try:
            while True:
                frame = await track.recv()
                now = time.monotonic()
                if not isinstance(frame, av.AudioFrame):
                    continue
                self._audio.push(
                    AudioSample(now, frame.pts, frame.time_base, frame.sample_rate, _mono(frame))
                )
        except MediaStreamError:
            pass
        finally:
            self._audio.end()

    async def close(self) -> None:
        """Leave: DELETE the WHEP resource (best effort), stop reading, close the peer."""
        if self.resource_url is not None:
            url, self.resource_url = self.resource_url, None
            try:
                async with httpx.AsyncClient(timeout=min(self.timeout_s, 5.0)) as http:
                    await http.delete(url)
            except httpx.HTTPError as exc:  # the server may already be gone
                log.debug("WHEP DELETE %s failed: %s", url, exc)
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=5.0)
        self._tasks.clear()
        if self._pc is not None:
            pc, self._pc = self._pc, None
            try:
                await asyncio.wait_for(pc.close(), 5.0)
            except TimeoutError:
                log.warning("closing the WHEP viewer's peer connection timed out")
        self._video.end()
        self._audio.end()
