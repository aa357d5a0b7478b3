"""Clocks: the session timeline is counted in audio samples; wall time only paces delivery.

Frame n is due at `start + n / fps`, never at a sum of sleeps, so a late frame does not push
every later frame back. Tests pass a `ManualClock` instead of patching time.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol

from avatarcast import FRAME_RATE_HZ, SAMPLE_RATE_HZ


def frame_time_s(frame_index: int, fps: int = FRAME_RATE_HZ) -> float:
    """Presentation time of frame `frame_index` on the session timeline."""
    return frame_index / fps


def frame_of_sample(
    sample_index: int, fps: int = FRAME_RATE_HZ, rate_hz: int = SAMPLE_RATE_HZ
) -> int:
    """The video frame that shows audio sample `sample_index`."""
    return (sample_index * fps) // rate_hz


def frames_for_samples(
    n_samples: int, fps: int = FRAME_RATE_HZ, rate_hz: int = SAMPLE_RATE_HZ
) -> int:
    """How many whole frames are needed to show `n_samples` samples (rounded up)."""
    return -(-n_samples * fps // rate_hz)


class Clock(Protocol):
    def now(self) -> float: ...

    async def sleep_until(self, t: float) -> None: ...


class MonotonicClock:
    """Wall clock for live sessions."""

    def now(self) -> float:
        return time.monotonic()

    async def sleep_until(self, t: float) -> None:
        delay = t - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)


class ManualClock:
    """A clock that moves only when told to (tests, offline rendering).

    By default `sleep_until` moves the clock to the deadline itself, so a frame loop runs
    as fast as it can with exact timestamps (offline rendering). With `auto_advance=False`
    only `advance` moves it and `sleep_until` waits for that: a test steps a live stream
    frame by frame and acts between two frames.
    """

    def __init__(self, start: float = 0.0, *, auto_advance: bool = True) -> None:
        self._t = start
        self.auto_advance = auto_advance
        self._waiters: list[asyncio.Future[None]] = []

    def now(self) -> float:
        return self._t

    @property
    def sleepers(self) -> int:
        """Tasks blocked in `sleep_until` until the next `advance` (auto_advance=False)."""
        return sum(not w.done() for w in self._waiters)

    def advance(self, dt: float) -> None:
        """Move the clock; every sleeper wakes (and sleeps again if it is still early)."""
        self._t += dt
        waiters, self._waiters = self._waiters, []
        for w in waiters:
            if not w.done():
                w.set_result(None)

    async def sleep_until(self, t: float) -> None:
        if self.auto_advance:
            if t > self._t:
                self._t = t
            await asyncio.sleep(0)
            return
        while self._t < t:
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            await waiter
        await asyncio.sleep(0)


class FramePacer:
    """Yields frame deadlines `start + n / fps` on a clock; counts frames that ran late."""

    def __init__(self, clock: Clock, fps: int = FRAME_RATE_HZ) -> None:
        self.clock = clock
        self.fps = fps
        self.start = clock.now()
        self.late_frames = 0

    def deadline(self, frame_index: int) -> float:
        return self.start + frame_index / self.fps

    async def wait_for(self, frame_index: int) -> None:
        due = self.deadline(frame_index)
        if self.clock.now() > due + 1.0 / self.fps:
            self.late_frames += 1
        await self.clock.sleep_until(due)
