"""The types every text-to-speech backend shares: `Utterance`, `PhonemeSpan`, `TtsBackend`.

A backend turns text into an `Utterance`: mono int16 PCM at the timeline rate
(`SAMPLE_RATE_HZ`) and a list of `PhonemeSpan`s that tile the audio without gaps, from 0 to
its duration. Silence (leading, trailing, pauses) is a span too, with shape `Shape.X`, so the
text lip-sync and the evaluation script can walk the spans frame by frame without special
cases. Times are in seconds on the audio's own clock (sample index / SAMPLE_RATE_HZ).

The backends (`espeak`, `piper_tts`) import only this module; the registry and the voice
router (`tts`) import the backends, so the arrows run one way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from avatarcast import SAMPLE_RATE_HZ
from avatarcast.speech.visemes import Shape


@dataclass(frozen=True, slots=True)
class PhonemeSpan:
    """One phoneme of synthesized speech: [start_s, end_s) on the utterance's clock."""

    start_s: float
    end_s: float
    phoneme: str  # the backend's own mnemonic, e.g. espeak's "aI", "tS", "_:" (pause)
    shape: Shape

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s

    @property
    def is_silence(self) -> bool:
        return self.shape is Shape.X


@dataclass(slots=True)
class Utterance:
    """Synthesized speech: PCM at SAMPLE_RATE_HZ and the phoneme spans that tile it."""

    pcm: NDArray[np.int16]
    phonemes: list[PhonemeSpan]
    text: str
    voice: str  # the voice actually used (canonical name, e.g. "en-us+f3")

    @property
    def duration_s(self) -> float:
        return float(self.pcm.size) / SAMPLE_RATE_HZ


@runtime_checkable
class TtsBackend(Protocol):
    """What the engine needs from a speech synthesizer."""

    name: str

    def synthesize(
        self,
        text: str,
        voice: str | None = None,
        rate_wpm: int | None = None,
        pitch: int | None = None,
    ) -> Utterance:
        """Speak `text`.

        voice: a backend voice name or language code (None → the backend's default).
        rate_wpm: speaking rate in words per minute (None → the voice's default).
        pitch: base pitch 0..100, 50 = normal (None → the voice's default).
        Raises TextInputError for empty/too long text or an unknown voice, SettingsError for
        an out-of-range rate or pitch, TtsError when the engine itself fails.
        """
        ...

    def voices(self) -> list[str]:
        """Voice names / language codes accepted by `synthesize`."""
        ...

    def resolve_voice(self, voice: str) -> str:
        """The backend's name of `voice`; TextInputError if `synthesize` would refuse it."""
        ...
