"""Write a live stream's already-encoded packets into a container (FLV over RTMP, MP4).

Video is never encoded again: the session's H.264 access units (Annex-B, SPS/PPS repeated on
every keyframe, SEI included) are copied. The container's codec parameters come from the first
keyframe: demuxing that one access unit as raw H.264 yields a stream whose extradata holds its
SPS/PPS, and `add_stream_from_template` copies them. The FLV and MP4 muxers turn Annex-B
extradata into an avcC record and the packets into length-prefixed NAL units themselves.

Audio is the session's 16 kHz PCM, resampled to 48 kHz and encoded to AAC once per container
(FLV and MP4 take no Opus; why 48 kHz: `AAC_RATE_HZ`).

Timestamps: the container's time 0 is the slot of its first keyframe; video pts are
(slot - first) * 40 ms, so skipped slots stay gaps. Audio slots that never arrived (a reader
that fell behind loses the oldest audio) are filled with silence, so audio stays in sync.

`SerialWorker` runs the blocking writes on one daemon thread: a network write that hangs can
never hold up the event loop, and a thread stuck in one cannot keep the process from exiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import queue
import threading
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import av
import numpy as np
from av.audio.codeccontext import AudioCodecContext

from avatarcast import SAMPLES_PER_FRAME
from avatarcast.stream.encoder import AacEncoder
from avatarcast.stream.packets import VIDEO_CLOCK_HZ, VIDEO_TIME_BASE, AudioChunk, VideoPacket

log = logging.getLogger(__name__)

T = TypeVar("T")
MAX_SILENCE_FILL_FRAMES = 250  # 10 s of missing audio filled at most; beyond that, a jump
# AAC at 48 kHz, not the timeline's 16 kHz: FFmpeg's muxers interleave audio and video by
# timestamp, so every video packet waits for the audio packet after it. AAC packets hold 1024
# samples and the encoder lags about two: 64 ms packets at 16 kHz held RTMP video back ~200
# ms (push to read back via nginx), 21 ms packets at 48 kHz ~40 ms.
AAC_RATE_HZ = 48_000


class LiveMuxer:
    """One open container; `write` gets consecutive slots and starts at the first keyframe."""

    def __init__(
        self,
        url: str,
        fmt: str,
        headers: bytes,
        *,
        fps: int,
        audio_bitrate_kbps: int,
    ) -> None:
        """`headers`: an Annex-B keyframe access unit of the stream (its SPS/PPS are used)."""
        self.fps = fps
        self.first_slot: int | None = None  # slot of the container's time 0
        self.frames = 0
        # flush_packets: hand each packet to the socket at once; by default FFmpeg fills a
        # 32 KB buffer first, which held RTMP frames back by ~160 ms.
        self._container = av.open(url, "w", format=fmt, container_options={"flush_packets": "1"})
        try:
            with av.open(io.BytesIO(headers), format="h264") as src:
                vs = self._container.add_stream_from_template(src.streams.video[0], opaque=True)
            if fmt != "flv":  # FLV's time base is fixed at 1/1000
                vs.time_base = VIDEO_TIME_BASE
            self._vstream = vs
            astream = self._container.add_stream("aac", rate=AAC_RATE_HZ)
            assert isinstance(astream.codec_context, AudioCodecContext)
            self._astream = astream
            # Every live session pays for this per frame (RTMP, recording): the fast coder.
            self._aac = AacEncoder(
                astream.codec_context, audio_bitrate_kbps, AAC_RATE_HZ, coder="fast"
            )
            # Writes the header now: for RTMP this connects and publishes, so a server that is
            # down fails here, not on some later frame.
            self._container.start_encoding()
        except BaseException:
            with contextlib.suppress(Exception):
                self._container.close()
            raise
        self._next_audio_slot = 0

    def write(self, vp: VideoPacket, audio: Sequence[AudioChunk]) -> bool:
        """Mux one slot; False (nothing written) until the first keyframe."""
        if self.first_slot is None:
            if not vp.keyframe:
                return False
            self.first_slot = self._next_audio_slot = vp.index
        pts = (vp.index - self.first_slot) * VIDEO_CLOCK_HZ // self.fps
        for p in vp.packets:
            # A copy: the live stream's packets are shared and muxing rewrites timestamps.
            q = av.Packet(bytes(p))
            q.pts = q.dts = pts
            q.time_base = VIDEO_TIME_BASE
            q.is_keyframe = p.is_keyframe
            q.stream = self._vstream
            self._container.mux_one(q)
        self.frames += 1
        for chunk in audio:
            self._write_audio(chunk)
        return True

    def _write_audio(self, chunk: AudioChunk) -> None:
        if chunk.index < self._next_audio_slot:
            return  # before this container's start, or already written
        missing = chunk.index - self._next_audio_slot
        pcm = chunk.pcm
        if 0 < missing <= MAX_SILENCE_FILL_FRAMES:
            pcm = np.concatenate([np.zeros(missing * SAMPLES_PER_FRAME, np.int16), pcm])
        self._next_audio_slot = chunk.index + 1
        self._mux_audio(self._aac.encode(pcm))

    def _mux_audio(self, packets: list[av.Packet]) -> None:
        for p in packets:
            # The first AAC packet is the encoder's priming (pts < 0): FLV has no edit list to
            # hide it, and dropping it keeps audio pts 0 = video pts 0 in every container.
            if p.pts is not None and p.pts < 0:
                continue
            p.stream = self._astream
            self._container.mux_one(p)

    def close(self) -> None:
        """Flush the audio and write the trailer (MP4: the index; RTMP: unpublish)."""
        try:
            self._mux_audio(self._aac.flush())
        finally:
            self._container.close()


def access_unit(vp: VideoPacket) -> bytes:
    return b"".join(bytes(p) for p in vp.packets)


Job = tuple[Callable[[], Any], "asyncio.Future[Any] | Callable[[Any], None] | None"]


class SerialWorker:
    """One daemon thread that runs submitted jobs in order.

    `submit` hands a result back as a future. `feed` is for a stream of jobs (one per frame):
    it does not wait for each, so a frame costs one hand-off to the thread instead of a
    round trip through the event loop, and it waits only while `max_in_flight` jobs are
    queued or running, so a write that hangs holds back at most that many slots. A fed job's
    result, when there is one (not None), goes to its `on_result` on the loop.
    """

    def __init__(self, name: str, *, max_in_flight: int = 2) -> None:
        self._jobs: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self.max_in_flight = max_in_flight
        self._fed = 0  # jobs fed so far (written by the loop only)
        self._done = 0  # fed jobs finished (written by the thread only)
        self._room: asyncio.Future[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, fn: Callable[[], T]) -> asyncio.Future[T]:
        fut: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._jobs.put((fn, fut))
        return fut

    async def feed(self, fn: Callable[[], T | None], on_result: Callable[[T], None]) -> None:
        """Queue `fn`; returns at once unless `max_in_flight` fed jobs are still pending."""
        self._loop = asyncio.get_running_loop()
        while self._fed - self._done >= self.max_in_flight:
            room = self._room = self._loop.create_future()
            if self._fed - self._done < self.max_in_flight:  # finished meanwhile
                self._room = None
                break
            await room
        self._fed += 1
        self._jobs.put((fn, on_result))

    @property
    def pending(self) -> int:
        """Fed jobs queued or running."""
        return self._fed - self._done

    def close(self) -> None:
        """No more jobs; the thread ends after the queued ones."""
        self._jobs.put(None)

    def join(self, timeout: float) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _run(self) -> None:
        while (job := self._jobs.get()) is not None:
            fn, sink = job
            if isinstance(sink, asyncio.Future):
                try:
                    result = fn()
                except BaseException as exc:  # handed to the awaiting task
                    _resolve(sink, None, exc)
                else:
                    _resolve(sink, result, None)
                continue
            try:
                result = fn()
            except BaseException:  # a fed job handles its own errors; this is a bug
                log.exception("a job of %s failed", self._thread.name)
                result = None
            self._done += 1
            loop, room = self._loop, self._room
            with contextlib.suppress(RuntimeError):  # the loop is gone: nobody is waiting
                if result is not None and sink is not None and loop is not None:
                    loop.call_soon_threadsafe(sink, result)
                if room is not None and loop is not None:
                    loop.call_soon_threadsafe(_set_room, room)


def _set_room(room: asyncio.Future[None]) -> None:
    if not room.done():
        room.set_result(None)


def _resolve(fut: asyncio.Future[Any], result: Any, exc: BaseException | None) -> None:
    def set_it() -> None:
        if fut.done():
            return
        if exc is not None:
            fut.set_exception(exc)
        else:
            fut.set_result(result)

    with contextlib.suppress(RuntimeError):  # the loop is gone: nobody is waiting
        fut.get_loop().call_soon_threadsafe(set_it)
