"""Placement on a cluster's workers (the rule, from their reports; no Ray needed): a worker
that has the session's avatar loaded is preferred among those with room, then the least
loaded; a draining or full worker takes nothing; none with room is 100008."""

from __future__ import annotations

from pathlib import Path

import pytest

from avatarcast.cluster.pool import ClusterPool, ClusterWorker
from avatarcast.errors import CapacityError
from avatarcast.settings import Settings


def _worker(name: str, cores: float, sessions: int, avatars: set[str]) -> ClusterWorker:
    w = ClusterWorker(name, handle=None, up=True, seen=0.0, avatars=frozenset(avatars))
    status = {f"{name}-s{i}": {"FramesSent": 0, "LateFrames": 0} for i in range(sessions)}
    w.meter.record(-10.0, 0.0, status)  # two reports 10 s apart: `cores` of CPU in between
    w.meter.record(0.0, cores * 10.0, status)
    return w


def test_the_avatar_first_then_the_load_then_capacity(tmp_path: Path) -> None:
    pool = ClusterPool(Settings(data_dir=tmp_path, worker_max_sessions=3).validate())
    busy = _worker("avatarcast-media-0", 0.30, 2, {"default", "alice"})
    quiet = _worker("avatarcast-media-1", 0.05, 0, {"default"})
    pool.workers = {w.name: w for w in (busy, quiet)}

    assert pool.place("alice") is busy  # has alice loaded, and room
    assert pool.place("default") is quiet  # both have it: the least loaded
    assert pool.place("bob") is quiet
    # busy is now at its limit (2 sessions + 1 placement = 3): alice goes elsewhere.
    assert pool.place("alice") is quiet
    quiet.draining = True
    with pytest.raises(CapacityError) as full:
        pool.place("alice")
    assert "cluster at capacity" in full.value.message
    assert pool.place("alice", force=True) is busy  # a UserId's replacement adds no load
