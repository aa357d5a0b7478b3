"""Text-to-speech backend interface: speech audio plus exact phoneme times.

A backend turns text into an `Utterance`: mono int16 PCM at the timeline rate
(`SAMPLE_RATE_HZ`) and a list of `PhonemeSpan`s that tile the audio without gaps, from 0 to
its duration. Silence (leading, trailing, pauses) is a span too, with shape `Shape.X`, so the
text lip-sync and the evaluation script can walk the spans frame by frame without special
cases. Times are in seconds on the audio's own clock (sample index / SAMPLE_RATE_HZ).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from avatarcast import SAMPLE_RATE_HZ
from avatarcast.errors import SettingsError
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


def _espeak() -> TtsBackend:
    from avatarcast.speech.espeak import shared_backend

    return shared_backend()


def _piper() -> TtsBackend:
    from avatarcast.speech.piper_tts import shared_backend

    return shared_backend()


def _auto() -> TtsBackend:
    return VoiceRouter()


# name → factory of the process's one instance; aliases point at the same factory.
_FACTORIES: dict[str, Callable[[], TtsBackend]] = {
    "auto": _auto,
    "espeak": _espeak,
    "espeak-ng": _espeak,
    "espeakng": _espeak,
    "piper": _piper,
}
_INSTANCES: dict[Callable[[], TtsBackend], TtsBackend] = {}
BACKENDS: tuple[str, ...] = ("auto", "espeak", "piper")  # canonical names, for messages and docs


def register_backend(name: str, factory: Callable[[], TtsBackend]) -> None:
    """Make `get_backend(name)` (and so the `tts_backend` setting) return `factory()`.

    The factory is called once, on first use. A backend shipped outside this package (or a
    differently configured instance of one) plugs in here; `name` is case-insensitive.
    """
    key = name.strip().lower()
    if not key:
        raise SettingsError("a TTS backend needs a name")
    _FACTORIES[key] = factory


def check_backend(name: str) -> None:
    """Raise SettingsError unless `name` is a registered backend (cheap: nothing is loaded)."""
    if name.strip().lower() not in _FACTORIES:
        available = ", ".join(sorted(_FACTORIES))
        raise SettingsError(f"unknown TTS backend {name!r}; available: {available}")


class VoiceRouter:
    """The "auto" backend: piper voices by their names ("en_US-joe-medium", "joe"), espeak-ng
    for everything else (language codes, espeak voice names) — so a session or a single
    request picks a voice by name alone."""

    name = "auto"

    def __init__(self) -> None:
        from avatarcast.speech.espeak import shared_backend as espeak
        from avatarcast.speech.piper_tts import shared_backend as piper

        self.espeak = espeak()
        self.piper = piper()

    def backend_for(self, voice: str | None) -> TtsBackend:
        if voice and self.piper.resolve(voice) is not None:
            return self.piper
        return self.espeak

    def synthesize(
        self,
        text: str,
        voice: str | None = None,
        rate_wpm: int | None = None,
        pitch: int | None = None,
    ) -> Utterance:
        return self.backend_for(voice).synthesize(text, voice, rate_wpm, pitch)

    def sentences(
        self, text: str, voice: str | None = None, rate_wpm: int | None = None
    ) -> Iterator[Utterance]:
        """Piper: one utterance per sentence as it is made; espeak (fast): the whole text."""
        backend = self.backend_for(voice)
        if backend is self.piper:
            return self.piper.sentences(text, voice, rate_wpm)
        return iter([backend.synthesize(text, voice, rate_wpm)])

    def voices(self) -> list[str]:
        return self.piper.voices() + self.espeak.voices()

    def resolve_voice(self, voice: str) -> str:
        return self.backend_for(voice).resolve_voice(voice)


def get_backend(name: str = "auto") -> TtsBackend:
    """The TTS backend called `name` (one shared instance per name and process).

    Raises SettingsError for an unknown backend name.
    """
    check_backend(name)
    factory = _FACTORIES[name.strip().lower()]
    backend = _INSTANCES.get(factory)
    if backend is None:
        backend = _INSTANCES[factory] = factory()
    return backend
