"""espeak-ng phoneme mnemonics → mouth shapes.

espeak reports phonemes by its own ASCII mnemonics (Kirshenbaum-like: "tS", "aI", "@L",
Mandarin "ts.h", "iA"), one table per language. The English and Mandarin tables below list
every mnemonic espeak-ng 1.51 produced for a broad test text (en-us, en-gb) and for all
initial × final pinyin combinations (cmn); their shapes follow `visemes.ARPABET_TO_SHAPE`
(the same vowel → same shape as in the audio path) so both lip-sync engines agree.

Any other language, and any mnemonic missing from a table, goes through `fallback_shape`,
which classifies by the letters (lips, labiodental, l, rounded, open vowels, else B), so every
espeak voice works without an exception; misses in the en/cmn tables log a warning once.

The second half turns espeak's phoneme events (sample positions) into spans that tile the
audio: pauses merged, stop closures moved into the stop, inter-syllable micro-pauses folded
into the next phoneme, then mapped onto the 16 kHz timeline.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from avatarcast import SAMPLE_RATE_HZ
from avatarcast.speech.tts_types import PhonemeSpan
from avatarcast.speech.visemes import Shape

log = logging.getLogger(__name__)


def _table(*groups: tuple[Shape, str]) -> dict[str, Shape]:
    """Build a mnemonic → shape table from (shape, "space separated mnemonics") rows."""
    return {m: shape for shape, names in groups for m in names.split()}


# English (en, en-us, en-gb ...); ARPAbet equivalents in the comments.
EN_SHAPES: dict[str, Shape] = _table(
    (Shape.A, "p b m"),
    (Shape.G, "f v"),
    (Shape.H, "l @L"),  # L; syllabic l ("bottle")
    (Shape.F, "w"),
    (Shape.E, "r r-"),  # R; syllabic r
    # other consonants, teeth nearly together: T D (flap t#) K G N NG S Z SH ZH CH JH TH
    # DH HH Y, "x" (loch), "?" (glottal stop), syllabic n
    (Shape.B, "t d t# k g n n- N s z S Z tS dZ T D h j x ?"),
    (Shape.C, "@ @2 a# V"),  # AH (schwa, reduced a, strut)
    (Shape.C, "a aa E e@ eI aI"),  # AE (trap, bath), EH (dress, square), EY, AY
    (Shape.C, "I I2 I# i@ i@3"),  # IH (kit, reduced i, near)
    (Shape.B, "i i:"),  # IY (happy, fleece)
    (Shape.D, "0 A: A@ aU"),  # AA (lot, palm, start), AW
    (Shape.E, "O: O2 O@ o@ OI 3 3:"),  # AO (thought, north, force), OY, ER (letter, nurse)
    (Shape.F, "U U@ u: oU"),  # UH (foot, cure), UW, OW
)

# Mandarin (cmn, cmn-latn-pinyin): initials, then finals by how the mouth looks on the main
# vowel; pinyin in the comments.
CMN_SHAPES: dict[str, Shape] = _table(
    (Shape.A, "p ph m"),  # b p m
    (Shape.G, "f v"),
    (Shape.H, "l"),
    (Shape.B, "t th n N k kh X"),  # d t n -ng g k h
    (Shape.B, "tS; tS;h S; ts. ts.h s. ts tsh s j"),  # j q x, zh ch sh, z c s, y-
    (Shape.E, "z."),  # r: retroflex with rounded lips
    (Shape.F, "w"),
    (Shape.D, "A iA Au"),  # a/ang, ia/iang, ao (opens wide before rounding)
    (Shape.C, "a ai ua uai"),  # an, ai, uan, uai (fronted a)
    (Shape.C, "ei @ o- iE yE y&"),  # ei, en/eng, e, ie/ian, üe, üan
    (Shape.B, "i i. i["),  # i, zhi chi shi ri, zi ci si
    (Shape.E, "o uo io @r uei u@"),  # o, uo, yo, er, ui, un
    (Shape.F, "u ou ong iou"),  # u, ou, ong, iu
    (Shape.F, "y y@ yi yu"),  # ü, ün, qun, yong
)

LANGUAGE_TABLES: dict[str, dict[str, Shape]] = {"en": EN_SHAPES, "cmn": CMN_SHAPES}

# Reduced (typically unstressed, short) vowels: the text lip-sync opens the jaw less.
REDUCED_VOWELS: frozenset[str] = frozenset(
    {"@", "@2", "a#", "I2", "I#", "i", "3", "@L", "o-", "i.", "i["}
)

_VOWEL_LETTERS = frozenset("aeiouyAEIOUY@3&0269")
_warned: set[tuple[str, str]] = set()


def is_pause(mnemonic: str) -> bool:
    """espeak writes every pause as '_' plus a length mark: _ _: _! _| _^ ..."""
    return mnemonic == "" or mnemonic.startswith("_")


def is_modifier(mnemonic: str) -> bool:
    """A mark espeak sometimes reports as its own phoneme (";" palatalisation, "'" stress).

    It has no articulation of its own: the caller merges it into the previous phoneme.
    """
    if is_pause(mnemonic):
        return False
    return mnemonic != "" and not any(c.isalnum() or c in "@&?" for c in mnemonic)


def language_marker(mnemonic: str) -> str | None:
    """espeak emits "(en)" when it switches language inside a text: return "en", else None."""
    if len(mnemonic) > 2 and mnemonic.startswith("(") and mnemonic.endswith(")"):
        return mnemonic[1:-1].lower()
    return None


def table_language(language: str) -> str:
    """Phoneme-table key of a voice language: "en-us" → "en", "cmn-latn-pinyin" → "cmn"."""
    base = language.lower().split("+", 1)[0].split("-", 1)[0]
    return "cmn" if base in ("zh", "cmn") else base


def fallback_shape(mnemonic: str) -> Shape:
    """Shape of any espeak mnemonic of any language, by its letters.

    espeak mnemonics across languages share conventions: the first letter is the base
    sound, then modifiers (: long, # ; . - ' variants, h aspiration, digits). So: pauses → X,
    p b m → A, f v → G, l → H, w → F, r/R → E; a vowel-initial mnemonic by its first vowel
    (a A 0 → D, o O → E, u U y Y w → F, i (alone) → B, other vowels → C); anything else → B.
    """
    if is_pause(mnemonic):
        return Shape.X
    core = mnemonic.lstrip("'\",%=")
    if not core:
        return Shape.B
    first = core[0]
    if first in "pbm" and (len(core) == 1 or not core[1].isalpha() or core[1] == "h"):
        return Shape.A
    if first in "fv":
        return Shape.G
    if first in "lL" and (len(core) == 1 or not core[1].isalpha()):
        return Shape.H
    if first == "w":
        return Shape.F
    if first in "rR" and (len(core) == 1 or not core[1].isalpha()):
        return Shape.E
    if first in _VOWEL_LETTERS:
        if first in "aA0":
            return Shape.D
        if first in "oO":
            return Shape.E
        if first in "uUyY":
            return Shape.F
        if first == "i" and (len(core) == 1 or core[1] in ":."):
            return Shape.B
        return Shape.C
    return Shape.B


def shape_for(mnemonic: str, language: str = "en") -> Shape:
    """Mouth shape of an espeak phoneme mnemonic in `language` (never raises)."""
    if is_pause(mnemonic):
        return Shape.X
    table = LANGUAGE_TABLES.get(table_language(language))
    if table is None:
        return fallback_shape(mnemonic)
    shape = table.get(mnemonic)
    if shape is not None:
        return shape
    # Variants of a known phoneme ("n-", "t#", "@5") before guessing by letters.
    stripped = mnemonic.rstrip("#-:;.0123456789")
    shape = table.get(stripped) if stripped else None
    if shape is None:
        shape = fallback_shape(mnemonic)
        key = (table_language(language), mnemonic)
        if key not in _warned:
            _warned.add(key)
            log.warning(
                "espeak phoneme %r (%s) not in the shape table; using %s",
                mnemonic,
                key[0],
                shape.value,
            )
    return shape


def is_reduced_vowel(mnemonic: str) -> bool:
    """Whether this is a reduced (short, unstressed) vowel, drawn with a smaller opening."""
    return mnemonic in REDUCED_VOWELS


# --- espeak phoneme events → spans -------------------------------------------------------

# |sample| at or below this (native int16) counts as digital silence: espeak writes exact
# zeros in closures and pauses, a little slack covers filter ringing.
SILENCE_AMP = 8
MIN_CLOSURE_S = 0.005
MAX_INNER_PAUSE_S = 0.05


def _trailing_silence(pcm: NDArray[np.int16], start: int, end: int) -> int:
    """Number of digitally silent samples at the end of pcm[start:end]."""
    seg = np.abs(pcm[start:end].astype(np.int32)) > SILENCE_AMP
    loud = np.flatnonzero(seg)
    return (end - start) if loud.size == 0 else (end - start - 1 - int(loud[-1]))


def native_spans(
    pcm: NDArray[np.int16], marks: list[tuple[int, str]], rate_hz: int, language: str
) -> list[tuple[int, int, str, str]]:
    """(start, end, mnemonic, language) at the native rate, tiling [0, len(pcm))."""
    starts: list[tuple[int, str, str]] = []
    lang = language
    for pos, name in marks:
        switch = language_marker(name)
        if switch is not None:  # "(en)" inside a cmn text: the phoneme table changes
            lang = switch
            continue
        if starts and is_modifier(name):
            continue  # ";" etc.: part of the previous phoneme
        if starts and pos < starts[-1][0]:
            pos = starts[-1][0]  # never let a late-reported event run time backwards
        starts.append((pos, name, lang))
    n = pcm.size
    if not starts or starts[0][0] > 0:
        starts.insert(0, (0, "_", language))  # leading silence before the first phoneme
    spans: list[_Span] = []
    for i, (pos, name, lang) in enumerate(starts):
        end = starts[i + 1][0] if i + 1 < len(starts) else n
        if end <= pos:
            continue
        if spans and is_pause(name) and is_pause(spans[-1].name):
            spans[-1].end = end  # "_:" then "_": one pause
            continue
        spans.append(_Span(pos, end, name, lang))
    # Move a stop's closure (digital silence at the end of the phoneme before it) into the
    # stop itself; before a pause the silence belongs to the pause.
    min_closure = int(MIN_CLOSURE_S * rate_hz)
    for prev, nxt in itertools.pairwise(spans):
        if is_pause(prev.name):
            continue
        quiet = _trailing_silence(pcm, prev.start, prev.end)
        if min_closure <= quiet < prev.end - prev.start:
            prev.end = nxt.start = prev.end - quiet
    # A pause shorter than a closure between two phonemes (Mandarin "_|" between syllables,
    # 12-40 ms) is the next consonant's closure, not a rest of the mouth.
    short = int(MAX_INNER_PAUSE_S * rate_hz)
    merged: list[_Span] = []
    for i, sp in enumerate(spans):
        inner = 0 < i < len(spans) - 1
        if inner and is_pause(sp.name) and sp.end - sp.start < short and merged:
            spans[i + 1].start = sp.start
            continue
        merged.append(sp)
    return [(s.start, s.end, s.name, s.lang) for s in merged if s.end > s.start]


@dataclass(slots=True)
class _Span:
    start: int
    end: int
    name: str
    lang: str


def to_timeline(
    spans: list[tuple[int, int, str, str]], n_native: int, n_out: int, native_rate: int
) -> Iterator[PhonemeSpan]:
    """Native-rate sample spans → seconds on the 16 kHz clock, ending exactly at n_out."""
    scale = SAMPLE_RATE_HZ / native_rate

    def at(pos: int) -> int:
        return n_out if pos >= n_native else min(round(pos * scale), n_out)

    for start, end, name, lang in spans:
        a, b = at(start), at(end)
        if b > a:
            yield PhonemeSpan(a / SAMPLE_RATE_HZ, b / SAMPLE_RATE_HZ, name, shape_for(name, lang))
