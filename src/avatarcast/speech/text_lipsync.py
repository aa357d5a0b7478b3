"""Text-driven lip-sync: exact phoneme spans from TTS → one mouth pose per video frame.

Frame n covers [n / fps, (n + 1) / fps) on the utterance's clock.

`frame_labels` is the plain reference used by the evaluation script: each frame gets the
shape with the largest total overlap (nothing else). `track_from_phonemes` is what the
avatar shows; it starts from the same labels and then makes them look like speech:

* closures stay visible: a P/B/M (A) or F/V (G) span that covers at least 30 % of a frame
  wins that frame even when it is not the largest, and a closure that still won no frame
  takes the frame it overlaps most — a "b" of 20 ms must never vanish at 25 fps;
* no single-frame flicker: a one-frame shape between two frames of one other shape is
  stretched into a neighbour (if its sound reaches there) or dropped; closures are exempt;
* openness: each frame blends the openness (`DEFAULT_OPEN`, smaller for reduced or very
  short vowels) of the spans it overlaps, by overlap; the jaw starts opening one frame
  before a vowel (anticipation) and eases back to rest over 2-3 frames in silence.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from avatarcast import FRAME_RATE_HZ
from avatarcast.speech.phonemes import is_reduced_vowel
from avatarcast.speech.tts_types import PhonemeSpan
from avatarcast.speech.visemes import DEFAULT_OPEN, SHAPES, MouthPose, Shape

_INDEX: dict[Shape, int] = {s: i for i, s in enumerate(SHAPES)}
_CLOSURES: tuple[Shape, ...] = (Shape.A, Shape.G)  # lips visibly touching something
_VOWEL_SHAPES = frozenset({Shape.C, Shape.D, Shape.E, Shape.F})

CLOSURE_MIN_COVER = 0.3  # fraction of a frame a closure must cover to win it
SHORT_VOWEL_S = 0.06  # vowels shorter than this are drawn less open
REDUCED_OPEN_SCALE = 0.65
ANTICIPATION = 0.5  # fraction of the next frame's openness shown one frame early
REST_DECAY = 0.4  # openness multiplier per silent frame (0.6 → 0.24 → 0.1 → 0)
_OPEN_EPS = 0.03


def _overlaps(spans: Sequence[PhonemeSpan], n_frames: int, fps: int) -> NDArray[np.float64]:
    """Seconds of overlap of each frame (rows) with each shape (columns, SHAPES order)."""
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    if n_frames < 0:
        raise ValueError(f"n_frames must be >= 0, got {n_frames}")
    cover = np.zeros((n_frames, len(SHAPES)))
    for sp in spans:
        if sp.end_s <= sp.start_s:
            continue
        first = max(int(np.floor(sp.start_s * fps)), 0)
        last = min(int(np.ceil(sp.end_s * fps)), n_frames)
        col = _INDEX[sp.shape]
        for n in range(first, last):
            ov = min(sp.end_s, (n + 1) / fps) - max(sp.start_s, n / fps)
            if ov > 0:
                cover[n, col] += ov
    return cover


def _argmax_labels(cover: NDArray[np.float64]) -> list[Shape]:
    labels: list[Shape] = []
    for row in cover:
        # No span at all (past the end of speech) → rest. Ties go to the earlier shape in
        # SHAPES order (A before B ... X last), so a tie with silence shows the mouth.
        labels.append(SHAPES[int(np.argmax(row))] if row.max() > 0 else Shape.X)
    return labels


def frame_labels(
    spans: Sequence[PhonemeSpan], n_frames: int, fps: int = FRAME_RATE_HZ
) -> list[Shape]:
    """Reference shape of each frame: the shape with the largest total overlap.

    Frame n covers [n / fps, (n + 1) / fps). Overlaps of spans with the same shape add up;
    ties go to the shape listed first in `SHAPES` (A, B, ..., H, X); frames no span touches
    are X. No closure rule, no smoothing: this is the ground truth the evaluation compares
    the lip-sync engines against.
    """
    return _argmax_labels(_overlaps(spans, n_frames, fps))


def _force_closures(
    spans: Sequence[PhonemeSpan], labels: list[Shape], cover: NDArray[np.float64], fps: int
) -> set[int]:
    """Give closures their frames (in place); returns the frames a closure holds."""
    frame_s = 1.0 / fps
    held: set[int] = set()
    for n in range(len(labels)):
        best = max(_CLOSURES, key=lambda s: cover[n, _INDEX[s]])
        if cover[n, _INDEX[best]] >= CLOSURE_MIN_COVER * frame_s - 1e-12 or labels[n] in _CLOSURES:
            labels[n] = best if cover[n, _INDEX[best]] > 0 else labels[n]
            held.add(n)
    # A closure that still shows in no frame takes the free frame it overlaps most.
    for run in _closure_runs(spans):
        shape, start, end = run
        frames = range(max(int(start * fps), 0), min(int(np.ceil(end * fps)), len(labels)))
        if any(labels[n] == shape for n in frames):
            continue
        free = [n for n in frames if n not in held]
        if not free:
            continue
        n = max(free, key=lambda k: min(end, (k + 1) / fps) - max(start, k / fps))
        labels[n] = shape
        held.add(n)
    return held


def _closure_runs(spans: Sequence[PhonemeSpan]) -> list[tuple[Shape, float, float]]:
    """Consecutive closure spans of one shape ("b" "b" across a word boundary) as one run."""
    runs: list[tuple[Shape, float, float]] = []
    for sp in spans:
        if sp.shape not in _CLOSURES or sp.end_s <= sp.start_s:
            continue
        if runs and runs[-1][0] == sp.shape and abs(runs[-1][2] - sp.start_s) < 1e-9:
            runs[-1] = (sp.shape, runs[-1][1], sp.end_s)
        else:
            runs.append((sp.shape, sp.start_s, sp.end_s))
    return runs


def _run_length(labels: list[Shape], start: int, step: int) -> int:
    """Frames of labels[start]'s shape from `start` going in direction `step` (±1)."""
    shape, k, count = labels[start], start, 0
    while 0 <= k < len(labels) and labels[k] == shape:
        count, k = count + 1, k + step
    return count


def _remove_flicker(labels: list[Shape], cover: NDArray[np.float64], held: set[int]) -> None:
    """Remove one-frame shapes between two equal neighbours (in place).

    Exempt: closures, and one-frame shapes between two closure frames ("b-a-b" said fast
    really is shut-open-shut). Each fix strictly lowers (rest frames, runs, one-frame runs),
    so the loop ends, and it ends only when no flicker is left:
    * a one-frame rest inside speech becomes the neighbours' shape;
    * a one-frame shape next to rest takes a rest frame (speech never becomes rest);
    * else it takes a frame from a neighbour run of >= 3 frames that its sound reaches;
    * else the neighbours win.
    """
    n = 1
    while n < len(labels) - 1:
        left, mid, right = labels[n - 1], labels[n], labels[n + 1]
        if not (left == right != mid) or n in held or {n - 1, n + 1} & held:
            n += 1
            continue
        col = _INDEX[mid]
        if mid == Shape.X:
            labels[n] = left
        elif left == Shape.X:
            k = max((n - 1, n + 1), key=lambda j: (cover[j, col], -j))
            labels[k] = mid
        else:
            runs = {n - 1: _run_length(labels, n - 1, -1), n + 1: _run_length(labels, n + 1, 1)}
            options = [k for k, size in runs.items() if size >= 3 and cover[k, col] > 0]
            if options:
                labels[max(options, key=lambda j: cover[j, col])] = mid
            else:
                labels[n] = left
        n = max(1, n - 2)  # a fix can only create a new flicker right next to it


def _span_open(sp: PhonemeSpan) -> float:
    base = DEFAULT_OPEN[sp.shape]
    if sp.shape in _VOWEL_SHAPES and (
        is_reduced_vowel(sp.phoneme) or sp.end_s - sp.start_s < SHORT_VOWEL_S
    ):
        return base * REDUCED_OPEN_SCALE
    return base


def _openness(
    spans: Sequence[PhonemeSpan], labels: list[Shape], n_frames: int, fps: int
) -> list[float]:
    raw = np.zeros(n_frames)
    weight = np.zeros(n_frames)
    for sp in spans:
        if sp.end_s <= sp.start_s:
            continue
        target = _span_open(sp)
        first = max(int(np.floor(sp.start_s * fps)), 0)
        last = min(int(np.ceil(sp.end_s * fps)), n_frames)
        for n in range(first, last):
            ov = min(sp.end_s, (n + 1) / fps) - max(sp.start_s, n / fps)
            if ov > 0:
                raw[n] += ov * target
                weight[n] += ov
    raw = np.divide(raw, weight, out=np.zeros(n_frames), where=weight > 0)
    out = [0.0] * n_frames
    for n in range(n_frames):
        shape = labels[n]
        value = float(raw[n])
        if shape == Shape.A:
            value = 0.0  # lips shut, whatever else the frame overlaps
        elif shape == Shape.G:
            value = min(value, DEFAULT_OPEN[Shape.G])
        else:
            if n + 1 < n_frames and labels[n + 1] in _VOWEL_SHAPES | {Shape.H}:
                value = max(value, ANTICIPATION * float(raw[n + 1]))
            if shape == Shape.X and n > 0:
                value = max(value, out[n - 1] * REST_DECAY)
                value = 0.0 if value < _OPEN_EPS else value
        out[n] = min(max(value, 0.0), 1.0)
    return out


def track_from_phonemes(
    spans: Sequence[PhonemeSpan], n_frames: int, fps: int = FRAME_RATE_HZ
) -> list[MouthPose]:
    """The mouth of each of `n_frames` video frames for speech with these phoneme spans."""
    cover = _overlaps(spans, n_frames, fps)
    labels = _argmax_labels(cover)
    held = _force_closures(spans, labels, cover, fps)
    _remove_flicker(labels, cover, held)
    opens = _openness(spans, labels, n_frames, fps)
    return [MouthPose(shape, value) for shape, value in zip(labels, opens, strict=True)]
