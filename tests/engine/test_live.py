"""The live frame loop: absolute deadlines, publish-then-notify order, skipping, clean stop."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest

from avatarcast.avatars.base import Avatar
from avatarcast.avatars.registry import load_avatar
from avatarcast.engine.live import LiveStream
from avatarcast.engine.timeline import Engine, EngineFrame, SpeechEvent
from avatarcast.errors import EncoderError
from avatarcast.speech.tts import get_backend
from avatarcast.stream.clock import ManualClock, MonotonicClock
from avatarcast.stream.encoder import VideoOptions
from avatarcast.stream.fanout import FanOutClosed
from avatarcast.stream.packets import AudioChunk, VideoPacket

START = 100.0


@pytest.fixture(scope="module")
def avatar() -> Avatar:
    return load_avatar("default")


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    return get_backend("espeak").synthesize("Bob made a map.", voice="en-us").pcm


class Recorder:
    """Runs a LiveStream on a ManualClock and records what each frame looked like when
    `on_frame` saw it: the clock time, and what the fan-outs had already delivered."""

    def __init__(self, engine: Engine, stop_after: int, hook: object = None) -> None:
        self.clock = ManualClock(START)
        self.live = LiveStream(engine, VideoOptions(), self.clock, on_frame=self.on_frame)
        self.video = self.live.video.subscribe(max_queue=10_000)
        self.audio = self.live.audio.subscribe(max_queue=10_000)
        self.release_opus = self.live.want_opus()  # as a WebRTC viewer does
        self.frames: list[tuple[float, EngineFrame, VideoPacket, AudioChunk]] = []
        self.stop_after = stop_after
        self.hook = hook
        self.done = asyncio.Event()

    def on_frame(self, frame: EngineFrame) -> None:
        # Publishing happened before this call: the items are already queued for us.
        vp, ac = self.video.get_nowait(), self.audio.get_nowait()
        assert vp is not None and ac is not None, "on_frame ran before the frame was published"
        self.frames.append((self.clock.now(), frame, vp, ac))
        if callable(self.hook):
            self.hook(self, frame)
        if len(self.frames) >= self.stop_after:
            self.done.set()

    async def run(self) -> None:
        await asyncio.wait_for(self.live.start(), 10)
        await asyncio.wait_for(self.done.wait(), 30)
        await asyncio.wait_for(self.live.stop(), 10)


def test_frames_published_at_absolute_deadlines_with_synced_timestamps(avatar: Avatar) -> None:
    rec = Recorder(Engine(avatar), stop_after=60)
    asyncio.run(rec.run())
    for n, (t, frame, vp, ac) in enumerate(rec.frames[:60]):
        assert t == pytest.approx(START + n / 25, abs=1e-9)
        assert frame.index == vp.index == ac.index == n
        assert [p.pts for p in vp.packets] == [n * 3600]  # one access unit, 90 kHz
        assert [p.pts for p in ac.opus] == [n * 640, n * 640 + 320]  # two 20 ms packets
        assert np.array_equal(ac.pcm, frame.audio)
    keys = [vp.index for _, _, vp, _ in rec.frames if vp.keyframe]
    assert keys[:2] == [0, 50]  # an IDR at least every 2 s (PLI is not honoured)
    assert rec.live.frames_sent >= 60 and rec.live.late_frames == 0


def test_opus_is_made_only_while_an_output_wants_it(avatar: Avatar) -> None:
    """RTMP, LiveKit and recording take the PCM: without an Opus user no Opus is encoded."""

    def toggle(rec: Recorder, frame: EngineFrame) -> None:
        if frame.index == 19:
            rec.release_opus()
            rec.release_opus()  # a second release changes nothing
        if frame.index == 39:
            rec.release_opus = rec.live.want_opus()

    rec = Recorder(Engine(avatar), stop_after=60, hook=toggle)
    asyncio.run(rec.run())
    counts = [len(ac.opus) for _, _, _, ac in rec.frames[:60]]
    assert counts == [2] * 20 + [0] * 20 + [2] * 20
    assert all(ac.pcm.size == 640 for _, _, _, ac in rec.frames[:60])


def test_speech_events_reach_on_frame_after_their_frame_is_published(
    avatar: Avatar, speech: np.ndarray
) -> None:
    engine = Engine(avatar)
    engine.say_audio(speech, utterance_id="u1")
    n_frames = -(-speech.size // 640)
    rec = Recorder(engine, stop_after=n_frames + 5)
    asyncio.run(rec.run())
    events = [(f.index, e) for _, f, _, _ in rec.frames for e in f.events]
    assert events == [(0, (SpeechEvent.START, "u1")), (n_frames - 1, (SpeechEvent.END, "u1"))]
    # the published audio is the speech itself, then silence
    sent = np.concatenate([ac.pcm for _, _, _, ac in rec.frames])
    assert np.array_equal(sent[: speech.size], speech)
    assert not sent[n_frames * 640 :].any()


def test_a_late_frame_skips_ahead_without_drift_or_burst(avatar: Avatar) -> None:
    def stall(rec: Recorder, frame: EngineFrame) -> None:
        if frame.index == 10:
            rec.clock.advance(1.01)  # the machine froze for a second after frame 10
        if frame.index == 20:
            rec.clock.advance(0.09)  # a small hiccup: caught up by a short burst, no skip

    rec = Recorder(Engine(avatar), stop_after=30, hook=stall)
    asyncio.run(rec.run())
    slots = [vp.index for _, _, vp, _ in rec.frames]
    assert slots[:11] == list(range(11))
    assert slots[11] == 35  # 24 slots skipped, resumed at the slot due now
    assert rec.live.late_frames == 24
    assert [f.index for _, f, _, _ in rec.frames] == list(range(len(rec.frames)))  # no loss
    for t, _, vp, _ in rec.frames[12:]:
        # every frame still leaves at its own absolute deadline (or, after the hiccup,
        # as soon as possible while catching up, never more than 3 frames behind)
        assert START + vp.index / 25 <= t + 1e-9 < START + (vp.index + 4) / 25


def test_stepped_clock_publishes_each_frame_at_its_deadline_and_not_before(
    avatar: Avatar,
) -> None:
    """Pacing, proved on a clock only the test moves: half a frame later nothing is due; at
    the deadline exactly one frame goes out."""

    async def main() -> None:
        clock = ManualClock(START, auto_advance=False)
        made: list[tuple[float, int]] = []
        new = asyncio.Event()

        def on_frame(frame: EngineFrame) -> None:
            made.append((clock.now(), frame.index))
            new.set()

        live = LiveStream(Engine(avatar), VideoOptions(), clock, on_frame=on_frame)
        await asyncio.wait_for(live.start(), 10)  # frame 0 is due at once
        assert made == [(START, 0)]
        assert live.pacer is not None
        for n in range(1, 13):
            due = live.pacer.deadline(n)
            clock.advance((due - clock.now()) / 2)  # half a frame: frame n is not due yet
            while clock.sleepers == 0:  # until the loop waits on the clock again
                await asyncio.sleep(0.001)
            assert len(made) == n, f"frame {n} went out early"
            clock.advance(due - clock.now())
            while len(made) == n:
                new.clear()
                await asyncio.wait_for(new.wait(), 10)
            assert made[-1] == (due, n) and due == pytest.approx(START + n / 25, abs=1e-9)
        assert live.late_frames == 0
        await asyncio.wait_for(live.stop(), 10)

    asyncio.run(main())


def test_real_clock_smoke_frames_never_early_keeping_up_and_clean_stop(avatar: Avatar) -> None:
    """The one real-time test: on the wall clock, frames never leave before their deadline,
    the slots keep up with time (a loaded machine skips slots rather than drifting; bounds
    are generous), and stop() drains subscribers and ends the worker thread."""

    async def main() -> None:
        stamps: list[float] = []
        enough = asyncio.Event()

        def on_frame(frame: EngineFrame) -> None:
            stamps.append(time.monotonic())
            if len(stamps) >= 25:
                enough.set()

        live = LiveStream(
            Engine(avatar), VideoOptions(), MonotonicClock(), on_frame=on_frame, name="live-test"
        )
        sub = live.video.subscribe(max_queue=10_000)
        await asyncio.wait_for(live.start(), 30)
        assert live.frames_sent >= 1 and live.viewers == 1
        await asyncio.wait_for(enough.wait(), 60)  # a hang guard, not a speed bound
        assert live.pacer is not None
        elapsed_s = time.monotonic() - live.pacer.start
        await asyncio.wait_for(live.stop(), 30)
        assert live.closed and not live.running
        slots: list[int] = []
        with pytest.raises(FanOutClosed):
            while True:
                slots.append((await asyncio.wait_for(sub.get(), 5)).index)
        assert len(slots) == len(stamps) == live.frames_sent  # drained, then ended
        assert slots == sorted(set(slots))
        for slot, t in zip(slots, stamps, strict=True):
            assert t >= live.pacer.deadline(slot) - 1e-6  # never early
        assert slots[-1] >= 0.5 * elapsed_s * 25 - 4  # keeping up (generously)
        assert not [t for t in threading.enumerate() if t.name.startswith("live-test")]

    asyncio.run(main())


def test_start_raises_when_the_first_frame_fails(avatar: Avatar) -> None:
    async def main() -> None:
        live = LiveStream(Engine(avatar), VideoOptions(width=480, height=854), ManualClock())
        with pytest.raises(EncoderError):
            await asyncio.wait_for(live.start(), 10)
        assert live.closed and live.video.closed

    asyncio.run(main())
