"""Words of an English transcript as pocketsphinx's dictionary knows them, and pronunciations
for the words it does not know.

Transcripts of recorded speech carry annotations ("[laughs]", "<noise>", "{cough}") and words
no dictionary has ("yknow", names, made-up words). Annotations are dropped; an unknown word
gets espeak-ng's pronunciation mapped to ARPAbet, so forced alignment still accounts for its
sound instead of failing or stretching the neighbours over it.
"""

from __future__ import annotations

import re

from avatarcast.errors import AvatarcastError

# [..], <..>, {..}: annotation conventions of common transcript formats (MFA, Kaldi, CHAT).
_ANNOTATION_RE = re.compile(r"\[[^\]]*\]|<[^>]*>|\{[^}]*\}")
_WORD_RE = re.compile(r"[a-z]+(?:'[a-z]+)*")

# espeak-ng en-us mnemonics → ARPAbet (the pocketsphinx en-us acoustic model's phone set).
# Diphthongs and r-coloured vowels map to their nearest single ARPAbet phone or a pair.
ESPEAK_TO_ARPABET: dict[str, str] = {
    "p": "P", "b": "B", "m": "M", "f": "F", "v": "V", "T": "TH", "D": "DH",
    "t": "T", "d": "D", "t#": "T", "n": "N", "n-": "N", "N": "NG", "k": "K", "g": "G",
    "s": "S", "z": "Z", "S": "SH", "Z": "ZH", "tS": "CH", "dZ": "JH", "h": "HH", "j": "Y",
    "w": "W", "l": "L", "@L": "AH L", "r": "R", "r-": "R", "x": "K", "?": "T",
    "@": "AH", "@2": "AH", "a#": "AH", "V": "AH", "3": "ER", "3:": "ER",
    "a": "AE", "aa": "AE", "E": "EH", "e@": "EH R", "eI": "EY", "aI": "AY", "aU": "AW",
    "I": "IH", "I2": "IH", "I#": "IH", "i@": "IH R", "i@3": "IH R", "i": "IY", "i:": "IY",
    "0": "AA", "A:": "AA", "A@": "AA R", "O:": "AO", "O2": "AO", "O@": "AO R", "o@": "AO R",
    "OI": "OY", "U": "UH", "U@": "UH R", "u:": "UW", "oU": "OW",
}  # fmt: skip


def transcript_words(text: str) -> list[str]:
    """Lower-case words of a transcript, annotations and punctuation dropped."""
    clean = _ANNOTATION_RE.sub(" ", text.lower().replace("’", "'"))
    return _WORD_RE.findall(clean)


def espeak_arpabet(word: str) -> str | None:
    """ARPAbet pronunciation of `word` by espeak-ng (en-us), None when espeak is unavailable
    or says nothing we can map."""
    from avatarcast.speech.espeak import shared_backend

    try:
        mnemonics = shared_backend().phonemize(word, "en-us")
    except AvatarcastError:
        return None
    phones = [ESPEAK_TO_ARPABET[m] for m in mnemonics if m in ESPEAK_TO_ARPABET]
    return " ".join(phones) if phones else None
