"""Phone recognizer and forced aligner: content checks on espeak speech."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from avatarcast.speech.recognizer import Aligner, PhoneRecognizer, normalize_words
from avatarcast.speech.tts import Utterance, get_backend
from avatarcast.speech.visemes import Shape

TEXT = "Bob bought a map."


@pytest.fixture(scope="module")
def utt() -> Utterance:
    return get_backend("espeak").synthesize(TEXT, voice="en-us", rate_wpm=150)


@pytest.fixture(scope="module")
def recognizer() -> PhoneRecognizer:
    return PhoneRecognizer()


def test_segments_cover_speech_and_are_chunking_independent(
    utt: Utterance, recognizer: PhoneRecognizer
) -> None:
    results = []
    for chunk in (160, 2560, utt.pcm.size, 777):
        recognizer.reset()
        for i in range(0, utt.pcm.size, chunk):
            recognizer.feed(utt.pcm[i : i + chunk])
        results.append(recognizer.finish())
    assert all(r == results[0] for r in results[1:])
    segs = results[0]
    phones = [p for _, _, p in segs]
    assert any(p in ("B", "P", "M") for p in phones), phones
    # Segments are ordered, non-overlapping and inside the audio.
    dur = utt.pcm.size / 16000
    for (a0, a1, _), (b0, _, _) in itertools.pairwise(segs):
        assert a0 < a1 <= b0 + 1e-9
    assert segs[-1][1] <= dur + 0.02


def test_stable_segments_do_not_change(utt: Utterance, recognizer: PhoneRecognizer) -> None:
    recognizer.reset()
    half = utt.pcm.size // 2
    recognizer.feed(utt.pcm[:half])
    horizon = half / 16000 - 0.2
    early = recognizer.segments(stable_before_s=horizon)
    recognizer.feed(utt.pcm[half:])
    final = recognizer.finish()
    assert early, "some segments must be stable after half the audio"
    # Stable segments keep their phone; the last one may be extended by the final pass.
    assert [p for _, _, p in early] == [p for _, _, p in final[: len(early)]]


def test_align_known_text(utt: Utterance) -> None:
    spans = Aligner().align(utt.pcm, TEXT)
    assert spans is not None
    assert spans[0].start_s == 0.0
    assert abs(spans[-1].end_s - utt.pcm.size / 16000) < 1e-6
    for a, b in itertools.pairwise(spans):
        assert a.end_s == pytest.approx(b.start_s)
    words_phones = [s.phoneme for s in spans if s.phoneme != "SIL"]
    assert words_phones[:3] == ["B", "AA", "B"]
    # Each true closure (espeak b/m/p) overlaps an aligned closure (A).
    for true in utt.phonemes:
        if true.shape is Shape.A:
            assert any(
                s.shape is Shape.A
                and s.start_s < true.end_s + 0.03
                and s.end_s > true.start_s - 0.03
                for s in spans
            ), true


def test_align_fails_gracefully(utt: Utterance) -> None:
    aligner = Aligner()
    assert aligner.align(utt.pcm, "qwzxv blorptastic") is None  # unknown words
    assert aligner.align(utt.pcm, "") is None
    assert aligner.align(np.zeros(800, np.int16), TEXT) is None  # too short


def test_normalize_words() -> None:
    assert normalize_words("Don’t STOP, Bob!  It's 5 o'clock.") == [
        "don't",
        "stop",
        "bob",
        "it's",
        "o'clock",
    ]
