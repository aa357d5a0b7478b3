"""Where the idle loop comes from: the quietest part of the recording, wherever it is.

Real recordings talk from the first frame and often have no pause long enough for a loop.
`choose_idle` looks at the whole clip, sound and lips together:

- **forward** loop: the longest run of silent frames with the lips closed, if it holds at
  least `MIN_LOOP_S` (plus the cross-fade); inside it the loop [a, b) whose next frame b is
  most like a (`choose_forward`); played a, ..., b-1, a, ... with the last `FADE` frames
  cross-faded toward the frames before a.
- **ping-pong** loop otherwise: the window of `PINGPONG_S` whose frames are calmest (lips
  least open, jaw least dropped, lips least moving, least sound, see `calm_cost`), played
  forward then backward (a, ..., e-1, e-2, ..., a+1), so the loop has no jump at all.
  When its frames do not all show closed lips (`bake` True), the builder blends the
  person's own closed mouth over every loop frame's mouth box (`avatars.video`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

MIN_LOOP_S, MAX_LOOP_S = 2.0, 4.0
FADE = 6  # frames cross-faded at a forward loop's seam
PINGPONG_S = 1.6  # window of a ping-pong loop (the loop lasts about twice that)
MIN_PINGPONG_FRAMES = 8


@dataclass(frozen=True)
class LoopPlan:
    """Source frames of the idle loop, in playing order, and how it was made."""

    kind: str  # "forward" or "pingpong"
    a: int  # first source frame
    b: int  # one past the last source frame
    cost: float  # forward: seam thumbnail difference; pingpong: mean calm cost
    bake: bool  # blend the person's closed mouth over every loop frame

    @property
    def order(self) -> list[int]:
        if self.kind == "forward":
            return list(range(self.a, self.b))
        return [*range(self.a, self.b), *range(self.b - 2, self.a, -1)]

    @property
    def first_needed(self) -> int:
        """The first source frame the loop uses (a forward loop's fade needs FADE before a)."""
        return self.a - FADE if self.kind == "forward" else self.a


def _runs(mask: NDArray[np.bool_]) -> list[tuple[int, int]]:
    runs, start = [], None
    for i, c in enumerate([*mask.tolist(), False]):
        if c and start is None:
            start = i
        elif not c and start is not None:
            runs.append((start, i))
            start = None
    return runs


def choose_forward(
    closed: NDArray[np.bool_], thumbs: NDArray[np.float32], fps: float
) -> LoopPlan | None:
    """The forward loop in the longest closed-mouth run (a >= FADE), or None if no run is
    long enough."""
    lo, hi = round(MIN_LOOP_S * fps), round(MAX_LOOP_S * fps)
    runs = [(s, e) for s, e in _runs(closed) if e - max(s, FADE) > lo]
    if not runs:
        return None
    s, e = max(runs, key=lambda r: r[1] - r[0])
    flat = thumbs.reshape(len(thumbs), -1)
    best = (s, s + lo, np.inf)
    for a in range(max(s, FADE), e - lo):
        bs = np.arange(a + lo, min(a + hi, e - 1) + 1)  # frame b itself exists (b < e)
        cost = np.abs(flat[bs] - flat[a]).mean(axis=1)
        j = int(np.argmin(cost))
        if cost[j] < best[2]:
            best = (a, int(bs[j]), float(cost[j]))
    a, b, c = best
    return LoopPlan("forward", a, b, c, bake=False)


def calm_cost(
    gap: NDArray[np.float64],
    drop: NDArray[np.float64],
    motion: NDArray[np.float64],
    speech: NDArray[np.bool_],
    usable: NDArray[np.bool_],
    pose_dev: NDArray[np.float64],
) -> NDArray[np.float64]:
    """Per frame, how far from a still, closed, silent, usual-pose face it is (inf where
    unusable): lip gap and chin drop in rest mouth widths, lip motion per frame, speech,
    and `pose_dev`, how far the head is turned or tilted from its usual pose (the key
    frame's pose is the one every harvested mouth must match)."""
    cost = (
        np.nan_to_num(pose_dev, nan=1.0)
        + np.nan_to_num(gap, nan=1.0)
        + np.maximum(np.nan_to_num(drop, nan=1.0), 0.0)
        + 2.0 * np.nan_to_num(motion, nan=1.0)
        + 0.1 * speech.astype(np.float64)
    )
    return np.where(usable, cost, np.inf)


def choose_pingpong(cost: NDArray[np.float64], closed: NDArray[np.bool_], fps: float) -> LoopPlan:
    """The calmest window of `PINGPONG_S` (shorter if the clip has no such window of usable
    frames); `bake` unless every frame in it has closed lips."""
    n = len(cost)
    length = max(MIN_PINGPONG_FRAMES, min(round(PINGPONG_S * fps), n))
    while length >= MIN_PINGPONG_FRAMES:
        if n >= length:
            sums = np.convolve(np.where(np.isfinite(cost), cost, 1e9), np.ones(length), "valid")
            a = int(np.argmin(sums))
            mean = float(sums[a]) / length
            if mean < 1e8:
                b = a + length
                return LoopPlan("pingpong", a, b, mean, bake=not bool(closed[a:b].all()))
        length = length * 3 // 4
    raise ValueError("no window of usable frames")


def choose_idle(
    closed_quiet: NDArray[np.bool_],
    cost: NDArray[np.float64],
    closed: NDArray[np.bool_],
    thumbs: NDArray[np.float32],
    fps: float,
) -> LoopPlan:
    """The forward loop when the clip has a long enough silent closed-mouth run, else the
    calmest ping-pong."""
    return choose_forward(closed_quiet, thumbs, fps) or choose_pingpong(cost, closed, fps)
