"""GET /v2/status against a real server: workers, load, the caller's live sessions.

Real media in real worker processes (the default: one per core, here two), and once with the
media inside the server process (`media_workers = 0`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from avatarcast.api.status import STATUS_PATH
from avatarcast.client import Client
from avatarcast.codes import UNAUTHORIZED
from avatarcast.settings import Settings
from server_harness import LiveServer


class Server(LiveServer):
    def __init__(self, data_dir: Path, **settings: Any) -> None:
        config = Settings(data_dir=data_dir, **{"media_workers": 2, **settings}).validate()
        super().__init__(config, key_name="status", max_sessions=2, timeout_s=30)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = Server(tmp_path_factory.mktemp("data"))
    yield srv
    srv.stop()


def _status(c: Client) -> dict[str, Any]:
    resp = httpx.get(c.signed_url(STATUS_PATH), timeout=10)
    assert resp.status_code == 200
    body = resp.json()
    assert body["Header"]["Code"] == 0, body
    payload: dict[str, Any] = body["Payload"]
    return payload


def _frames_sent(c: Client, sid: str) -> int:
    """The session's FramesSent once its worker has reported it (reports come each second)."""
    deadline = time.monotonic() + 10
    while True:
        mine = {s["SessionId"]: s for s in _status(c)["Sessions"]}
        if mine[sid]["FramesSent"] > 0:
            return int(mine[sid]["FramesSent"])
        assert time.monotonic() < deadline, "no frames reported"
        time.sleep(0.1)


def test_status_lists_the_started_session_with_frames_growing(server: Server) -> None:
    with server.client() as c, server.client() as other:
        sid = c.create_session_by_asset("default", "status-user")["SessionId"]
        c.wait_ready(sid, timeout_s=60)
        c.start_session(sid)
        before = _frames_sent(c, sid)
        time.sleep(2.5)  # more than two of a worker's reports
        second = _status(c)

        assert [w["Id"] for w in second["Workers"]] == [0, 1]
        for worker in second["Workers"]:
            assert worker["Up"] and worker["Pid"] != os.getpid()  # worker processes
            assert worker["Load"] >= 0 and worker["RssMb"] > 0
        assert sum(w["Sessions"] for w in second["Workers"]) >= 1
        assert second["Capacity"] == {"MaxLoad": 0.8, "MaxSessionsPerWorker": 0, "Full": False}

        (after,) = [s for s in second["Sessions"] if s["SessionId"] == sid]
        assert after["Worker"] in (0, 1) and after["Status"] == 1
        assert after["Viewers"] == 0 and after["Speaking"] is False
        assert after["LateFrames"] >= 0
        assert after["FramesSent"] > before > 0  # ~60 more in 2.5 s

        # Idle, it soon sends the avatar's shared idle loop (built once in its worker).
        deadline = time.monotonic() + 20
        while not {s["SessionId"]: s for s in _status(c)["Sessions"]}[sid]["OnIdleLoop"]:
            assert time.monotonic() < deadline, "an idle session never went onto the idle loop"
            time.sleep(0.1)

        # Speaking is the media host's: true while an utterance plays.
        c.command(sid, "SEND_TEXT", {"Text": "Hello, this is a status test sentence."})
        deadline = time.monotonic() + 10
        while not {s["SessionId"]: s for s in _status(c)["Sessions"]}[sid]["Speaking"]:
            assert time.monotonic() < deadline, "Speaking never turned true"
            time.sleep(0.05)

        # Another key sees the worker's load but not this key's sessions.
        theirs = _status(other)
        assert theirs["Sessions"] == []
        assert sum(w["Sessions"] for w in theirs["Workers"]) >= 1
        c.close_session(sid)
        assert sid not in {s["SessionId"] for s in _status(c)["Sessions"]}


def test_status_refuses_unsigned_and_badly_signed_requests(server: Server) -> None:
    with server.client() as c:
        good = c.signed_query()
        sig = good["signature"]
        wrong = ("B" if sig[0] == "A" else "A") + sig[1:]
        for query in (
            {},  # unsigned
            {**good, "signature": wrong},  # a signature that does not match
            {**good, "appkey": "0" * 32},  # unknown key
        ):
            resp = httpx.get(f"{server.url}{STATUS_PATH}?{urlencode(query)}", timeout=10)
            assert resp.status_code == 200
            body = resp.json()
            assert body["Header"]["Code"] == UNAUTHORIZED, body
            assert "Workers" not in body["Payload"]


def test_two_sessions_land_on_two_workers(tmp_path: Path) -> None:
    srv = Server(tmp_path)  # idle workers: the second session goes where the first did not
    try:
        with srv.client() as c:
            sids = [
                c.create_session_by_asset("default", f"spread-{i}")["SessionId"] for i in (0, 1)
            ]
            for sid in sids:
                c.wait_ready(sid, timeout_s=60)
            placed = {s["SessionId"]: s["Worker"] for s in _status(c)["Sessions"]}
            assert sorted(placed[sid] for sid in sids) == [0, 1]
    finally:
        srv.stop()


def test_without_media_workers_the_server_process_is_the_one_worker(tmp_path: Path) -> None:
    srv = Server(tmp_path, media_workers=0)
    try:
        with srv.client() as c:
            sid = c.create_session_by_asset("default", "in-process")["SessionId"]
            c.wait_ready(sid, timeout_s=60)
            status = _status(c)
            (worker,) = status["Workers"]
            assert worker["Id"] == 0 and worker["Pid"] == os.getpid()
            assert worker["Sessions"] == 1 and worker["RssMb"] > 0
            assert [s["Worker"] for s in status["Sessions"]] == [0]
            assert status["Sessions"][0]["FramesSent"] > 0
    finally:
        srv.stop()
