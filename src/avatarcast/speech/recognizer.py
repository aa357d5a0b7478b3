"""English phone recognition (streaming) and forced alignment with pocketsphinx.

Two tools for the audio lip-sync:

- `PhoneRecognizer`: phone-loop ("allphone") decoding with pocketsphinx's US-English acoustic
  model and phone bigram model. Audio is fed as it arrives; `segments()` can be read at any
  time, and segments that end more than ~150 ms before the newest audio no longer change.
- `align()`: forced alignment of a known transcript (CMU dictionary pronunciations), far more
  accurate than blind recognition. It returns None when it cannot align (unknown words, the
  search not reaching the end); callers fall back to recognition.

Determinism: pocketsphinx's live cepstral mean normalisation (CMN) carries over between
utterances, which makes the result depend on what was decoded before. Every utterance starts
from the same CMN estimate, and then the segmentation depends only on the samples, not on how
they were split into `feed` calls (checked in tests).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from avatarcast import SAMPLE_RATE_HZ
from avatarcast.speech.visemes import shape_of_arpabet

if TYPE_CHECKING:
    from avatarcast.speech.tts_types import PhonemeSpan

# pocketsphinx works on 10 ms frames.
PS_FRAME_S = 0.01

# Language weight of the phone bigram: the shared notes found lw≈2 right for allphone with
# default beams; tuned on the lip-sync TRAINING sentences (benchmarks/lipsync.py) between 1 and 6.
DEFAULT_LW = 2.0

# pocketsphinx's default initial CMN for this model (feat.params); every utterance restarts here.
CMN_INIT = "40,3,-1"

# Forced alignment search (see Aligner): beams and the prior of a pause between words.
ALIGN_BEAM = 1e-120
ALIGN_WORD_BEAM = 1e-100
ALIGN_SILPROB = 0.1

Segment = tuple[float, float, str]


@dataclass(frozen=True, slots=True)
class _ModelPaths:
    """Where the model files are inside the pocketsphinx wheel (read-only, loaded once)."""

    hmm: str
    phone_lm: str
    dictionary: str


@lru_cache(maxsize=1)
def _model_paths() -> _ModelPaths:
    from pocketsphinx import get_model_path

    return _ModelPaths(
        hmm=get_model_path("en-us/en-us"),
        phone_lm=get_model_path("en-us/en-us-phone.lm.bin"),
        dictionary=get_model_path("en-us/cmudict-en-us.dict"),
    )


@lru_cache(maxsize=1)
def _dictionary_words() -> frozenset[str]:
    """Words of the CMU dictionary (read-only), to reject unknown words before aligning."""
    words: set[str] = set()
    with open(_model_paths().dictionary, encoding="utf-8") as f:
        for line in f:
            w = line.split(" ", 1)[0]
            words.add(w.split("(", 1)[0])
    return frozenset(words)


@lru_cache(maxsize=1)
def _dither_table() -> NDArray[np.int16]:
    """A fixed, read-only pseudo-random noise table (std ≈ 3 LSB, one second long)."""
    rng = np.random.default_rng(20240611)
    return np.round(rng.normal(0.0, 3.0, SAMPLE_RATE_HZ)).astype(np.int16)


def _pcm_bytes(pcm: NDArray[np.int16], start: int = 0) -> bytes:
    """PCM plus faint dither indexed by absolute sample position.

    Synthetic speech (and digital silence) contains runs of exact zeros; their log energy
    breaks pocketsphinx's features and made forced alignment fail on most espeak sentences.
    The dither depends only on the sample's position, so chunking does not change it.
    """
    x = np.ascontiguousarray(pcm, dtype=np.int16).astype(np.int32)
    table = _dither_table()
    idx = (np.arange(x.size) + start) % table.size
    return np.clip(x + table[idx], -32768, 32767).astype(np.int16).tobytes()


class PhoneRecognizer:
    """Streaming allphone decoder: one instance per session (pocketsphinx is not thread-safe).

    Loading the model takes ~0.1 s; `reset()` starts the next utterance without reloading.
    """

    def __init__(self, lw: float = DEFAULT_LW) -> None:
        from pocketsphinx import Decoder

        paths = _model_paths()
        self._decoder: Any = Decoder(
            hmm=paths.hmm,
            allphone=paths.phone_lm,
            lw=lw,
            samprate=SAMPLE_RATE_HZ,
            loglevel="FATAL",
        )
        self._in_utt = False
        self._samples = 0
        self._final: list[Segment] | None = None
        self.reset()

    @property
    def samples_fed(self) -> int:
        return self._samples

    def reset(self) -> None:
        """Forget the current utterance and start a new one from the same initial state."""
        if self._in_utt:
            self._decoder.end_utt()
        # Rebuild the feature pipeline: live CMN keeps running sums that set_cmn alone does
        # not clear, which made partial results depend on earlier utterances.
        self._decoder.reinit_feat()
        self._decoder.set_cmn(CMN_INIT)
        self._decoder.start_utt()
        self._in_utt = True
        self._samples = 0
        self._final = None

    def feed(self, pcm: NDArray[np.int16]) -> None:
        """Decode more audio (16 kHz mono int16) of the current utterance."""
        if pcm.size == 0:
            return
        if not self._in_utt:
            raise RuntimeError("utterance already finished; call reset()")
        self._decoder.process_raw(_pcm_bytes(pcm, self._samples), False, False)
        self._samples += int(pcm.size)

    def finish(self) -> list[Segment]:
        """End the utterance (final search pass) and return all its segments."""
        if self._in_utt:
            self._decoder.end_utt()
            self._in_utt = False
            self._final = self._read_segments()
        return list(self._final or [])

    def segments(self, stable_before_s: float | None = None) -> list[Segment]:
        """Phone segments (start_s, end_s, phone) decoded so far.

        stable_before_s: keep only segments that end before this time (seconds); segments near
        the newest audio may still change, older ones do not.
        """
        segs = self._final if self._final is not None else self._read_segments()
        if stable_before_s is None:
            return list(segs)
        return [s for s in segs if s[1] <= stable_before_s]

    def _read_segments(self) -> list[Segment]:
        out: list[Segment] = []
        # seg() is None (not empty) before the search has any hypothesis, e.g. no audio yet.
        for s in self._decoder.seg() or ():
            # end_frame is inclusive in pocketsphinx.
            out.append((s.start_frame * PS_FRAME_S, (s.end_frame + 1) * PS_FRAME_S, s.word))
        return out


_WORD_RE = re.compile(r"[a-z]+(?:'[a-z]+)*")


def normalize_words(text: str) -> list[str]:
    """Lower-case words of `text` as the CMU dictionary spells them (punctuation dropped)."""
    return _WORD_RE.findall(text.lower().replace("’", "'"))


class Aligner:
    """Forced alignment of known English text; one instance per thread (~0.35 s to load)."""

    def __init__(self) -> None:
        from pocketsphinx import Decoder

        paths = _model_paths()
        # bestpath off: the alignment search needs the forward pass's own backtrace.
        # Beams far wider than the defaults: with them the search fell off the path on a
        # human recording with a cough and a long pause (no alignment at all); the cost is
        # ~0.02 CPU-s per audio-s. silprob: optional pauses between words are cheaper
        # (0.005 → 0.1 matched independent human phone labels better, 0.837 → 0.843).
        self._decoder: Any = Decoder(
            hmm=paths.hmm,
            dict=paths.dictionary,
            samprate=SAMPLE_RATE_HZ,
            bestpath=False,
            beam=ALIGN_BEAM,
            pbeam=ALIGN_BEAM,
            wbeam=ALIGN_WORD_BEAM,
            silprob=ALIGN_SILPROB,
            loglevel="FATAL",
        )
        self._added: dict[str, bool] = {}  # unknown word → whether a pronunciation was added

    def words(self, text: str) -> list[str]:
        """The words of `text` to align: annotations dropped; an unknown word gets espeak's
        pronunciation (or is dropped when it has none)."""
        from avatarcast.speech.pronounce import espeak_arpabet, transcript_words

        known = _dictionary_words()
        out: list[str] = []
        for w in transcript_words(text):
            if w not in known and w not in self._added:
                phones = espeak_arpabet(w.replace("'", ""))
                ok = False
                if phones:
                    try:
                        self._decoder.add_word(w, phones, True)
                        ok = True
                    except RuntimeError:
                        ok = False
                self._added[w] = ok
            if w in known or self._added.get(w):
                out.append(w)
        return out

    def align(self, pcm: NDArray[np.int16], text: str) -> list[PhonemeSpan] | None:
        """Phone spans of `text` spoken in `pcm`, tiling the audio (silence = "SIL", shape X).

        Returns None when the words cannot be aligned: no words, or the search ending before
        the audio does. Annotations ("[laughs]") are ignored; words missing from the CMU
        dictionary are pronounced by espeak-ng (`words`).
        """
        from avatarcast.speech.tts_types import PhonemeSpan

        words = self.words(text)
        if not words or pcm.size < SAMPLE_RATE_HZ // 10:
            return None
        d = self._decoder
        data = _pcm_bytes(pcm)
        try:
            # Pass 1 finds the word boundaries, pass 2 (set_alignment) the phone boundaries.
            d.set_cmn(CMN_INIT)
            d.set_align_text(" ".join(words))
            d.start_utt()
            d.process_raw(data, False, True)
            d.end_utt()
            d.set_alignment()
            d.start_utt()
            d.process_raw(data, False, True)
            d.end_utt()
            alignment = d.get_alignment()
        except RuntimeError:
            return None
        if alignment is None:
            return None
        total_s = pcm.size / SAMPLE_RATE_HZ
        spans: list[PhonemeSpan] = []
        t = 0.0
        for word in alignment:
            for ph in word:
                start = ph.start * PS_FRAME_S
                end = (ph.start + ph.duration) * PS_FRAME_S
                if start > t + 1e-6:
                    spans.append(PhonemeSpan(t, start, "SIL", shape_of_arpabet("SIL")))
                name = str(ph.name)
                spans.append(PhonemeSpan(start, end, name, shape_of_arpabet(name)))
                t = end
        n_phones = sum(1 for s in spans if s.phoneme != "SIL")
        # A failed search returns nothing or stops early; a real alignment covers the words
        # and reaches (nearly) the end of the audio.
        if n_phones == 0 or t < total_s - 0.3:
            return None
        if t < total_s:
            spans.append(PhonemeSpan(t, total_s, "SIL", shape_of_arpabet("SIL")))
        return spans
