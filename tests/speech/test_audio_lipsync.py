"""Audio-driven streaming lip-sync: what the mouth does for real (synthetic) speech."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from avatarcast.speech.audio_lipsync import StreamingLipSync, track_from_audio
from avatarcast.speech.recognizer import PhoneRecognizer
from avatarcast.speech.tts import Utterance, get_backend
from avatarcast.speech.visemes import MouthPose, Shape

SPF = 640
LEAD = np.zeros(8000, np.int16)  # 0.5 s of silence around the speech


@pytest.fixture(scope="module")
def rec() -> PhoneRecognizer:
    return PhoneRecognizer()


@pytest.fixture(scope="module")
def bob() -> Utterance:
    return get_backend("espeak").synthesize("Bob bought a map.", voice="en-us", rate_wpm=150)


@pytest.fixture(scope="module")
def bob_padded(bob: Utterance) -> np.ndarray:
    return np.concatenate([LEAD, bob.pcm, LEAD])


def run(engine: StreamingLipSync, pcm: np.ndarray, chunk: int) -> list[MouthPose]:
    engine.reset()
    out: list[MouthPose] = []
    for i in range(0, pcm.size, chunk):
        out += engine.push(pcm[i : i + chunk])
    return out + engine.finish()


def closure_frames(utt: Utterance, offset_s: float) -> list[tuple[int, int]]:
    """Frame ranges of the true P/B/M closures (espeak may split one into two spans)."""
    out = []
    for s in utt.phonemes:
        if s.shape is Shape.A:
            out.append((int((s.start_s + offset_s) * 25), int((s.end_s + offset_s) * 25)))
    return out


@pytest.mark.parametrize("mode", ["audio", "recognizer", "text", "text-align"])
def test_closures_visible_and_silence_rests(
    mode: str, bob: Utterance, bob_padded: np.ndarray, rec: PhoneRecognizer
) -> None:
    if mode == "audio":
        track = run(StreamingLipSync(), bob_padded, 2560)
    elif mode == "recognizer":
        track = run(StreamingLipSync(recognizer=rec, method="recognizer"), bob_padded, 2560)
    elif mode == "text":
        track = track_from_audio(bob_padded, text="Bob bought a map.", text_method="dtw")
    else:
        track = track_from_audio(bob_padded, text="Bob bought a map.")  # forced alignment
    shapes = "".join(p.shape for p in track)
    assert len(track) == -(-bob_padded.size // SPF)
    for f0, f1 in closure_frames(bob, LEAD.size / 16000):
        near = shapes[max(0, f0 - 1) : f1 + 2]
        assert "A" in near, (mode, f0, f1, shapes)
    # The leading and trailing silences rest (allowing one frame at each speech edge).
    lead_frames = LEAD.size // SPF
    assert set(shapes[: lead_frames - 1]) == {"X"}, shapes
    assert set(shapes[-(lead_frames - 1) :]) == {"X"}, shapes
    assert all(p.open == 0.0 for p in track if p.shape in (Shape.X, Shape.A))
    assert any(p.open > 0.3 for p in track)


def test_pause_rests_without_trembling(rec: PhoneRecognizer) -> None:
    tts = get_backend("espeak")
    a = tts.synthesize("Hello there, my name is Bob.", voice="en-gb").pcm
    b = tts.synthesize("Nice to meet you.", voice="en-gb").pcm
    gap = np.zeros(16000, np.int16)
    gap[::7] = 3  # a little hiss in the pause
    pcm = np.concatenate([a, gap, b])
    track = run(StreamingLipSync(), pcm, 2560)
    g0, g1 = -(-a.size // SPF) + 1, (a.size + gap.size) // SPF - 1
    pause = track[g0:g1]
    assert len(pause) >= 20
    assert all(p == pause[0] for p in pause) and pause[0] == MouthPose(Shape.X, 0.0)
    assert any(p.shape is not Shape.X for p in track[g1 + 1 :])


def test_a_short_gap_closes_on_its_last_frame_and_rests_before() -> None:
    """Three silent frames between two phrases: the classifier hears silence there, which
    stays rest (X), and the lips close on the last one, just before speech resumes."""
    tts = get_backend("espeak")

    def trimmed(text: str) -> np.ndarray:
        pcm = tts.synthesize(text, voice="en-us").pcm
        loud = np.flatnonzero(np.abs(pcm) > 300)
        return pcm[loud[0] : loud[-1] + 1]

    a, b = trimmed("I saw a whale"), trimmed("over the sea")
    a = np.concatenate([a, np.zeros(-a.size % SPF, np.int16)])  # the gap starts on a frame
    gap = np.zeros(3 * SPF, np.int16)
    pcm = np.concatenate([LEAD, a, gap, b, LEAD])
    track = run(StreamingLipSync(), pcm, 2560)
    g0 = (LEAD.size + a.size) // SPF
    shapes = "".join(p.shape for p in track)
    assert shapes[g0 : g0 + 3] == "XXA", shapes[g0 - 4 : g0 + 7]
    assert shapes[g0 - 1] not in "XA" and shapes[g0 + 4] != "X", shapes[g0 - 4 : g0 + 7]


@pytest.mark.parametrize(
    ("language", "method", "lookahead"),
    [("en", "model", 200), ("en", "model", 40), ("en", "recognizer", 200), ("zh", "floor", 200)],
)
def test_chunking_does_not_change_the_track(
    language: str, method: str, lookahead: int, bob_padded: np.ndarray, rec: PhoneRecognizer
) -> None:
    engine = StreamingLipSync(
        language=language, recognizer=rec, method=method, lookahead_ms=lookahead
    )
    pcm = bob_padded[:30000]
    reference = run(engine, pcm, pcm.size)
    assert run(engine, pcm, 2560) == reference
    assert run(engine, pcm, 1) == reference
    assert run(engine, pcm, 333) == reference


def test_streaming_lag_and_frame_count(bob_padded: np.ndarray, rec: PhoneRecognizer) -> None:
    engine = StreamingLipSync(lookahead_ms=200)
    assert engine.lookahead_ms == 200
    committed = 0
    pushed = 0
    rng = np.random.default_rng(1)
    while pushed < bob_padded.size:
        k = int(rng.integers(1, 3000))
        committed += len(engine.push(bob_padded[pushed : pushed + k]))
        pushed = min(bob_padded.size, pushed + k)
        # Frame n is committed as soon as audio up to (n+1)/25 s + 200 ms is in, not later.
        assert committed == max(0, (pushed - 3200) // SPF)
        assert pushed / SPF - committed <= 200 / 40 + 1
    committed += len(engine.finish())
    assert committed == -(-bob_padded.size // SPF)
    assert engine.finish() == []


@pytest.mark.parametrize("n", [1, 639, 640, 641, 5000])
def test_finish_pads_to_whole_frames(n: int) -> None:
    engine = StreamingLipSync(language="zh", lookahead_ms=120)
    out = engine.push(np.zeros(n, np.int16)) + engine.finish()
    assert len(out) == -(-n // SPF)


def test_quiet_white_noise_rests(rec: PhoneRecognizer) -> None:
    noise = np.random.default_rng(0).normal(0, 60, 3 * 16000).astype(np.int16)
    for lang, method in (("en", "model"), ("en", "recognizer"), ("zh", "model"), ("zh", "floor")):
        track = run(StreamingLipSync(language=lang, recognizer=rec, method=method), noise, 2560)
        assert {p.shape for p in track} == {Shape.X}


@pytest.mark.parametrize("method", ["model", "floor"])
def test_mandarin_moves_the_mouth(method: str) -> None:
    u = get_backend("espeak").synthesize("你好，我们去吃饭吧。", voice="cmn")
    pcm = np.concatenate([LEAD, u.pcm, LEAD])
    track = run(StreamingLipSync(language="zh", method=method), pcm, 2560)
    lead = LEAD.size // SPF
    speech = track[lead + 1 : lead + u.pcm.size // SPF - 1]
    moving = [p for p in speech if p.shape is not Shape.X]
    assert len(moving) >= 0.7 * len(speech)
    assert len({p.shape for p in moving}) >= 3  # not a single flapping shape
    assert {p.shape for p in track[: lead - 1]} == {Shape.X}
    assert {p.shape for p in track[-(lead - 1) :]} == {Shape.X}


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        StreamingLipSync(lookahead_ms=250, language="zh")
    with pytest.raises(ValueError):
        StreamingLipSync(sample_rate=48000, language="zh")
    with pytest.raises(ValueError):
        StreamingLipSync(method="rhubarb")
    with pytest.raises(TypeError):
        StreamingLipSync(language="zh").push(np.zeros(10, np.float32))  # type: ignore[arg-type]


_FUZZ = StreamingLipSync(language="zh")


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.lists(st.integers(-32768, 32767), min_size=0, max_size=1500).map(
            lambda v: np.array(v, np.int16)
        ),
        min_size=1,
        max_size=6,
    ),
    st.sampled_from([0, 40, 200]),
)
def test_random_chunks_never_raise(chunks: list[np.ndarray], lookahead: int) -> None:
    engine = StreamingLipSync(language="zh", lookahead_ms=lookahead)
    out: list[MouthPose] = []
    for c in chunks:
        out += engine.push(c)
    out += engine.finish()
    assert len(out) == -(-sum(c.size for c in chunks) // SPF)
    assert all(0.0 <= p.open <= 1.0 for p in out)


@settings(max_examples=15, deadline=None)
@given(st.binary(min_size=0, max_size=20000))
def test_random_audio_english_never_raises(raw: bytes) -> None:
    pcm = np.frombuffer(raw[: len(raw) // 2 * 2], np.int16)
    engine = _english()
    out = run(engine, pcm, 2560)
    assert len(out) == -(-pcm.size // SPF)
    assert all(0.0 <= p.open <= 1.0 for p in out)


_EN: list[StreamingLipSync] = []


def _english() -> StreamingLipSync:
    # One recognizer for all hypothesis examples (loading it takes ~0.1 s).
    if not _EN:
        _EN.append(StreamingLipSync(language="en"))
    return _EN[0]
