"""Media worker processes (real processes, real session hosts): placement, speech through the
pipe, admission when full, and a worker killed with SIGKILL failing only its own sessions."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from dataclasses import replace
from pathlib import Path

import pytest

from avatarcast.engine.spec import HostSpec
from avatarcast.errors import CapacityError, MediaWorkerError, UnknownAvatarError
from avatarcast.media import FrameInfo, SpeechEvent
from avatarcast.sessions.workers import RemoteHost, WorkerPool
from avatarcast.settings import Settings


def _settings(tmp_path: Path, **kw: object) -> Settings:
    return replace(Settings(data_dir=tmp_path), media_workers=2, **kw).validate()  # type: ignore[arg-type]


async def _until(pred: object, limit_s: float = 60.0) -> None:
    deadline = time.monotonic() + limit_s
    while not pred():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


class Frames:
    def __init__(self) -> None:
        self.frames: list[FrameInfo] = []

    def __call__(self, event: object) -> None:
        if isinstance(event, FrameInfo):
            self.frames.append(event)

    def events(self, uid: str) -> list[SpeechEvent]:
        return [ev for f in self.frames for ev, u in f.events if u == uid]


def test_sessions_spread_over_workers_speak_and_a_killed_worker_fails_only_its_own(
    tmp_path: Path,
) -> None:
    async def main() -> None:
        pool = WorkerPool(_settings(tmp_path, worker_max_sessions=1))
        pool.start()
        try:
            seen = [Frames(), Frames()]
            # Placed before their media open (a burst of creates): a placement counts at once.
            placed = [pool.place(), pool.place()]
            assert {w.id for w in placed} == {0, 1}  # one session per worker
            with pytest.raises(CapacityError, match="capacity"):
                pool.place()
            hosts: list[RemoteHost] = []
            for i, worker in enumerate(placed):
                hosts.append(await pool.open(worker, HostSpec(f"s{i}", "default"), seen[i]))
            assert {h.worker_id for h in hosts} == {0, 1}
            # Full: every worker holds its one session.
            with pytest.raises(CapacityError, match="capacity"):
                pool.place()

            # Speech goes through the pipe; its frames come back with their events, in order.
            await hosts[0].say_text("Hello from a worker.", None, "utt-1", None)
            await _until(lambda: SpeechEvent.END in seen[0].events("utt-1"))
            assert seen[0].events("utt-1") == [SpeechEvent.START, SpeechEvent.END]
            indices = [f.index for f in seen[0].frames]
            assert indices == list(range(indices[0], indices[0] + len(indices)))
            await _until(lambda: hosts[1].status()["FramesSent"] > 0)  # reports arrive

            # SIGKILL the first session's worker: that session fails, the other streams on.
            victim = pool.workers[hosts[0].worker_id]
            os.kill(victim.process.pid, signal.SIGKILL)  # type: ignore[arg-type]
            await asyncio.wait_for(hosts[0].wait_closed(), 15)
            assert isinstance(hosts[0].error, MediaWorkerError)
            assert "was killed by SIGKILL" in str(hosts[0].error)
            with pytest.raises(MediaWorkerError):
                await hosts[0].interrupt()
            before = len(seen[1].frames)
            await _until(lambda: len(seen[1].frames) > before + 10)
            assert hosts[1].error is None

            # A new worker took the dead one's place: a new session fits again.
            assert pool.replaced == 1
            worker = pool.place()
            again = await pool.open(worker, HostSpec("s2", "default"), Frames())
            assert again.worker_id not in (0, 1)
            await again.stop()
            await hosts[1].stop()
        finally:
            await pool.stop()
        assert all(not w.process.is_alive() for w in pool.workers.values())

    asyncio.run(asyncio.wait_for(main(), 180))


def test_an_open_that_fails_in_the_worker_raises_its_error_and_leaves_nothing(
    tmp_path: Path,
) -> None:
    async def main() -> None:
        pool = WorkerPool(_settings(tmp_path))
        pool.start()
        try:
            worker = pool.place()
            with pytest.raises(UnknownAvatarError):
                await pool.open(worker, HostSpec("bad", "no-such-avatar"), Frames())
            assert "bad" not in worker.sessions
            ok = await pool.open(pool.place(), HostSpec("ok", "default"), Frames())
            await ok.stop()
        finally:
            await pool.stop()

    asyncio.run(asyncio.wait_for(main(), 120))


def test_admission_by_load_and_the_late_fraction_shown(tmp_path: Path) -> None:
    """The admission rule on a worker's reports (no process needed for the arithmetic)."""
    from types import SimpleNamespace

    from avatarcast.engine.spec import WorkerReport
    from avatarcast.sessions.workers import WorkerProc

    pool = WorkerPool(_settings(tmp_path))
    w = WorkerProc(0, SimpleNamespace(pid=1), None, 0.0)  # type: ignore[arg-type]

    def report(at: float, cpu_s: float, sent: int, late: int) -> None:
        sessions = {"s": {"FramesSent": sent, "LateFrames": late}}
        w.on_report(WorkerReport(1, cpu_s, 0, sessions), at)

    report(0.0, 0.0, 0, 0)
    report(1.0, 0.3, 25, 0)  # 0.3 cores, on time
    assert w.load == pytest.approx(0.3) and w.late_fraction == 0.0
    assert pool._has_room(w, 1.0)
    report(2.0, 1.2, 50, 0)
    assert w.load == pytest.approx(0.6) and pool._has_room(w, 2.0)
    report(3.0, 2.34, 75, 0)  # 0.78 cores, plus one more session's estimate: above 0.8
    assert w.load == pytest.approx(0.78) and not pool._has_room(w, 3.0)
    # Late frames are measured and shown (status), not an admission rule: a busy machine
    # (other work, startup of a new session) would refuse sessions whose worker has room.
    w2 = WorkerProc(1, SimpleNamespace(pid=2), None, 0.0)  # type: ignore[arg-type]
    w2.on_report(WorkerReport(2, 0.0, 0, {"s": {"FramesSent": 0, "LateFrames": 0}}), 0.0)
    w2.on_report(WorkerReport(2, 0.1, 0, {"s": {"FramesSent": 20, "LateFrames": 5}}), 1.0)
    assert w2.late_fraction == pytest.approx(0.2) and w2.summary(1.0)["LateFraction"] == 0.2
    w2.on_report(WorkerReport(2, 0.2, 0, {"s": {"FramesSent": 45, "LateFrames": 5}}), 7.0)
    w2.on_report(WorkerReport(2, 0.3, 0, {"s": {"FramesSent": 70, "LateFrames": 5}}), 8.0)
    assert w2.late_fraction == 0.0  # the window moved past the late slots

    # worker_max_sessions counts placements whose media have not opened yet.
    one = WorkerPool(_settings(tmp_path, worker_max_sessions=1))
    w3 = WorkerProc(2, SimpleNamespace(pid=3), None, 0.0)  # type: ignore[arg-type]
    assert one._has_room(w3, 0.0)
    w3.meter.reserve(0.0)  # what place() does
    assert not one._has_room(w3, 0.0)
    one.release(w3)  # closed before its media opened
    assert one._has_room(w3, 0.0)
