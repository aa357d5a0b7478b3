"""Media workers behind the real API: a full server refuses with a clear 100008 and the running
sessions keep streaming; a worker killed with SIGKILL fails only its own session (status 4
with the reason, a notice on its command channel, quota freed) and the next createsession
works on the worker that replaced it."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import multiprocessing
import os
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.sync.client import connect

from avatarcast.client import ApiError, Client
from avatarcast.client.viewer import WhepViewer
from avatarcast.settings import Settings
from server_harness import live_client


@pytest.fixture
def client(tmp_path: Path) -> Iterator[Client]:
    # Two workers that take one session each: the third session finds the server full.
    settings = Settings(
        data_dir=tmp_path, log_level="warning", media_workers=2, worker_max_sessions=1
    ).validate()
    with live_client(settings, "e2e-workers", 8) as c:
        yield c


def _ready_session(c: Client) -> str:
    sid: str = c.create_session_by_asset("default", uuid.uuid4().hex)["SessionId"]
    c.wait_ready(sid, timeout_s=60)
    c.start_session(sid)
    return sid


def _media_workers() -> list[multiprocessing.process.BaseProcess]:
    # The server runs in a thread of this process: its workers are our children.
    return [p for p in multiprocessing.active_children() if p.name.startswith("avatarcast-media")]


def _frames(c: Client, sid: str, n: int) -> list[int]:
    """Decode `n` consecutive video frames of `sid` over WHEP; their pts (90 kHz)."""
    play = c.stat_session(sid)["PlayStreamAddr"]

    async def watch() -> list[int]:
        async with WhepViewer(play, ice_host_addresses=["127.0.0.1"]) as viewer:
            frames = await viewer.wait_frames(n, timeout_s=30)
        return [f.pts for f in frames[:n] if f.pts is not None]

    return asyncio.run(watch())


def test_a_full_server_refuses_and_a_killed_worker_fails_only_its_session(
    client: Client,
) -> None:
    c = client
    a, b = _ready_session(c), _ready_session(c)
    with pytest.raises(ApiError) as full:
        c.create_session_by_asset("default", uuid.uuid4().hex)
    assert full.value.code == 100008
    assert "server at capacity" in full.value.message
    # The running sessions were not disturbed: a viewer decodes them on the 25 fps clock
    # (pts steps of 40 ms; a busy shared machine may skip a frame, never stall the stream).
    pts = _frames(c, a, 25)
    steps = [y - x for x, y in itertools.pairwise(pts)]
    assert len(pts) == 25 and all(d > 0 and d % 3600 == 0 for d in steps)
    assert steps.count(3600) >= 0.8 * len(steps), steps

    with contextlib.ExitStack() as stack:
        channels = {sid: stack.enter_context(connect(c.command_channel_url(sid))) for sid in (a, b)}
        workers = _media_workers()
        assert len(workers) == 2
        os.kill(workers[0].pid or 0, signal.SIGKILL)
        deadline = time.monotonic() + 15
        while True:
            states = {sid: c.stat_session(sid) for sid in (a, b)}
            failed = [sid for sid, st in states.items() if st["SessionStatus"] == 4]
            if failed:
                break
            assert time.monotonic() < deadline, "no session failed after its worker died"
            time.sleep(0.1)
        assert len(failed) == 1
        dead, alive = failed[0], (b if failed[0] == a else a)
        reason = states[dead]["ErrorMessage"]
        assert "media worker" in reason and "killed by SIGKILL" in reason
        assert states[alive]["SessionStatus"] == 1

        # Its command channel was told before it closed.
        got: list[dict[str, Any]] = []
        while not any(m.get("Output") == "session" for m in got):
            got.append(json.loads(channels[dead].recv(timeout=10)))
        notice = next(m for m in got if m.get("Output") == "session")
        assert notice["Type"] == 10 and notice["State"] == "failed"
        assert notice["SessionId"] == dead and "media worker" in notice["Message"]

    # The other session streams on; a new worker replaced the dead one, so (its quota and
    # worker slot freed) the next session comes up.
    pts = _frames(c, alive, 10)
    assert len(pts) == 10
    new = _ready_session(c)
    assert c.stat_session(new)["SessionStatus"] == 1
    assert len(_media_workers()) == 2
