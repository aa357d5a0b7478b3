"""Text-to-speech backends by name: the registry (`get_backend`, `register_backend`) and the
"auto" voice router.

The types a backend produces and implements (`Utterance`, `PhonemeSpan`, `TtsBackend`) live in
`tts_types`, which the backends import; this module imports the backends (lazily, on first
use) and re-exports the types for callers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from avatarcast.errors import SettingsError
from avatarcast.speech.tts_types import PhonemeSpan, TtsBackend, Utterance

__all__ = [
    "BACKENDS",
    "PhonemeSpan",
    "TtsBackend",
    "Utterance",
    "VoiceRouter",
    "check_backend",
    "get_backend",
    "register_backend",
]


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
