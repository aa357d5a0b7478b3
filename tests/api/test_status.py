"""GET /v2/status against a real server: workers, load, the caller's live sessions.

Real media (`attach_media`): the session's frame counters come from its live stream.
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

from avatarcast.api.server import run_server_in_thread
from avatarcast.api.status import STATUS_PATH
from avatarcast.client import Client
from avatarcast.codes import UNAUTHORIZED
from avatarcast.sessions.store import Store
from avatarcast.settings import Settings


class Server:
    def __init__(self, data_dir: Path) -> None:
        self.url, self._stop = run_server_in_thread(Settings(data_dir=data_dir))
        self.store = Store(data_dir / "avatarcast.db")

    def client(self) -> Client:
        appkey, token = self.store.create_key("status", 2)
        return Client(self.url, appkey, token, timeout_s=30)

    def stop(self) -> None:
        self.store.close()
        self._stop()


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


def test_status_lists_the_started_session_with_frames_growing(server: Server) -> None:
    with server.client() as c, server.client() as other:
        sid = c.create_session_by_asset("default", "status-user")["SessionId"]
        c.wait_ready(sid, timeout_s=60)
        c.start_session(sid)
        first = _status(c)
        time.sleep(1.0)
        second = _status(c)

        (worker,) = second["Workers"]
        assert worker["Id"] == 0 and worker["Pid"] == os.getpid()  # the server is this process
        assert worker["Sessions"] >= 1
        assert worker["Load"] >= 0 and worker["RssMb"] > 0
        assert second["Capacity"] == {"MaxLoad": 0.7, "Full": False}

        before = {s["SessionId"]: s for s in first["Sessions"]}[sid]
        (after,) = [s for s in second["Sessions"] if s["SessionId"] == sid]
        assert after["Worker"] == 0 and after["Status"] == 1
        assert after["Viewers"] == 0 and after["Speaking"] is False
        assert after["LateFrames"] >= 0
        assert after["FramesSent"] > before["FramesSent"] > 0  # ~25 more in 1 s

        # Speaking is the media host's: true while an utterance plays.
        c.command(sid, "SEND_TEXT", {"Text": "Hello, this is a status test sentence."})
        deadline = time.monotonic() + 10
        while not {s["SessionId"]: s for s in _status(c)["Sessions"]}[sid]["Speaking"]:
            assert time.monotonic() < deadline, "Speaking never turned true"
            time.sleep(0.05)

        # Another key sees the worker's load but not this key's sessions.
        theirs = _status(other)
        assert theirs["Sessions"] == []
        assert theirs["Workers"][0]["Sessions"] >= 1
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
