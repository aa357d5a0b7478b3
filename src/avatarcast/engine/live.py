"""A live session's frame loop: engine → encode once → fan out, paced by an absolute clock.

Frame slot n is due at `start + n / fps` on the clock (a `FramePacer`), never at a sum of
sleeps. For each slot one job runs on the session's own worker thread: `engine.next_frame()`,
H.264 encode of the video and Opus encode of the audio. Rendering and encoding release the GIL
inside numpy/PyAV, so the event loop stays free for signalling and packet sending; one thread
per session keeps exactly one encoder per session. Sessions spread over cores through media
worker processes (engine/worker.py), each with its own event loop and GIL: the threads of one
process share about one core (measured).

The encoded video and the audio are published to two `FanOut`s (`video`, `audio`); every
output (WebRTC viewers, RTMP, LiveKit, Janus, the recorder) subscribes to them. Then
`on_frame(frame)` is called on the loop: the session host turns it into a `FrameInfo` for the
drive channel, which sends AudioStart/AudioOver from it, so those events leave exactly when the
speech's first/last frame is on the stream.

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

Idle loop (`idle_loop=True`, the `idle_loop_shared` setting; `avatarcast.engine.idle_loop`):
while the engine is idle, a slot publishes the shared loop's packets for the phase the engine
is at, restamped with the slot's pts, without rendering or encoding (so on the event loop
itself, without the worker thread): `engine.skip_idle_frame()` advances the engine (same
index, events and silence as a rendered idle frame). The engine's idle motion is the loop's,
so its phases match. Switches:
- onto the loop only at a loop keyframe phase (an IDR with SPS/PPS): from the start of the
  stream, or after speech once the engine is idle again (at most one GOP of live rendering
  after the last word);
- off the loop when speech has a frame ready: that frame is rendered and encoded as an IDR by
  the session's own encoder, with the motion of that phase (no jump);
- a keyframe request (a viewer joined) or a flush while on the loop: served at once, by the
  loop's own keyframe if this phase is one, else by leaving the loop for a live IDR (and
  rejoining at the next loop keyframe phase).
The phase follows the engine's frame index, not the slot: a skipped slot (below) skips no
loop frame, so every published P-frame's reference was published before it. Frame listeners
(LiveKit) still get each frame's picture: a loop frame is rendered for them (on the worker
thread), never encoded. SEI is inserted into loop packets as into live ones.

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

import av

from avatarcast import SAMPLES_PER_FRAME
from avatarcast.engine.idle_loop import IdleLoop, IdleLoops, shared_loops
from avatarcast.engine.timeline import Engine, EngineFrame
from avatarcast.errors import EncoderError
from avatarcast.media import Pcm
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
        idle_loop: bool = False,
        idle_loops: IdleLoops | None = None,
        name: str = "live",
    ) -> None:
        """`idle_loop`: play the shared idle loop while idle (from `idle_loops`, by default
        the process's registry) instead of rendering and encoding."""
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
        self.idle_loop = idle_loop
        self._idle_loops = idle_loops
        self.loop: IdleLoop | None = None
        self.on_loop = False  # the last published frame came from the shared loop
        self.frames_sent = 0
        self.loop_frames = 0  # of those, frames published from the shared loop
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
        # Opus is made only while some output takes it (WebRTC and Janus viewers): ~0.01
        # core per speaking session that RTMP, LiveKit and recording alone do not need.
        self._opus_users = 0
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

    def want_opus(self) -> Callable[[], None]:
        """Make Opus packets (`AudioChunk.opus`) until the returned release is called.

        Without a user, chunks rendered live carry no Opus (chunks of the shared idle loop
        always do); a user that comes gets a fresh encoder from the next rendered frame.
        """
        if self._opus_users == 0:
            self._audio_enc = None  # made anew on the frame thread: no state from before
        self._opus_users += 1
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                self._opus_users -= 1

        return release

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
        if self.idle_loop:
            registry = self._idle_loops or shared_loops()
            idle = registry.get(self.engine.avatar, self.options, self.audio_bitrate_kbps)
            if idle is not None:
                # From frame 0 the engine moves as the loop does, starting at a loop keyframe
                # phase picked by its own seed (sessions do not blink in step).
                self.engine.use_motion(idle.motion_for(self.engine.motion.seed))
                self.loop = idle
        self._video_enc = H264Encoder.standalone(self.options)
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
    def _produce(
        self, n: int, keyframe: bool, try_loop: bool = True
    ) -> tuple[EngineFrame, VideoPacket, AudioChunk]:
        """One slot's work, on the worker thread: the shared loop's packets of this phase,
        or render, encode video, encode audio."""
        assert self._video_enc is not None
        looped = self._from_loop(n, keyframe) if try_loop else None
        if looped is not None:
            frame, vp, ac = looped
        else:
            # Leaving the loop: the decoder's reference is the loop's picture, not ours.
            keyframe = keyframe or self.on_loop
            self.on_loop = False
            frame = self.engine.next_frame()
            packets = encode_h264(self._video_enc, frame.video, n, keyframe)
            opus = self._opus(frame.audio, n)
            is_key = any(p.is_keyframe for p in packets)
            vp, ac = VideoPacket(n, packets, is_key), AudioChunk(n, frame.audio, opus)
        return frame, self._with_sei(frame, vp), ac

    def _opus(self, pcm: Pcm, n: int) -> tuple[av.Packet, ...]:
        if self._opus_users == 0:
            return ()
        enc = self._audio_enc
        if enc is None:
            enc = self._audio_enc = OpusEncoder(self.audio_bitrate_kbps)
        return enc.encode(pcm, n * SAMPLES_PER_FRAME)

    def _with_sei(self, frame: EngineFrame, vp: VideoPacket) -> VideoPacket:
        if self.sei_for is not None:
            try:
                sei = self.sei_for(frame)
            except Exception:  # metadata must never cost a frame
                log.exception("%s: SEI for frame %d failed", self.name, frame.index)
                sei = None
            if sei:
                vp = VideoPacket(vp.index, with_sei(vp.packets, sei), vp.keyframe)
        return vp

    def _from_loop(
        self, n: int, keyframe: bool
    ) -> tuple[EngineFrame, VideoPacket, AudioChunk] | None:
        """Slot `n` from the shared idle loop, or None when it must be rendered live."""
        loop = self.loop
        if loop is None or not loop.ready:
            return None
        phase = self.engine.motion.phase(self.engine.frame_index)
        at_key = loop.is_keyframe(phase)
        if keyframe and not at_key:
            return None  # a keyframe now: only a live IDR gives one at this phase
        if not self.on_loop and not (at_key and self.engine.idle()):
            return None  # the loop is joined at its keyframes, once nothing is queued
        frame = self.engine.skip_idle_frame()
        if frame is None:
            return None  # speech has a frame ready
        self.on_loop = True
        if self.frame_listeners:
            _ = frame.video  # rendered here, on the worker thread, for the raw-frame outputs
        return frame, loop.video_packet(phase, n), loop.audio_chunk(phase, n)

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
                # On the loop a slot costs no render and no encode: made here, without the
                # hop to the worker thread (which cost more than the slot itself).
                inline = self.on_loop and not self.frame_listeners
                looped = self._from_loop(n, keyframe) if inline else None
                if looped is not None:
                    frame, vp, ac = looped[0], self._with_sei(looped[0], looped[1]), looped[2]
                else:  # leaving the loop, or not on it: the worker renders and encodes
                    frame, vp, ac = await loop.run_in_executor(
                        self._executor, self._produce, n, keyframe, not inline
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
                    if self.on_loop:  # this frame came from the shared loop
                        self.loop_frames += 1
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
