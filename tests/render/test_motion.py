"""Idle motion: deterministic, random-access, natural blink timing, smooth sway."""

from __future__ import annotations

import itertools

import numpy as np

from avatarcast.render.motion import IdleMotion
from avatarcast.speech.visemes import REST, MouthPose, Shape

FPS = 25


def series(seed: int, seconds: float) -> dict[str, np.ndarray]:
    m = IdleMotion(seed)
    states = [m.state(n, REST) for n in range(int(seconds * FPS))]
    return {
        k: np.array([getattr(s, k) for s in states])
        for k in ("blink", "breath", "head_dx", "head_dy", "head_tilt_deg")
    }


def blink_events(blink: np.ndarray) -> list[int]:
    """First frame of each blink; a double blink (closures < 1 s apart) is one event."""
    closed = np.flatnonzero(blink >= 0.99)
    events: list[int] = []
    for n in closed:
        if not events or n - events[-1] > FPS:
            events.append(int(n))
    return events


def test_deterministic_and_random_access() -> None:
    a, b = IdleMotion(42), IdleMotion(42)
    forward = [a.state(n, REST) for n in range(300)]
    for n in (299, 7, 150, 0, 123):  # any order, fresh instance: same answer
        assert b.state(n, REST) == forward[n]
    mouth = MouthPose(Shape.D, 0.8)
    assert a.state(77, mouth).mouth == mouth
    assert series(1, 20)["head_dx"].tolist() != series(2, 20)["head_dx"].tolist()


def test_blinks_every_two_to_six_seconds() -> None:
    for seed in (0, 1, 2, 3):
        blink = series(seed, 60)["blink"]
        events = blink_events(blink)
        assert 9 <= len(events) <= 31, events
        gaps = np.diff(events) / FPS
        assert gaps.min() >= 2.0 - 0.5 and gaps.max() <= 6.0 + 0.5, gaps
        assert blink.min() == 0.0 and blink.max() == 1.0
        # eyes are open most of the time
        assert (blink > 0).mean() < 0.12


def test_blink_is_short_and_closes_faster_than_it_opens() -> None:
    blink = series(5, 60)["blink"]
    n = blink_events(blink)[0]
    start = n
    while blink[start - 1] > 0:
        start -= 1
    end = n
    while blink[end] > 0:
        end += 1
    frames = end - start
    assert 3 <= frames <= 7, blink[start - 2 : end + 2]  # ≈ 120–280 ms at 25 fps
    assert n - start <= end - n  # closing takes no longer than opening


def test_double_blinks_happen_sometimes() -> None:
    doubles = 0
    for seed in range(6):
        blink = series(seed, 60)["blink"]
        closed = np.flatnonzero(blink >= 0.99)
        runs = np.split(closed, np.flatnonzero(np.diff(closed) > 1) + 1)
        starts = [int(r[0]) for r in runs]
        doubles += sum(1 for a, b in itertools.pairwise(starts) if b - a < FPS)
    assert doubles >= 1


def test_sway_and_breath_are_small_and_smooth() -> None:
    s = series(9, 60)
    assert np.abs(s["head_dx"]).max() <= 4.0 and np.abs(s["head_dy"]).max() <= 3.0
    assert np.abs(s["head_dx"]).max() >= 1.0  # it does move
    assert np.abs(s["breath"]).max() <= 1.0 and s["breath"].max() > 0.7
    assert np.abs(s["head_tilt_deg"]).max() <= 1.5
    for k in ("head_dx", "head_dy", "head_tilt_deg"):
        d = np.diff(s[k])
        assert np.abs(d).max() < 0.1, k  # no trembling: tiny per-frame steps …
        assert np.abs(np.diff(d)).max() < 0.01, k  # … that change smoothly
    # breathing: about 0.25 Hz (count upward zero crossings)
    b = s["breath"]
    crossings = np.count_nonzero((b[:-1] < 0) & (b[1:] >= 0))
    assert 11 <= crossings <= 19
