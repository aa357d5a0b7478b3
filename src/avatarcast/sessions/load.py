"""How loaded a media worker is, from its own reports: the measure placement and admission use.

A worker (a local process, or an actor on a cluster node) reports its CPU seconds and its
sessions' frame counters about once a second. Load is CPU use over the last `LOAD_WINDOW_S`
in cores; placements made since count `NEW_SESSION_LOAD` each until the measurement shows
them; a worker has room for one more session while its projected load plus what one of its
sessions costs on average stays under the limit.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

LOAD_WINDOW_S = 5.0  # CPU use is averaged over this long
# A new session's load before it shows in the measurement (cores): it starts idle, on the
# shared idle loop (~0.01 with an RTMP push), and may speak at once (~0.09 with RTMP,
# measured with benchmarks/capacity.py): between the two.
NEW_SESSION_LOAD = 0.05
MIN_SESSION_LOAD, MAX_SESSION_LOAD = 0.01, 0.15  # bounds of the per-session average


@dataclass
class _Sample:
    at: float
    cpu_s: float
    frames: int = 0  # frame slots of its sessions since the previous report (sent + late)
    late: int = 0  # of which late (skipped because a loop fell behind)


class LoadMeter:
    """A worker's load: CPU over a window, recent placements, reservations."""

    def __init__(self) -> None:
        self.samples: deque[_Sample] = deque()
        self.placed: deque[float] = deque()  # times of recent placements
        self.reserved = 0  # placed, media not yet opened (counts toward a session limit)
        self.status: dict[str, dict[str, Any]] = {}  # session id → its last reported status

    @property
    def load(self) -> float:
        """CPU use over the last LOAD_WINDOW_S, in cores (0 until two reports arrived)."""
        if len(self.samples) < 2:
            return 0.0
        first, last = self.samples[0], self.samples[-1]
        return max(0.0, (last.cpu_s - first.cpu_s) / max(1e-6, last.at - first.at))

    def projected_load(self, now: float) -> float:
        """Measured load plus an estimate for sessions placed too recently to show in it."""
        while self.placed and self.placed[0] < now - LOAD_WINDOW_S:
            self.placed.popleft()
        return self.load + len(self.placed) * NEW_SESSION_LOAD

    def per_session_load(self, sessions: int) -> float:
        """What one more session is expected to cost: the average of its `sessions`, bounded
        (just after sessions closed, the window still holds their load, spread over few)."""
        if not sessions or len(self.samples) < 2:
            return NEW_SESSION_LOAD
        return min(MAX_SESSION_LOAD, max(MIN_SESSION_LOAD, self.load / sessions))

    @property
    def late_fraction(self) -> float:
        """Late frame slots over all its sessions' slots in the last LOAD_WINDOW_S."""
        samples = list(self.samples)[1:]  # the first sample's deltas predate the window
        slots = sum(s.frames for s in samples)
        return sum(s.late for s in samples) / slots if slots else 0.0

    def record(self, now: float, cpu_s: float, sessions: dict[str, dict[str, Any]]) -> None:
        """One report: the process's CPU seconds so far and its sessions' status."""
        frames = late = 0
        for sid, st in sessions.items():
            before = self.status.get(sid, {})
            sent = st.get("FramesSent", 0) - before.get("FramesSent", 0)
            skipped = st.get("LateFrames", 0) - before.get("LateFrames", 0)
            frames, late = frames + max(0, sent) + max(0, skipped), late + max(0, skipped)
        self.status = sessions
        self.samples.append(_Sample(now, cpu_s, frames, late))
        while len(self.samples) > 2 and self.samples[1].at <= now - LOAD_WINDOW_S:
            self.samples.popleft()

    def has_room(self, sessions: int, max_load: float, max_sessions: int, now: float) -> bool:
        if max_sessions and sessions + self.reserved >= max_sessions:
            return False
        return self.projected_load(now) + self.per_session_load(sessions) <= max_load

    def reserve(self, now: float) -> None:
        """A session was placed here; it counts before its media open and its load shows."""
        self.placed.append(now)
        self.reserved += 1

    def release(self) -> None:
        """A reserved session opened, or will not."""
        self.reserved = max(0, self.reserved - 1)
