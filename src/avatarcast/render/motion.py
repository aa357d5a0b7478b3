"""Idle motion: blinks, breathing and a slight head sway, as a pure function of the frame index.

`IdleMotion(seed).state(n, mouth)` depends only on (seed, n): no state is carried from frame to
frame, so an offline render and a live session with the same seed show identical motion, and
any frame can be computed on its own (random access).

Blinks: the timeline is cut into 4 s slots; each slot holds one blink at a random offset of
±1 s around its centre, so consecutive blinks are 2–6 s apart. Some blinks are doubled (a second
blink 0.3–0.4 s after the first; counted as one blink event). Randomness comes from a hash of
(seed, slot), not from a generator that would have to be advanced.

Periodic motion (`period_frames=L`): state(n) == state(n + L) exactly, so L frames can be
encoded once and looped (`avatarcast.engine.idle_loop`). Every frequency is rounded to a
whole number of cycles per period (a component that rounds to 0 cycles holds still), the
period holds a whole number of blink slots (about 4 s each) whose blinks repeat with it, and
`phase_frames` shifts where frame 0 falls in the period: sessions sharing one loop start at
different places in it, so they do not blink in step.
"""

from __future__ import annotations

import math

from avatarcast import FRAME_RATE_HZ
from avatarcast.render.frame import FrameState
from avatarcast.speech.visemes import MouthPose

BLINK_SLOT_S = 4.0
BLINK_JITTER_S = 1.0  # slot centre ± this: intervals between blinks are 2..6 s
DOUBLE_BLINK_P = 0.15
CLOSE_S = 0.07  # eyelids close fast, hold a moment, open more slowly
HOLD_S = 0.02
SWAY_X_PX = 3.0  # head sway amplitude at 540×960
SWAY_Y_PX = 1.5
TILT_DEG = 0.8
BREATH_HZ = 0.25

_MASK = (1 << 64) - 1


def _hash01(seed: int, *keys: int) -> float:
    """A uniform number in [0, 1) from (seed, keys): splitmix64, cheap and stateless."""
    x = seed & _MASK
    for k in keys:
        x = (x ^ (k & _MASK)) * 0x9E3779B97F4A7C15 & _MASK
        x ^= x >> 30
        x = x * 0xBF58476D1CE4E5B9 & _MASK
        x ^= x >> 27
        x = x * 0x94D049BB133111EB & _MASK
        x ^= x >> 31
    return (x >> 11) / float(1 << 53)


class IdleMotion:
    """Deterministic idle motion of one session (or one render)."""

    def __init__(
        self,
        seed: int,
        fps: int = FRAME_RATE_HZ,
        *,
        period_frames: int | None = None,
        phase_frames: int = 0,
    ) -> None:
        if period_frames is not None and period_frames < 1:
            raise ValueError("period_frames must be at least 1")
        self.seed = seed
        self.fps = fps
        self.period_frames = period_frames
        self.phase_frames = phase_frames % period_frames if period_frames else 0
        period_s = period_frames / fps if period_frames else None
        self._blink_slot_s = BLINK_SLOT_S
        self._blink_jitter_s = BLINK_JITTER_S
        self._blink_slots = 0  # slots per period (0: aperiodic)
        if period_s is not None:
            self._blink_slots = max(1, round(period_s / BLINK_SLOT_S))
            self._blink_slot_s = period_s / self._blink_slots
            # a blink (and a double blink's second one, ~0.65 s in all) stays inside its slot
            self._blink_jitter_s = min(BLINK_JITTER_S, max(0.0, self._blink_slot_s / 2 - 0.7))

        def fit(f: float) -> float:  # a whole number of cycles per period
            return f if period_s is None else round(f * period_s) / period_s

        # per-seed phases and slightly different rates, so two avatars never move in lockstep
        r = [_hash01(seed, 1_000 + i) for i in range(12)]
        self._breath_hz = fit(BREATH_HZ * (0.9 + 0.2 * r[0]))
        self._breath_slow_hz = fit(0.071)
        self._breath_phase = 2 * math.pi * r[1]
        # incommensurate frequencies (Hz): a smooth sway that never visibly repeats (unless
        # periodic: then it repeats every period, by design)
        self._sway_x = [
            (fit(0.11 * (0.9 + 0.2 * r[2])), 0.6, 2 * math.pi * r[3]),
            (fit(0.047), 0.3, 2 * math.pi * r[4]),
            (fit(0.173 * (0.9 + 0.2 * r[5])), 0.1, 2 * math.pi * r[6]),
        ]
        self._sway_y = [
            (fit(0.083 * (0.9 + 0.2 * r[7])), 0.7, 2 * math.pi * r[8]),
            (fit(0.031), 0.3, 2 * math.pi * r[9]),
        ]
        self._tilt = [
            (fit(0.067), 0.7, 2 * math.pi * r[10]),
            (fit(0.139), 0.3, 2 * math.pi * r[11]),
        ]

    def phase(self, frame_index: int) -> int:
        """Where frame `frame_index` falls in the period (the index itself if aperiodic)."""
        if self.period_frames is None:
            return frame_index
        return (frame_index + self.phase_frames) % self.period_frames

    def blink_starts(self, slot: int) -> list[float]:
        """Start times (s) of the blinks of one slot: one, or two for a double blink."""
        t0 = (slot + 0.5) * self._blink_slot_s + self._blink_jitter_s * (
            2 * _hash01(self.seed, slot, 1) - 1
        )
        t0 = math.floor(t0 * self.fps) / self.fps  # starts on a frame: the lids always shut
        starts = [t0]
        if _hash01(self.seed, slot, 2) < DOUBLE_BLINK_P:
            gap = math.floor((0.3 + 0.1 * _hash01(self.seed, slot, 3)) * self.fps) / self.fps
            starts.append(t0 + gap)
        return starts

    def blink(self, t: float) -> float:
        """Eyelid closure 0..1 at time t (s); periodic motion: t within its period."""
        slot = math.floor(t / self._blink_slot_s)
        best = 0.0
        for s in (slot - 1, slot, slot + 1):
            if self._blink_slots:  # slots repeat with the period: the blink of slot s % k
                key = s % self._blink_slots
                shift = (s - key) * self._blink_slot_s
            elif s < 0:
                continue
            else:
                key, shift = s, 0.0
            duration = 0.18 + 0.07 * _hash01(self.seed, key, 4)  # 180–250 ms
            for t0 in self.blink_starts(key):
                # sample one frame late: the first frame of a blink is already half closed
                u = t - (t0 + shift) + 1.0 / self.fps
                best = max(best, _blink_profile(u, duration))
        return best

    def state(self, frame_index: int, mouth: MouthPose) -> FrameState:
        """Frame `frame_index`'s motion; periodic motion gives the state of its phase (the
        same numbers, so the same picture, for every frame of one phase)."""
        frame_index = self.phase(frame_index)
        t = frame_index / self.fps
        breath = math.sin(2 * math.pi * self._breath_hz * t + self._breath_phase)
        breath = 0.85 * breath + 0.15 * math.sin(
            2 * math.pi * self._breath_slow_hz * t + self._breath_phase
        )
        return FrameState(
            mouth=mouth,
            blink=self.blink(t),
            breath=breath,
            head_dx=SWAY_X_PX * _waves(self._sway_x, t),
            # the head rises a little as the chest does
            head_dy=SWAY_Y_PX * _waves(self._sway_y, t) - 0.5 * breath,
            head_tilt_deg=TILT_DEG * _waves(self._tilt, t),
            frame_index=frame_index,
        )


def _waves(waves: list[tuple[float, float, float]], t: float) -> float:
    return sum(a * math.sin(2 * math.pi * f * t + p) for f, a, p in waves)


def _blink_profile(u: float, duration: float) -> float:
    """Closure at u seconds into a blink: close fast (eased), hold, open more slowly."""
    if u <= 0 or u >= duration:
        return 0.0
    if u < CLOSE_S:
        x = u / CLOSE_S
        return x * x * (3 - 2 * x) if x < 1 else 1.0
    if u < CLOSE_S + HOLD_S:
        return 1.0
    x = (u - CLOSE_S - HOLD_S) / (duration - CLOSE_S - HOLD_S)
    return 1.0 - x * x * (3 - 2 * x)
