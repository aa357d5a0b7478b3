"""The shared idle loop: idle sessions publish the same encoded loop, speech leaves and rejoins
it cleanly, a joining viewer gets a keyframe at once (content checks on a ManualClock)."""

from __future__ import annotations

import asyncio
import itertools
import sys
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np
import pytest

from avatarcast.avatars.alpha import pack_alpha
from avatarcast.avatars.base import Avatar
from avatarcast.avatars.registry import load_avatar
from avatarcast.engine.idle_loop import IdleLoop, IdleLoops, loop_period
from avatarcast.engine.live import LiveStream
from avatarcast.engine.timeline import Engine, EngineFrame, SpeechEvent
from avatarcast.render.frame import FrameState
from avatarcast.render.motion import IdleMotion
from avatarcast.speech.tts import get_backend
from avatarcast.speech.visemes import REST, MouthPose, Shape
from avatarcast.stream.clock import ManualClock
from avatarcast.stream.encoder import VideoOptions
from avatarcast.stream.packets import AudioChunk, VideoPacket

OPTS = VideoOptions()


@pytest.fixture(scope="module")
def avatar() -> Avatar:
    return load_avatar("default")


@pytest.fixture(scope="module")
def loops(avatar: Avatar) -> IdleLoops:
    """A registry of this module's own, its loop built before any stream starts."""
    registry = IdleLoops()
    loop = registry.get(avatar, OPTS, 64)
    assert loop is not None and loop.wait_ready(120), loop and loop.error
    return registry


@pytest.fixture(scope="module")
def loop(avatar: Avatar, loops: IdleLoops) -> IdleLoop:
    got = loops.get(avatar, OPTS, 64)
    assert got is not None
    return got


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    return get_backend("espeak").synthesize("Bob made a map.", voice="en-us").pcm


Slot = tuple[EngineFrame, VideoPacket, AudioChunk]


class Run:
    """A LiveStream on the shared loop, on a ManualClock, recording every published slot."""

    def __init__(
        self,
        engine: Engine,
        loops: IdleLoops,
        stop_after: int,
        hook: Callable[[Run, EngineFrame], None] | None = None,
        *,
        idle_loop: bool = True,
        opts: VideoOptions = OPTS,
    ) -> None:
        self.clock = ManualClock(100.0)
        self.live = LiveStream(
            engine,
            opts,
            self.clock,
            on_frame=self.on_frame,
            audio_bitrate_kbps=64,
            idle_loop=idle_loop,
            idle_loops=loops,
        )
        self.engine = engine
        self.video = self.live.video.subscribe(max_queue=100_000)
        self.audio = self.live.audio.subscribe(max_queue=100_000)
        self.slots: list[Slot] = []
        self.phases: list[int] = []
        self.stop_after = stop_after
        self.hook = hook
        self.done = asyncio.Event()

    def on_frame(self, frame: EngineFrame) -> None:
        vp, ac = self.video.get_nowait(), self.audio.get_nowait()
        assert vp is not None and ac is not None
        self.slots.append((frame, vp, ac))
        self.phases.append(self.engine.motion.phase(frame.index))
        if self.hook is not None:
            self.hook(self, frame)
        if len(self.slots) >= self.stop_after:
            self.done.set()

    async def run(self) -> None:
        await asyncio.wait_for(self.live.start(), 30)
        await asyncio.wait_for(self.done.wait(), 120)
        await asyncio.wait_for(self.live.stop(), 30)


def au(vp: VideoPacket) -> bytes:
    return b"".join(bytes(p) for p in vp.packets)


def loop_au(loop: IdleLoop, phase: int) -> bytes:
    return au(loop.video_packet(phase, 0))


def parameter_sets(access_unit: bytes) -> list[bytes]:
    """The SPS and PPS NAL units of an Annex-B access unit."""
    nals = [n.rstrip(b"\x00") for n in access_unit.split(b"\x00\x00\x01")[1:]]
    return [n for n in nals if n and n[0] & 0x1F in (7, 8)]


def decode(slots: list[Slot]) -> list[np.ndarray]:
    """Every published access unit through one H.264 decoder, in order: the luma planes."""
    codec = av.CodecContext.create("h264", "r")
    lumas = []
    for _, vp, _ in slots:
        for frame in codec.decode(av.Packet(au(vp))):
            lumas.append(frame.to_ndarray(format="yuv420p")[: frame.height].copy())
    for frame in codec.decode(None):
        lumas.append(frame.to_ndarray(format="yuv420p")[: frame.height].copy())
    return lumas


def mouth_box(avatar: Avatar) -> tuple[slice, slice]:
    """Where the mouth is drawn: the pixels that differ between wide open and closed."""
    closed = avatar.render(FrameState(mouth=MouthPose(Shape.A, 0.0))).y.astype(int)
    wide = avatar.render(FrameState(mouth=MouthPose(Shape.D, 1.0))).y.astype(int)
    ys, xs = np.nonzero(np.abs(wide - closed) > 20)
    pad = 12  # room for head sway
    return slice(ys.min() - pad, ys.max() + pad), slice(xs.min() - pad, xs.max() + pad)


# ---- periodic motion ------------------------------------------------------------------------
def test_periodic_motion_repeats_exactly_and_joins_smoothly() -> None:
    motion = IdleMotion(7, period_frames=200)
    states = [motion.state(n, REST) for n in range(600)]
    assert states[:200] == states[200:400] == states[400:]
    assert sum(s.blink > 0.9 for s in states[:200]) >= 2  # it still blinks (two 4 s slots)
    # the seam (frame 199 → 200) moves no more than the motion does between any two frames
    steps = [
        abs(b.head_dx - a.head_dx) + abs(b.breath - a.breath) for a, b in itertools.pairwise(states)
    ]
    assert steps[199] <= max(steps[:199]) + 1e-9
    shifted = IdleMotion(7, period_frames=200, phase_frames=50)
    assert [shifted.state(n, REST) for n in range(150)] == states[50:200]
    assert shifted.phase(150) == 0
    # aperiodic motion is unchanged: no period, the frame index is its own phase
    plain = IdleMotion(7)
    assert plain.phase(1234) == 1234 and plain.state(1234, REST).frame_index == 1234


def test_loop_period_of_rendered_avatars_and_the_alpha_packer(avatar: Avatar) -> None:
    assert loop_period(avatar) == 200
    assert loop_period(pack_alpha(avatar)) == 200


# ---- the engine's cheap idle frame ------------------------------------------------------------
def test_skip_idle_frame_is_next_frame_without_the_render(
    avatar: Avatar, speech: np.ndarray
) -> None:
    rendered, skipped = Engine(avatar, seed=3), Engine(avatar, seed=3)
    for _ in range(3):
        a, b = rendered.next_frame(), skipped.skip_idle_frame()
        assert b is not None and not b.rendered
        assert (a.index, a.events, a.utterance_id, a.mouth) == (b.index, b.events, None, REST)
        assert np.array_equal(a.audio, b.audio) and not b.audio.any()
        assert np.array_equal(a.video.data, b.video.data)  # rendered on demand, the same
    skipped.say_audio(speech, utterance_id="u1")
    assert skipped.skip_idle_frame() is None  # speech has a frame ready: render it
    frame = skipped.next_frame()
    assert frame.events == [(SpeechEvent.START, "u1")] and frame.index == 3
    skipped.interrupt()
    idle = skipped.skip_idle_frame()  # the interrupt's event rides on the next idle frame
    assert idle is not None and idle.events == [(SpeechEvent.INTERRUPTED, "u1")]


# ---- idle sessions share the loop -------------------------------------------------------------
def test_two_idle_sessions_publish_the_same_loop_bytes(avatar: Avatar, loops: IdleLoops) -> None:
    runs = [Run(Engine(avatar, seed=seed), loops, stop_after=230) for seed in (1, 2)]

    async def main() -> None:
        await asyncio.gather(*(r.run() for r in runs))

    asyncio.run(main())
    by_phase: list[dict[int, bytes]] = []
    for r in runs:
        assert r.live.loop is runs[0].live.loop  # one loop object for both
        assert r.live.loop_frames == r.live.frames_sent >= 230  # nothing rendered or encoded
        seen: dict[int, bytes] = {}
        for n, ((frame, vp, ac), phase) in enumerate(zip(r.slots, r.phases, strict=True)):
            assert frame.index == vp.index == ac.index == n
            assert [p.pts for p in vp.packets] == [n * 3600]  # restamped for this session
            assert [p.pts for p in ac.opus] == [n * 640, n * 640 + 320]
            assert vp.keyframe == (phase % r.live.loop.keyframe_every == 0)
            seen.setdefault(phase, au(vp))
            assert seen[phase] == au(vp)  # the loop wraps: the same bytes again
        assert r.slots[0][1].keyframe  # the stream starts at a loop keyframe
        by_phase.append(seen)
    assert runs[0].phases[0] != runs[1].phases[0]  # the two sessions are not in step
    common = set(by_phase[0]) & set(by_phase[1])
    assert len(common) == 200
    for phase in common:
        assert by_phase[0][phase] == by_phase[1][phase]


def test_sharing_off_renders_every_frame(avatar: Avatar, loops: IdleLoops) -> None:
    run = Run(Engine(avatar, seed=1), loops, stop_after=30, idle_loop=False)
    asyncio.run(run.run())
    assert run.live.loop is None and run.live.loop_frames == 0
    assert run.engine.motion.period_frames is None  # the session's own aperiodic motion


# ---- speech leaves and rejoins ----------------------------------------------------------------
def test_speech_leaves_the_loop_with_an_idr_and_rejoins_at_a_loop_keyframe(
    avatar: Avatar, loops: IdleLoops, loop: IdleLoop, speech: np.ndarray
) -> None:
    n_speech = -(-speech.size // 640)

    def speak_at_37(run: Run, frame: EngineFrame) -> None:
        if frame.index == 37:  # mid-GOP of the loop: the next frame must still start speech
            run.engine.say_audio(speech, utterance_id="u1")

    run = Run(Engine(avatar, seed=4), loops, stop_after=38 + n_speech + 60, hook=speak_at_37)
    asyncio.run(run.run())
    slots, phases = run.slots, run.phases
    start = next(i for i, (f, _, _) in enumerate(slots) if (SpeechEvent.START, "u1") in f.events)
    end = next(i for i, (f, _, _) in enumerate(slots) if (SpeechEvent.END, "u1") in f.events)
    assert start == 38 and end == start + n_speech - 1  # speech starts on the next frame
    for i in range(start):
        assert au(slots[i][1]) == loop_au(loop, phases[i])  # idle: the loop
    first = slots[start][1]
    assert first.keyframe and au(first) != loop_au(loop, phases[start])  # our own IDR
    # with the loop's SPS/PPS (same settings): a muxer that took either's headers keeps working
    assert parameter_sets(au(first)) == parameter_sets(loop_au(loop, 0)) != []
    rejoin = next(
        i for i in range(end + 1, len(slots)) if au(slots[i][1]) == loop_au(loop, phases[i])
    )
    assert loop.is_keyframe(phases[rejoin]) and slots[rejoin][1].keyframe  # at a loop keyframe
    assert rejoin - end <= loop.keyframe_every  # the first one after the speech
    for i in range(start, rejoin):
        assert au(slots[i][1]) != loop_au(loop, phases[i])  # live in between
    for i in range(rejoin, len(slots)):
        assert au(slots[i][1]) == loop_au(loop, phases[i])  # and on the loop after
    assert run.live.loop_frames == len(slots) - (rejoin - start)

    # The whole published stream decodes, one picture per slot.
    lumas = decode(slots)
    assert len(lumas) == len(slots)
    box = mouth_box(avatar)
    motion = run.engine.motion

    def idle_luma(i: int) -> np.ndarray:
        return avatar.render(motion.state(slots[i][0].index, REST)).y.astype(int)

    # No jump into speech: the first speech frame is the idle picture of its phase apart from
    # the mouth (encoding noise aside).
    outside = np.abs(lumas[start].astype(int) - idle_luma(start))
    outside[box] = 0
    assert outside.mean() < 1.5
    # The mouth moves during speech: the decoded mouth differs from the idle one of that phase.
    moved = [
        np.abs(lumas[i].astype(int)[box] - idle_luma(i)[box]).mean() for i in range(start, end)
    ]
    assert max(moved) > 10 and sum(m > 3 for m in moved) > len(moved) // 3
    # Back on the loop, the decoded picture is the idle picture of that phase.
    assert np.abs(lumas[rejoin].astype(int) - idle_luma(rejoin)).mean() < 1.5


def test_an_interrupt_cuts_to_a_keyframe_and_the_stream_still_decodes(
    avatar: Avatar, loops: IdleLoops, speech: np.ndarray
) -> None:
    def hook(run: Run, frame: EngineFrame) -> None:
        if frame.index == 10:
            run.engine.say_audio(speech, utterance_id="u1")
        if frame.index == 20:
            assert run.engine.interrupt() == ["u1"]
            run.live.flush()

    run = Run(Engine(avatar, seed=5), loops, stop_after=80, hook=hook)
    asyncio.run(run.run())
    cut = next(
        i
        for i, (f, _, _) in enumerate(run.slots)
        if f.events and f.events[0][0] is SpeechEvent.INTERRUPTED
    )
    assert run.slots[cut][1].keyframe  # the first frame after the flush is an IDR
    assert run.live.loop_frames > 40  # and the stream went back to the loop
    # The stream as a viewer sees it after the cut decodes from that keyframe on.
    lumas = decode(run.slots[cut:])
    assert len(lumas) == len(run.slots) - cut


# ---- viewers ---------------------------------------------------------------------------------
def test_a_viewer_joining_an_idle_session_gets_a_keyframe_at_once(
    avatar: Avatar, loops: IdleLoops, loop: IdleLoop
) -> None:
    # Joins each > 0.25 s after the last keyframe (the rate limit): two mid-GOP of the loop,
    # one just before a loop keyframe phase (seed 6 starts at phase 100 of 200, GOP 50).
    joins = (33, 90, 149)
    got: dict[int, list[VideoPacket]] = {}
    subs: dict[int, object] = {}

    def join(run: Run, frame: EngineFrame) -> None:
        for j, sub in subs.items():
            vp = sub.get_nowait()  # type: ignore[attr-defined]
            if vp is not None:
                got.setdefault(j, []).append(vp)
        if frame.index in joins:
            subs[frame.index] = run.live.video.subscribe(max_queue=1000)
            run.live.request_keyframe()

    run = Run(Engine(avatar, seed=6), loops, stop_after=170, hook=join)
    asyncio.run(run.run())
    slots, phases = run.slots, run.phases
    assert loop.keyframe_every == 50 and phases[0] == 100
    for j in joins:
        first = got[j][0]
        assert first.index == j + 1 and first.keyframe  # the very next slot, a keyframe
        frames = decode([slots[vp.index] for vp in got[j]])
        assert len(frames) == len(got[j])  # the viewer decodes from its first packet on
        back = next(k for k in range(j + 1, len(slots)) if loop.is_keyframe(phases[k]))
        for i in range(j + 1, back):  # mid-GOP: a live IDR, live until the loop's keyframe
            assert au(slots[i][1]) != loop_au(loop, phases[i])
        assert au(slots[back][1]) == loop_au(loop, phases[back])  # then the loop again
    assert back == 150 and got[149][0].index == 150  # at a loop keyframe: the loop's own


def test_raw_frame_listeners_get_the_loop_picture(avatar: Avatar, loops: IdleLoops) -> None:
    seen: list[EngineFrame] = []
    run = Run(Engine(avatar, seed=8), loops, stop_after=12)
    run.live.frame_listeners.append(seen.append)
    asyncio.run(run.run())
    assert run.live.loop_frames == len(seen) >= 12
    for frame in seen:
        assert frame.rendered  # rendered on the worker thread, before the listener ran
        state = run.engine.motion.state(frame.index, REST)
        assert np.array_equal(frame.video.data, avatar.render(state).data)


# ---- the registry ----------------------------------------------------------------------------
def test_one_loop_per_avatar_size_and_alpha_mode(avatar: Avatar, loops: IdleLoops) -> None:
    registry = IdleLoops()
    a = registry.get(avatar, OPTS, 64)
    assert a is not None and registry.get(avatar, OPTS, 64) is a
    packed = registry.get(pack_alpha(avatar), VideoOptions(width=1080, height=960), 64)
    assert packed is not None and packed is not a
    # another session's alpha packer of the same avatar shares that loop
    assert registry.get(pack_alpha(avatar), VideoOptions(width=1080, height=960), 64) is packed
    assert len(registry) == 2
    assert a.wait_ready(120)
    assert 100_000 < a.nbytes < 4_000_000  # encoded packets only, no raw frames


# ---- a video avatar: its own recorded loop is the idle loop ----------------------------------
SAMPLES = Path(__file__).resolve().parents[1] / "avatars"  # video_samples


@pytest.fixture(scope="module")
def video_avatar(tmp_path_factory: pytest.TempPathFactory) -> Avatar:
    if str(SAMPLES) not in sys.path:
        sys.path.insert(0, str(SAMPLES))
    from video_samples import speaking_video

    from avatarcast.avatars.video import build_video_avatar

    tmp = tmp_path_factory.mktemp("video")
    video, _ = speaking_video(tmp / "astronaut.mp4")
    build_video_avatar(video, "astro-loop", tmp / "data")
    return load_avatar("astro-loop", tmp / "data")


def test_a_video_avatar_loops_its_recording_and_its_sessions_share_it(
    video_avatar: Avatar, speech: np.ndarray
) -> None:
    recorded = len(video_avatar.loop)  # type: ignore[attr-defined]
    period = loop_period(video_avatar)
    assert period == recorded  # a 25 fps recording: one loop frame per output frame
    # its idle pictures repeat with that period (what makes sharing them sound)
    for n in (0, 7, period - 1):
        a = video_avatar.render(FrameState(frame_index=n)).data
        assert np.array_equal(a, video_avatar.render(FrameState(frame_index=n + period)).data)
    registry = IdleLoops()
    opts = VideoOptions(width=video_avatar.width, height=video_avatar.height)
    loop = registry.get(video_avatar, opts, 64)
    assert loop is not None and loop.wait_ready(120) and loop.period_frames == period

    def speak_at_30(run: Run, frame: EngineFrame) -> None:
        if frame.index == 30:
            run.engine.say_audio(speech, utterance_id="u1")

    def session(seed: int, hook: Callable[[Run, EngineFrame], None] | None) -> Run:
        engine = Engine(video_avatar, seed=seed)
        return Run(engine, registry, stop_after=period + 40, hook=hook, opts=opts)

    runs = [session(1, None), session(2, speak_at_30)]

    async def main() -> None:
        await asyncio.gather(*(r.run() for r in runs))

    asyncio.run(main())
    idle, talking = runs
    assert idle.live.loop is talking.live.loop is loop
    assert idle.live.loop_frames == idle.live.frames_sent  # never rendered
    for (_, vp, _), phase in zip(idle.slots, idle.phases, strict=True):
        assert au(vp) == loop_au(loop, phase)
    # the one that spoke left the loop and came back, and its whole stream decodes
    assert 0 < talking.live.loop_frames < talking.live.frames_sent
    assert au(talking.slots[-1][1]) == loop_au(loop, talking.phases[-1])
    assert len(decode(talking.slots)) == len(talking.slots)
