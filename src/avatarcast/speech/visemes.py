"""The nine mouth shapes (Rhubarb Lip Sync's set) and the phoneme → shape rules.

Every video frame carries one `MouthPose`: a shape and an openness in 0..1. The shape
vocabulary is shared by the text path (exact phoneme times from TTS), the audio path
(recognised phones plus an energy floor), the renderer and the evaluation script, so that
all of them agree on what "correct" means.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Shape(StrEnum):
    A = "A"  # lips closed: P B M
    B = "B"  # slightly open, teeth together: most consonants, and IY
    C = "C"  # open: EH AE AH IH EY AY
    D = "D"  # wide open: AA AW
    E = "E"  # slightly rounded: AO ER OY R
    F = "F"  # puckered: UW UH OW W
    G = "G"  # upper teeth on lower lip: F V
    H = "H"  # tongue up: L
    X = "X"  # rest (silence)


SHAPES: tuple[Shape, ...] = tuple(Shape)

# How open the jaw is for each shape when fully articulated; the lip-sync engines scale this
# by loudness and coarticulation, the renderer draws the shape at the resulting openness.
DEFAULT_OPEN: dict[Shape, float] = {
    Shape.A: 0.0,
    Shape.B: 0.25,
    Shape.C: 0.6,
    Shape.D: 1.0,
    Shape.E: 0.5,
    Shape.F: 0.35,
    Shape.G: 0.2,
    Shape.H: 0.5,
    Shape.X: 0.0,
}


@dataclass(frozen=True, slots=True)
class MouthPose:
    """The mouth of one video frame."""

    shape: Shape
    open: float  # 0 = closed, 1 = fully open for this shape

    def __post_init__(self) -> None:
        if not 0.0 <= self.open <= 1.0:
            raise ValueError(f"openness {self.open} outside 0..1")


REST = MouthPose(Shape.X, 0.0)


# ARPAbet (CMU dictionary / pocketsphinx phone set), stress digits removed.
ARPABET_TO_SHAPE: dict[str, Shape] = {
    **{p: Shape.A for p in ("P", "B", "M")},
    **{
        p: Shape.B
        for p in (
            "K",
            "G",
            "T",
            "D",
            "N",
            "NG",
            "S",
            "Z",
            "SH",
            "ZH",
            "CH",
            "JH",
            "TH",
            "DH",
            "Y",
            "HH",
            "IY",
        )
    },
    **{p: Shape.C for p in ("EH", "AE", "AH", "IH", "EY", "AY")},
    **{p: Shape.D for p in ("AA", "AW")},
    **{p: Shape.E for p in ("AO", "ER", "OY", "R")},
    **{p: Shape.F for p in ("UW", "UH", "OW", "W")},
    **{p: Shape.G for p in ("F", "V")},
    "L": Shape.H,
    **{p: Shape.X for p in ("SIL", "+NSN+", "+SPN+", "+BREATH+", "+NOISE+", "+UH+", "+UM+")},
}


def shape_of_arpabet(phone: str) -> Shape:
    """Mouth shape of an ARPAbet phone (stress digits ignored); unknown phones are B."""
    p = phone.strip().upper().rstrip("012")
    return ARPABET_TO_SHAPE.get(p, Shape.B)
