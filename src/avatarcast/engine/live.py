"""A live session's frame loop: engine → encode once → fan out, paced by an absolute clock.

Frame slot n is due at `start + n / fps` on the clock (a `FramePacer`), never at a sum of
sleeps. For each slot one job runs on the session's own worker thread: `engine.next_frame()`,
H.264 encode of the video and Opus encode of the audio. Rendering and encoding release the GIL
inside numpy/PyAV, so the event loop stays free for signalling and packet sending; one thread
per session keeps exactly one encoder per session and lets sessions spread over cores.

The encoded video and the audio are published to two `FanOut`s (`video`, `audio`); every
output (WebRTC viewers today; RTMP, LiveKit, recorders later) subscribes to them. Then
`on_frame(frame)` is called on the loop: the drive channel sends AudioStart/AudioOver from it,
so those events leave exactly when the speech's first/last frame is on the stream.

SEI metadata: `sei_for(frame)` (optional, called on the worker thread) may return an SEI NAL
unit for the frame; it is inserted into the frame's access unit before publishing, so every
H.264 output carries it (see `avatarcast.stream.sei`).

Timestamps: the stream's timeline is the slot number n. Video pts = n * 3600 (90 kHz) and the
frame's 40 ms of audio starts at pts n * 640 (16 kHz), so both media carry the same clock and
receivers keep them in sync. The engine's own frame index counts frames produced; it falls
behind n only when slots are skipped (below).

Interrupt: `flush()` (called by the drive channel right after `engine.interrupt()`) drops
what every output has queued and not sent yet, discards the frame being made if its job
started before the flush (it may show the cut speech), and forces an IDR next, because
subscribers of the video skip to a keyframe after a flush. So the first frame any viewer
gets after an interrupt is made after it: the closed mouth, with silence. Outputs that keep
a queue of their own (LiveKit's SDK buffer) empty it from `flush_listeners`.

Late frames: if the loop falls more than `max_burst_frames` slots behind (a stalled machine),
it skips to the slot due now instead of bursting every missed frame, and counts the skipped
slots in `late_frames`. Nothing drifts: the next deadline is still `start + n / fps`. Speech
is not lost by a skip; the engine simply plays it from the next produced frame.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from avatarcast import SAMPLES_PER_FRAME
from avatarcast.engine.timeline import Engine, EngineFrame
from avatarcast.errors import EncoderError
from avatarcast.stream.clock import Clock, FramePacer
from avatarcast.stream.encoder import H264Encoder, OpusEncoder, VideoOptions, encode_h264
from avatarcast.stream.fanout import FanOut
from avatarcast.stream.packets import AudioChunk, RawFrame, VideoPacket
from avatarcast.stream.sei import with_sei

log = logging.getLogger(__name__)


class LiveStream:
    """Runs one session's engine in real time and publishes its encoded media."""

    def __init__(
        self,
        engine: Engine,
        video: VideoOptions,
        clock: Clock,
        *,
        on_frame: Callable[[EngineFrame], None] | None = None,
        sei_for: Callable[[EngineFrame], bytes | None] | None = None,
        audio_bitrate_kbps: int = 32,
        max_burst_frames: int = 3,
        min_keyframe_gap_s: float = 0.25,
        name: str = "live",
    ) -> None:
        self.engine = engine
        self.options = video
        self.clock = clock
        self.on_frame = on_frame
        # Raw frames for outputs that encode themselves (LiveKit); called after on_frame.
        self.frame_listeners: list[Callable[[RawFrame], None]] = []
        # Called on the loop by `flush()`, after the fan-outs are emptied (outputs' own queues).
        self.flush_listeners: list[Callable[[], None]] = []
        self.sei_for = sei_for
        self.audio_bitrate_kbps = audio_bitrate_kbps
        self.max_burst_frames = max_burst_frames
        self.min_keyframe_gap_frames = max(1, round(min_keyframe_gap_s * video.fps))
        self.name = name
        # Keyframe-aware fan-out for video (skip to the next IDR), drop-oldest for audio.
        self.video: FanOut[VideoPacket] = FanOut(is_keyframe=lambda p: p.keyframe)
        self.audio: FanOut[AudioChunk] = FanOut()
        self.frames_sent = 0
        self.late_frames = 0  # slots skipped because the loop ran too far behind
        self.flushes = 0  # interrupts that emptied the outputs' queues
        self.discarded_frames = 0  # frames made before a flush and never published
        self.error: BaseException | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._task: asyncio.Task[None] | None = None
        self._first: asyncio.Future[None] | None = None
        self._closed = asyncio.Event()
        self._keyframe_wanted = False
        self._keyframe_forced = False  # after a flush: an IDR now, whatever the rate limit
        self._last_keyframe = -(10**9)
        self._video_enc: H264Encoder | None = None
        self._audio_enc: OpusEncoder | None = None
        self.pacer: FramePacer | None = None

    # ---- state --------------------------------------------------------------------------
    @property
    def viewers(self) -> int:
        """Consumers of the video (each WebRTC viewer holds one subscription)."""
        return self.video.subscribers

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    async def wait_closed(self) -> None:
        await self._closed.wait()

    def request_keyframe(self) -> None:
        """Ask for an IDR soon (a viewer joined): it starts decoding without waiting a GOP.

        Rate-limited to one per `min_keyframe_gap_s`, so joins cannot flood every viewer
        with keyframes.
        """
        self._keyframe_wanted = True

    def flush(self) -> None:
        """Drop every output's queued media: the next frame a viewer gets is made after now.

        Call it right after `engine.interrupt()`, on the event loop.
        """
        self.flushes += 1
        self._keyframe_forced = True
        self.video.flush()
        self.audio.flush()
        for listener in tuple(self.flush_listeners):
            try:
                listener()
            except Exception:  # one output's bug must not keep the others' queues full
                log.exception("%s: a flush listener failed", self.name)

    # ---- lifecycle ----------------------------------------------------------------------
    async def start(self) -> None:
        """Start the frame loop; returns once frame 0 is published (raises if it failed)."""
        if self._task is not None:
            raise RuntimeError("LiveStream already started")
        loop = asyncio.get_running_loop()
        self._video_enc = H264Encoder.standalone(self.options)
        self._audio_enc = OpusEncoder(self.audio_bitrate_kbps)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=self.name)
        self._first = loop.create_future()
        self.pacer = FramePacer(self.clock, self.options.fps)
        self._task = asyncio.create_task(self._run(), name=f"{self.name}-frames")
        done, _ = await asyncio.wait({self._first, self._task}, return_when=asyncio.FIRST_COMPLETED)
        if self._first not in done:
            await self.stop()
            raise self.error or EncoderError("live stream ended before its first frame")

    async def stop(self) -> None:
        """Stop the loop, wait for the in-flight frame job, release the encoders, end outputs."""
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._executor is not None:
            # A cancelled await does not stop the worker: let its job finish before the
            # encoders it uses are dropped.
            executor, self._executor = self._executor, None
            await asyncio.to_thread(executor.shutdown, True)
        self._video_enc = None
        self._audio_enc = None
        if not self.video.closed:
            self.video.close()
        if not self.audio.closed:
            self.audio.close()
        self._closed.set()

    # ---- the loop -----------------------------------------------------------------------
    def _produce(self, n: int, keyframe: bool) -> tuple[EngineFrame, VideoPacket, AudioChunk]:
        """One slot's work, on the worker thread: render, encode video, encode audio."""
        assert self._video_enc is not None and self._audio_enc is not None
        frame = self.engine.next_frame()
        packets = encode_h264(self._video_enc, frame.video, n, keyframe)
        if self.sei_for is not None:
            try:
                sei = self.sei_for(frame)
            except Exception:  # metadata must never cost a frame
                log.exception("%s: SEI for frame %d failed", self.name, frame.index)
                sei = None
            if sei:
                packets = with_sei(packets, sei)
        opus = self._audio_enc.encode(frame.audio, n * SAMPLES_PER_FRAME)
        is_key = any(p.is_keyframe for p in packets)
        return frame, VideoPacket(n, packets, is_key), AudioChunk(n, frame.audio, opus)

    def _catch_up(self, n: int) -> int:
        """The slot to produce next: `n`, or the slot due now if `n` is too far behind."""
        assert self.pacer is not None
        behind = math.floor((self.clock.now() - self.pacer.deadline(n)) * self.options.fps)
        if behind > self.max_burst_frames:
            self.late_frames += behind
            return n + behind
        return n

    async def _run(self) -> None:
        assert self.pacer is not None and self._first is not None
        loop = asyncio.get_running_loop()
        n = 0
        try:
            while True:
                n = self._catch_up(n)
                await self.pacer.wait_for(n)
                keyframe = self._keyframe_forced or (
                    self._keyframe_wanted
                    and n - self._last_keyframe >= self.min_keyframe_gap_frames
                )
                if keyframe:
                    self._keyframe_wanted = self._keyframe_forced = False
                flushes = self.flushes
                frame, vp, ac = await loop.run_in_executor(
                    self._executor, self._produce, n, keyframe
                )
                if vp.keyframe:
                    self._last_keyframe = n
                # A flush during the job: the frame may show the cut speech. Not published;
                # the next job is an IDR made after the interrupt.
                stale = flushes != self.flushes
                if stale:
                    self.discarded_frames += 1
                else:
                    self.video.publish(vp)
                    self.audio.publish(ac)
                    self.frames_sent += 1
                if not self._first.done():
                    self._first.set_result(None)
                if self.on_frame is not None:  # always: the drive channel counts every frame
                    try:
                        self.on_frame(frame)
                    except Exception:  # a listener's bug must not stop the stream
                        log.exception("%s: on_frame failed at frame %d", self.name, frame.index)
                for listener in () if stale else tuple(self.frame_listeners):
                    try:
                        listener(frame)
                    except Exception:  # one output's bug must not stop the others
                        log.exception(
                            "%s: a frame listener failed at frame %d", self.name, frame.index
                        )
                n += 1
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("%s: frame loop failed at slot %d", self.name, n)
            self.error = exc
            self.video.close()
            self.audio.close()
            self._closed.set()
