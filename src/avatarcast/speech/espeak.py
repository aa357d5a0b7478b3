"""espeak-ng through ctypes: speech plus sample-exact phoneme spans.

libespeak-ng (GPL-3) is a separate shared library that we load at run time with ctypes; we
do not link against it or ship it. The library is process-global and not thread-safe, so one
`_Engine` owns it, is created lazily on first use and every call goes through `_LOCK`.

Timing: with `espeakINITIALIZE_PHONEME_EVENTS` espeak reports a PHONEME event at the first
output sample of each phoneme. The event's `sample` field is that sample index at the
native 22050 Hz (`audio_position` is the same, floored to ms); we use it when the two agree
and fall back to `audio_position` otherwise. espeak renders a stop's closure silence at the
end of the *preceding* phoneme and fires the stop's event at the burst, so we move such
trailing digital silence into the following phoneme (`phonemes.native_spans`): lips are
already closed for p/b, the tongue already up for t/d — otherwise a "p" would show its lips
closed only after they have opened again.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import threading
from ctypes import POINTER, c_char, c_char_p, c_int, c_short, c_size_t, c_ubyte, c_uint, c_void_p
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from avatarcast import SAMPLE_RATE_HZ
from avatarcast.errors import SettingsError, TextInputError, TtsError
from avatarcast.speech.audio import resample
from avatarcast.speech.phonemes import SILENCE_AMP, native_spans, to_timeline
from avatarcast.speech.tts_types import Utterance

log = logging.getLogger(__name__)

# speak_lib.h constants (API revision 12; stable since espeak 1.48).
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INIT_PHONEME_EVENTS = 0x0001
_INIT_DONT_EXIT = 0x8000  # never let the library call exit() when its data is missing
_CHARS_UTF8 = 1
_PHONEMES = 0x100  # text inside [[ ]] is espeak phoneme code
_POS_CHARACTER = 1
_EVENT_LIST_TERMINATED = 0
_EVENT_PHONEME = 7
_PARAM_RATE = 1
_PARAM_PITCH = 3
_BUFFER_MS = 200  # callback granularity only; timing comes from the events

RATE_RANGE_WPM = (80, 450)  # espeakRATE_MINIMUM / espeakRATE_MAXIMUM
PITCH_RANGE = (0, 100)
DEFAULT_VOICE = "en-us"


class _EventId(ctypes.Union):
    _fields_ = [("number", c_int), ("name", c_char_p), ("string", c_char * 8)]


class _Event(ctypes.Structure):
    _fields_ = [
        ("type", c_int),
        ("unique_identifier", c_uint),
        ("text_position", c_int),
        ("length", c_int),
        ("audio_position", c_int),  # ms
        ("sample", c_int),  # sample index at the native rate
        ("user_data", c_void_p),
        ("id", _EventId),
    ]


class _Voice(ctypes.Structure):
    _fields_ = [
        ("name", c_char_p),
        ("languages", c_void_p),  # (priority byte, NUL-terminated name)* then NUL
        ("identifier", c_char_p),
        ("gender", c_ubyte),
        ("age", c_ubyte),
        ("variant", c_ubyte),
        ("xx1", c_ubyte),
        ("score", c_int),
        ("spare", c_void_p),
    ]


_SynthCallback = ctypes.CFUNCTYPE(c_int, POINTER(c_short), c_int, POINTER(_Event))

_SIGNATURES: dict[str, tuple[list[Any], Any]] = {
    "espeak_Initialize": ([c_int, c_int, c_char_p, c_int], c_int),
    "espeak_SetSynthCallback": ([_SynthCallback], None),
    "espeak_SetVoiceByName": ([c_char_p], c_int),
    "espeak_SetParameter": ([c_int, c_int, c_int], c_int),
    "espeak_GetParameter": ([c_int, c_int], c_int),
    "espeak_Synth": (
        [c_void_p, c_size_t, c_uint, c_int, c_uint, c_uint, c_void_p, c_void_p],
        c_int,
    ),
    "espeak_ListVoices": ([c_void_p], POINTER(POINTER(_Voice))),
    "espeak_Info": ([POINTER(c_char_p)], c_char_p),
    "espeak_TextToPhonemes": ([POINTER(c_void_p), c_int, c_int], c_char_p),
}


@dataclass(frozen=True, slots=True)
class VoiceInfo:
    key: str  # canonical name we report, e.g. "en-us", "cmn-latn-pinyin"
    identifier: str  # file under espeak-ng-data/voices|lang, what we pass to espeak
    name: str
    languages: tuple[tuple[str, int], ...]  # (language code, priority); lower is preferred


def _parse_languages(ptr: int | None) -> tuple[tuple[str, int], ...]:
    out: list[tuple[str, int]] = []
    if not ptr:
        return ()
    pos = ptr
    while True:
        prio = ctypes.string_at(pos, 1)[0]
        if prio == 0:
            break
        code = ctypes.string_at(pos + 1)
        out.append((code.decode("utf-8", "replace").lower(), prio))
        pos += 2 + len(code)
    return tuple(out)


def _load_library() -> ctypes.CDLL:
    names = [os.environ.get("AVATARCAST_ESPEAK_LIB"), "libespeak-ng.so.1", "libespeak-ng.so"]
    names.append(ctypes.util.find_library("espeak-ng"))
    errors: list[str] = []
    for name in names:
        if not name:
            continue
        try:
            return ctypes.CDLL(name)
        except OSError as exc:
            errors.append(str(exc))
    raise TtsError("cannot load libespeak-ng (install espeak-ng): " + "; ".join(errors))


class _Engine:
    """The one initialised libespeak-ng of this process. Use only while holding _LOCK."""

    def __init__(self) -> None:
        lib = _load_library()
        for fname, (argtypes, restype) in _SIGNATURES.items():
            func = getattr(lib, fname)
            func.argtypes, func.restype = argtypes, restype
        self.lib = lib
        rate = lib.espeak_Initialize(
            _AUDIO_OUTPUT_SYNCHRONOUS, _BUFFER_MS, None, _INIT_PHONEME_EVENTS | _INIT_DONT_EXIT
        )
        if rate <= 0:
            raise TtsError("espeak_Initialize failed (is espeak-ng-data installed?)")
        self.native_rate_hz = rate
        # Keep the CFUNCTYPE object referenced for the life of the process: the library
        # holds a raw pointer to it.
        self._callback = _SynthCallback(self._on_synth)
        lib.espeak_SetSynthCallback(self._callback)
        data_path = c_char_p()
        version = lib.espeak_Info(ctypes.byref(data_path))
        self.version = (version or b"?").decode()
        self.data_path = (data_path.value or b"").decode()
        self.default_rate = lib.espeak_GetParameter(_PARAM_RATE, 0)
        self.default_pitch = lib.espeak_GetParameter(_PARAM_PITCH, 0)
        self.voices = self._list_voices()
        self.variants = self._list_variants()
        self._chunks: list[NDArray[np.int16]] = []
        self._marks: list[tuple[int, int, str]] = []
        self._failed = False
        self.cmn_reads_hanzi = self._probe_cmn()

    def _list_voices(self) -> list[VoiceInfo]:
        arr = self.lib.espeak_ListVoices(None)
        found: list[VoiceInfo] = []
        keys: set[str] = set()
        i = 0
        while arr and arr[i]:
            v = arr[i].contents
            i += 1
            ident = (v.identifier or b"").decode("utf-8", "replace")
            if not ident or ident.startswith(("mb/", "!v")):
                continue  # MBROLA voices need the separate mbrola program; "!v" are variants
            langs = _parse_languages(v.languages)
            key = langs[0][0] if langs else ident.rsplit("/", 1)[-1].lower()
            if key in keys:
                key = ident.rsplit("/", 1)[-1].lower()
            keys.add(key)
            name = (v.name or b"").decode("utf-8", "replace")
            found.append(VoiceInfo(key, ident, name, langs))
        return found

    def _list_variants(self) -> set[str]:
        d = os.path.join(self.data_path, "voices", "!v")
        try:
            return {f.lower() for f in os.listdir(d)}
        except OSError:
            return set()

    def _probe_cmn(self) -> bool:
        """Whether the plain "cmn" voice reads Chinese characters as Chinese.

        Debian's espeak-ng 1.51 "cmn" voice says the tone digits of its own pinyin in
        English ("ni3" → "ni three"); "cmn-latn-pinyin" reads Hanzi correctly.
        """
        if not any(v.identifier == "sit/cmn" for v in self.voices):
            return True
        self.lib.espeak_SetVoiceByName(b"sit/cmn")
        buf = ctypes.create_string_buffer("你".encode())
        ptr = c_void_p(ctypes.addressof(buf))
        out = self.lib.espeak_TextToPhonemes(ctypes.byref(ptr), _CHARS_UTF8, 0) or b""
        return b"(en)" not in out

    def _on_synth(
        self, wav: ctypes._Pointer[c_short], n: int, events: ctypes._Pointer[_Event]
    ) -> int:
        try:
            if wav and n > 0:
                self._chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).astype(np.int16))
            if events:
                i = 0
                while events[i].type != _EVENT_LIST_TERMINATED:
                    ev = events[i]
                    i += 1
                    if ev.type == _EVENT_PHONEME:
                        name = ev.id.string.decode("utf-8", "replace")
                        self._marks.append((ev.sample, ev.audio_position, name))
        except Exception:  # an exception must not unwind through C
            log.exception("espeak callback failed")
            self._failed = True
            return 1  # abort this synthesis; synth() raises
        return 0

    def synth(
        self, text: bytes, identifier: str, rate: int, pitch: int, flags: int
    ) -> tuple[NDArray[np.int16], list[tuple[int, str]]]:
        """Native-rate PCM and (sample, mnemonic) phoneme starts of `text`."""
        if self.lib.espeak_SetVoiceByName(identifier.encode()) != 0:
            raise TtsError(f"espeak could not select voice {identifier!r}")
        self.lib.espeak_SetParameter(_PARAM_RATE, rate, 0)
        self.lib.espeak_SetParameter(_PARAM_PITCH, pitch, 0)
        self._chunks, self._marks, self._failed = [], [], False
        buf = ctypes.create_string_buffer(text)
        err = self.lib.espeak_Synth(
            buf, len(buf), 0, _POS_CHARACTER, 0, _CHARS_UTF8 | flags, None, None
        )
        if err != 0:
            raise TtsError(f"espeak_Synth failed with error {err}")
        if self._failed:
            raise TtsError("espeak synthesis aborted: collecting its output failed")
        pcm = np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)
        rate_ms = self.native_rate_hz / 1000.0
        marks: list[tuple[int, str]] = []
        for sample, ms, name in self._marks:
            # `sample` is "internal use" in speak_lib.h: trust it only when it agrees with
            # the documented millisecond position.
            pos = sample if abs(sample / rate_ms - ms) <= 2.0 else round(ms * rate_ms)
            marks.append((min(max(pos, 0), pcm.size), name))
        self._chunks, self._marks = [], []
        return pcm, marks


_LOCK = threading.Lock()
_ENGINE: _Engine | None = None


def _engine() -> _Engine:
    """The process-wide engine; call with _LOCK held."""
    global _ENGINE
    if _ENGINE is None:
        _ENGINE = _Engine()
    return _ENGINE


# Requested names that espeak itself does not know but users type.
_ALIASES = {"mandarin": "cmn", "chinese": "cmn", "english": "en", "zh-cn": "cmn"}


def _resolve(engine: _Engine, requested: str) -> tuple[str, str]:
    """(identifier[+variant] for espeak, canonical voice name) of a requested voice.

    Accepts a voice's language code ("en", "en-us", "cmn", "zh"), its name ("English
    (America)"), its file identifier ("gmw/en-US"), each optionally with a "+variant"
    ("en-us+f3"). Raises TextInputError for anything else.
    """
    raw = requested.strip()
    base, _, variant = raw.partition("+")
    key = base.strip().lower().replace("_", "-")
    key = _ALIASES.get(key, key)
    voice: VoiceInfo | None = None
    for v in engine.voices:
        names = (v.key, v.identifier.lower(), v.identifier.rsplit("/", 1)[-1].lower())
        if (
            key in names
            or key == v.name.lower().replace("_", "-")
            or (key == v.name.lower().replace(" ", "-"))
        ):
            voice = v
            break
    if voice is None:
        # A language code: the voice that lists it with the best (lowest) priority.
        ranked = [
            (prio, i, v)
            for i, v in enumerate(engine.voices)
            for code, prio in v.languages
            if code == key
        ]
        if ranked:
            voice = min(ranked, key=lambda t: (t[0], t[1]))[2]
    if voice is None:
        raise TextInputError(
            f"unknown voice {requested!r}; see EspeakBackend.voices() for the available ones"
        )
    if voice.identifier == "sit/cmn" and not engine.cmn_reads_hanzi:
        pinyin = next((v for v in engine.voices if v.key == "cmn-latn-pinyin"), None)
        voice = pinyin or voice
    ident, canonical = voice.identifier, voice.key
    if variant:
        var = variant.strip().lower()
        if var not in engine.variants:
            raise TextInputError(
                f"unknown voice variant {variant!r} in {requested!r}; "
                f"available: {', '.join(sorted(engine.variants))}"
            )
        ident, canonical = f"{ident}+{var}", f"{canonical}+{var}"
    return ident, canonical


def _language_of(canonical: str) -> str:
    """Language of a canonical voice name: "cmn-latn-pinyin+f2" → "cmn-latn-pinyin"."""
    return canonical.split("+", 1)[0]


def _normalize_edges(
    pcm: NDArray[np.int16], marks: list[tuple[int, str]], pad: int
) -> tuple[NDArray[np.int16], list[tuple[int, str]]]:
    """Make the leading and trailing silence exactly `pad` samples long.

    espeak's own edges vary: ~12 ms before the first sound, and 7 ms or 46 ms after the last
    depending on what the library synthesized before (its clause state leaks across calls).
    """
    loud = np.flatnonzero(np.abs(pcm.astype(np.int32)) > SILENCE_AMP)
    first, last = int(loud[0]), int(loud[-1]) + 1
    body = pcm[first:last]
    out = np.concatenate([np.zeros(pad, np.int16), body, np.zeros(pad, np.int16)])
    moved = [(min(max(pos - first, 0), body.size) + pad, name) for pos, name in marks]
    # Phonemes that started in the trimmed lead-in now start at the first sound; the lead-in
    # itself becomes the leading pause that _native_spans inserts.
    return out, moved


class EspeakBackend:
    """TTS through libespeak-ng: `synthesize` returns 16 kHz PCM and exact phoneme spans."""

    name = "espeak"

    def __init__(
        self,
        default_voice: str = DEFAULT_VOICE,
        max_chars: int = 5000,
        phoneme_input: bool = False,
        edge_silence_s: float = 0.05,
    ) -> None:
        """max_chars: longest accepted text. phoneme_input: let "[[...]]" in the text be
        espeak phoneme code (off by default so user text cannot inject it). edge_silence_s:
        exact length of the silence before the first and after the last sound."""
        if max_chars <= 0:
            raise SettingsError(f"max_chars must be positive, got {max_chars}")
        if not 0.0 <= edge_silence_s <= 2.0:
            raise SettingsError(f"edge_silence_s must be in 0..2 s, got {edge_silence_s}")
        self.edge_silence_s = edge_silence_s
        self.default_voice = default_voice
        self.max_chars = max_chars
        self.phoneme_input = phoneme_input

    def voices(self) -> list[str]:
        with _LOCK:
            engine = _engine()
            return sorted(v.key for v in engine.voices)

    def resolve_voice(self, voice: str) -> str:
        """The canonical name of `voice` as `synthesize` would read it ("EN_US" → "en-us");
        TextInputError if there is no such voice or variant. Speaks nothing."""
        with _LOCK:
            return _resolve(_engine(), voice)[1]

    def variants(self) -> list[str]:
        """Voice variants usable as "<voice>+<variant>", e.g. "en-us+f3"."""
        with _LOCK:
            return sorted(_engine().variants)

    def synthesize(
        self,
        text: str,
        voice: str | None = None,
        rate_wpm: int | None = None,
        pitch: int | None = None,
    ) -> Utterance:
        if not isinstance(text, str) or not text.strip():
            raise TextInputError("text is empty")
        if len(text) > self.max_chars:
            raise TextInputError(
                f"text is {len(text)} characters long; the limit is {self.max_chars}"
            )
        if rate_wpm is not None and not RATE_RANGE_WPM[0] <= rate_wpm <= RATE_RANGE_WPM[1]:
            raise SettingsError(
                f"speech rate {rate_wpm} wpm outside {RATE_RANGE_WPM[0]}..{RATE_RANGE_WPM[1]}"
            )
        if pitch is not None and not PITCH_RANGE[0] <= pitch <= PITCH_RANGE[1]:
            raise SettingsError(f"pitch {pitch} outside {PITCH_RANGE[0]}..{PITCH_RANGE[1]}")
        # NUL would end the C string early; other control characters espeak treats as space.
        clean = text.replace("\x00", " ")
        flags = _PHONEMES if self.phoneme_input else 0
        with _LOCK:
            engine = _engine()
            ident, canonical = _resolve(engine, voice or self.default_voice)
            pcm, marks = engine.synth(
                clean.encode("utf-8", "replace"),
                ident,
                engine.default_rate if rate_wpm is None else rate_wpm,
                engine.default_pitch if pitch is None else pitch,
                flags,
            )
            native_rate = engine.native_rate_hz
        if pcm.size == 0 or not np.any(np.abs(pcm.astype(np.int32)) > SILENCE_AMP):
            raise TextInputError(f"nothing to speak in {text[:40]!r}")
        pcm, marks = _normalize_edges(pcm, marks, round(self.edge_silence_s * native_rate))
        spans = native_spans(pcm, marks, native_rate, _language_of(canonical))
        out = resample(pcm, native_rate, SAMPLE_RATE_HZ)
        return Utterance(
            pcm=out,
            phonemes=list(to_timeline(spans, pcm.size, out.size, native_rate)),
            text=text,
            voice=canonical,
        )

    def phonemize(self, text: str, voice: str | None = None) -> list[str]:
        """espeak's phoneme mnemonics for `text` (no audio), stress marks removed.

        Used to pronounce words that a dictionary lacks (forced alignment of transcripts).
        Raises TextInputError for an unknown voice.
        """
        clean = text.replace("\x00", " ")
        with _LOCK:
            engine = _engine()
            ident, _ = _resolve(engine, voice or self.default_voice)
            if engine.lib.espeak_SetVoiceByName(ident.encode()) != 0:
                raise TtsError(f"espeak could not select voice {ident!r}")
            buf = ctypes.create_string_buffer(clean.encode("utf-8", "replace"))
            ptr = c_void_p(ctypes.addressof(buf))
            out: list[str] = []
            # One clause per call; the library advances `ptr` and sets it to NULL at the end.
            # Bits 8..23 of phonememode: the separator character between phonemes.
            while ptr.value:
                raw = engine.lib.espeak_TextToPhonemes(
                    ctypes.byref(ptr), _CHARS_UTF8, ord(" ") << 8
                )
                for tok in (raw or b"").decode("utf-8", "replace").split():
                    tok = tok.lstrip("',%=")
                    if tok:
                        out.append(tok)
        return out


_SHARED: EspeakBackend | None = None


def shared_backend() -> EspeakBackend:
    """One EspeakBackend per process (the library under it is global anyway)."""
    global _SHARED
    if _SHARED is None:
        _SHARED = EspeakBackend()
    return _SHARED


def library_info() -> dict[str, str]:
    """Version and data path of the loaded libespeak-ng (for `avatarcast doctor`-style output)."""
    with _LOCK:
        engine = _engine()
        return {"version": engine.version, "data_path": engine.data_path}
