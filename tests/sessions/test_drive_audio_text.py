"""SEND_AUDIO with the words it speaks (Data.Text, ours): an aligned mouth; bad text → Type 9
while the audio still plays."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest
from drive_harness import REQ, Harness, arun, audio, same_audio

from avatarcast.speech.audio import load_audio
from avatarcast.speech.text_lipsync import frame_labels
from avatarcast.speech.tts import PhonemeSpan, get_backend
from avatarcast.speech.visemes import Shape, shape_of_arpabet

CHUNK = 2560  # 160 ms
HUMAN_CHUNK = 10240  # 640 ms: 39 messages for the 24.6 s recording, under the flood limit
HUMAN = Path(__file__).resolve().parents[1] / "data" / "human"


@pytest.fixture(scope="module")
def human() -> tuple[np.ndarray, str, list[Shape]]:
    """A human recording with its words, and MFA's (independent) frame labels."""
    pcm = load_audio(HUMAN / "mfa_cold_corpus3.opus")
    text = (HUMAN / "mfa_cold_corpus3.lab").read_text()
    spans = []
    for line in (HUMAN / "mfa_cold_corpus3.phones.tsv").read_text().splitlines():
        if not line.startswith("#"):
            a, b, p = [*line.split("\t"), ""][:3]
            p = p.strip()
            spans.append(PhonemeSpan(float(a), float(b), p, shape_of_arpabet(p) if p else Shape.X))
    return pcm, text, frame_labels(spans, -(-pcm.size // 640))


async def _send(h: Harness, r: str, pcm: np.ndarray, first: dict, chunk: int = CHUNK) -> list[dict]:
    """Send `pcm` in chunks (the first with extra Data fields) and the final packet;
    returns the Type 9 messages that came back."""
    back = []
    h.clock.advance(1.0)  # a new second for the flood limit
    parts = [pcm[i : i + chunk] for i in range(0, pcm.size, chunk)]
    for seq, part in enumerate(parts, 1):
        back += await h.send(audio(r, seq, part, **(first if seq == 1 else {})))
    back += await h.send(audio(r, len(parts) + 1, None, True))
    return [m for m in back if m["Type"] == 9]


def _mouths(h: Harness, r: str) -> list[Shape]:
    return [f.mouth.shape for f in h.frames if f.utterance_id == r]


def test_audio_with_its_text_gets_the_aligned_mouth(human: tuple) -> None:
    # 1234 rendered frames: more than the harness's 30 s limit allows on a loaded machine.
    asyncio.run(asyncio.wait_for(_aligned_mouth(human), 180))


async def _aligned_mouth(human: tuple) -> None:
    pcm, text, truth = human
    h = Harness()
    assert await _send(h, REQ[0], pcm, {"Text": text}, HUMAN_CHUNK) == []
    await h.until_status(REQ[0], "AudioOver")
    assert await _send(h, REQ[1], pcm, {}, HUMAN_CHUNK) == []  # the same audio, no words
    await h.until_status(REQ[1], "AudioOver")
    assert same_audio(h.played(REQ[0]), pcm) and same_audio(h.played(REQ[1]), pcm)

    def acc(shapes: list[Shape]) -> float:
        assert len(shapes) == len(truth)
        return sum(a == b for a, b in zip(shapes, truth, strict=True)) / len(truth)

    with_text, without = acc(_mouths(h, REQ[0])), acc(_mouths(h, REQ[1]))
    # Measured 0.755 with the words (streamed, 640 ms chunks) vs 0.627 recognised (0.465 when
    # this test was written, 0.595 before the Asterisk voice joined the classifier's training
    # on 2026-12-06; the margin asked was +0.15 then).
    assert with_text >= 0.65 and with_text >= without + 0.1, (with_text, without)


@arun
async def test_bad_text_gets_type_9_and_the_audio_still_plays() -> None:
    speech = get_backend("espeak").synthesize("Bob made a map.", voice="en-us").pcm
    h = Harness()
    cases = [
        (REQ[0], {"Text": 42}, "must be a string"),
        (REQ[1], {"Text": "word " * 801}, "at most 4000"),
        (REQ[2], {"Text": ["Bob"]}, "must be a string"),
    ]
    for r, extra, why in cases:
        errors = await _send(h, r, speech, extra)
        assert len(errors) == 1, errors
        e = errors[0]
        assert (e["ReqId"], e["Seq"], e["ErrorCode"]) == (r, 1, 100001)
        assert why in e["ErrorMessage"] and "plays" in e["ErrorMessage"]
    # Text on a later chunk is refused the same way; that chunk is kept too.
    r = REQ[3]
    parts = [speech[i : i + CHUNK] for i in range(0, speech.size, CHUNK)]
    assert len(parts) >= 3
    errs = []
    for seq, part in enumerate(parts, 1):
        errs += await h.send(audio(r, seq, part, **({"Text": "Bob"} if seq == 2 else {})))
    await h.send(audio(r, len(parts) + 1, None, True))
    assert [(m["Seq"], m["ErrorCode"]) for m in errs if m["Type"] == 9] == [(2, 100001)]
    for r in REQ[:4]:
        await h.until_status(r, "AudioOver")
        assert h.statuses(r)[-1] == ("AudioOver", 1)
        assert same_audio(h.played(r), speech)
        # The mouth still moves: recognised from the audio.
        assert {Shape.A, Shape.X} < set(_mouths(h, r)) | {Shape.X}
