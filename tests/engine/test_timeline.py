"""The engine's timeline: order, events, audio integrity, streaming start, interrupt, bounds."""

from __future__ import annotations

import numpy as np
import pytest

from avatarcast.avatars.registry import load_avatar
from avatarcast.engine.timeline import Engine, EngineFrame, SpeechEvent
from avatarcast.errors import AudioInputError
from avatarcast.speech.tts import get_backend
from avatarcast.speech.visemes import Shape


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    return get_backend("espeak").synthesize("Bob made a map of the bay.", voice="en-us").pcm


def _engine(**kw: object) -> Engine:
    return Engine(load_avatar("default"), **kw)  # type: ignore[arg-type]


def _run(engine: Engine, limit: int = 2000) -> list[EngineFrame]:
    out = []
    while not engine.idle() and len(out) < limit:
        out.append(engine.next_frame())
    return out


def test_text_utterance_frames_audio_and_events() -> None:
    eng = _engine(tts=get_backend("espeak"))
    utt = eng.say_text("Bob made a map.", utterance_id="t1")
    frames = _run(eng)
    assert len(frames) == -(-utt.pcm.size // 640)
    assert frames[0].events == [(SpeechEvent.START, "t1")]
    assert frames[-1].events == [(SpeechEvent.END, "t1")]
    audio = np.concatenate([f.audio for f in frames])
    assert np.array_equal(audio[: utt.pcm.size], utt.pcm)
    assert not audio[utt.pcm.size :].any()
    assert Shape.A in {f.mouth.shape for f in frames}
    assert [f.index for f in frames] == list(range(len(frames)))


def test_utterances_play_in_order_back_to_back(speech: np.ndarray) -> None:
    eng = _engine()
    eng.say_audio(speech, utterance_id="one")
    eng.say_audio(speech[:8000], utterance_id="two")
    frames = _run(eng)
    events = [(f.index, e) for f in frames for e in f.events]
    n1 = -(-speech.size // 640)
    assert events == [
        (0, (SpeechEvent.START, "one")),
        (n1 - 1, (SpeechEvent.END, "one")),
        (n1, (SpeechEvent.START, "two")),
        (len(frames) - 1, (SpeechEvent.END, "two")),
    ]


def test_streaming_waits_for_lookahead_then_plays_everything(speech: np.ndarray) -> None:
    eng = _engine(lookahead_ms=200)
    eng.push_audio(speech[:2560], utterance_id="s")  # 160 ms: not enough for frame 0 + 200 ms
    first = eng.next_frame()
    assert first.events == [] and first.utterance_id is None and not first.audio.any()
    pos = 2560
    frames: list[EngineFrame] = []
    while pos < speech.size:
        eng.push_audio(speech[pos : pos + 2560])
        pos += 2560
        frames.append(eng.next_frame())
    eng.end_audio()
    frames += _run(eng)
    played = [f for f in frames if f.utterance_id == "s"]
    assert played[0].events[0] == (SpeechEvent.START, "s")
    assert played[-1].events[-1] == (SpeechEvent.END, "s")
    audio = np.concatenate([f.audio for f in played])
    assert np.array_equal(audio[: speech.size], speech)  # nothing lost, nothing reordered


def test_interrupt_cuts_at_once(speech: np.ndarray) -> None:
    eng = _engine()
    eng.say_audio(speech, utterance_id="a")
    eng.say_audio(speech, utterance_id="b")
    for _ in range(10):
        eng.next_frame()
    assert eng.interrupt() == ["a", "b"]
    f = eng.next_frame()
    assert f.events == [(SpeechEvent.INTERRUPTED, "a")]
    assert f.mouth.shape == Shape.X and not f.audio.any()
    assert eng.idle()


def test_queue_is_bounded_and_keeps_what_was_accepted(speech: np.ndarray) -> None:
    eng = _engine(max_queued_s=3.0)
    chunk = np.zeros(16000, np.int16) + 100
    eng.push_audio(chunk, utterance_id="x")
    eng.push_audio(chunk)
    with pytest.raises(AudioInputError, match="queue full"):
        eng.push_audio(np.concatenate([chunk, chunk]))
    eng.end_audio()
    frames = _run(eng)
    assert sum(f.audio.size for f in frames if f.utterance_id == "x") == 32000


def test_bad_pcm_type_rejected() -> None:
    eng = _engine()
    with pytest.raises(AudioInputError):
        eng.push_audio(np.zeros(100, np.float32))  # type: ignore[arg-type]
    with pytest.raises(AudioInputError):
        eng.say_audio(np.zeros(0, np.int16))


def test_idle_frames_are_silent_and_rest() -> None:
    eng = _engine()
    frames = [eng.next_frame() for _ in range(30)]
    assert all(f.mouth.shape == Shape.X and not f.audio.any() for f in frames)


def test_streamed_utterances_reuse_lipsync_identically(speech: np.ndarray) -> None:
    """The second utterance runs on a reset, reused lip-sync: same audio, same mouth."""
    eng = _engine()
    tracks = []
    for uid in ("first", "second"):
        for pos in range(0, speech.size, 2560):
            eng.push_audio(speech[pos : pos + 2560], utterance_id=uid)
        eng.end_audio()
        frames = _run(eng)
        tracks.append([f.mouth for f in frames if f.utterance_id == uid])
    assert len(tracks[0]) == -(-speech.size // 640)
    assert tracks[0] == tracks[1]


def test_streaming_after_interrupt_starts_a_new_utterance(speech: np.ndarray) -> None:
    eng = _engine()
    eng.push_audio(speech[:16000], utterance_id="cut")
    for _ in range(5):
        eng.next_frame()
    eng.interrupt()
    eng.push_audio(speech, utterance_id="next")
    eng.end_audio()
    frames = _run(eng)
    played = [f for f in frames if f.utterance_id == "next"]
    assert np.array_equal(np.concatenate([f.audio for f in played])[: speech.size], speech)
    assert all(f.utterance_id in (None, "next") for f in frames)
