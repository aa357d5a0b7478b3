"""`avatarcast serve` stopped by a signal: what docs/operations.md says.

SIGTERM: every session is closed and its usage booked, then the process ends by the signal
(uvicorn re-raises it after the graceful shutdown): exit status 143 in a shell, -15 here.
SIGINT (Ctrl-C): the same shutdown, exit status 0.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from avatarcast.client import Client
from avatarcast.sessions.store_sqlite import SqliteStore


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.mark.parametrize(("sig", "status"), [(signal.SIGTERM, -signal.SIGTERM), (signal.SIGINT, 0)])
def test_a_signal_closes_sessions_books_usage_and_exits_as_documented(
    tmp_path: Path, sig: signal.Signals, status: int
) -> None:
    store = SqliteStore(tmp_path / "avatarcast.db")
    appkey, token = store.create_key("signals", 2)
    port = _port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "avatarcast", "serve", "--data-dir", str(tmp_path),
         "--port", str(port), "--log-level", "warning"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(300):
            try:
                if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        with Client(url, appkey, token, timeout_s=30) as c:
            sid = c.create_session_by_asset("default", "signals")["SessionId"]
            c.wait_ready(sid, timeout_s=60)
            time.sleep(1.0)  # less than one booking interval (5 s): only the close books it
        proc.send_signal(sig)
        assert proc.wait(60) == status, proc.stderr.read() if proc.stderr else ""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    booked = [s for s in store.usage(appkey).sessions if s.session_id == sid]
    store.close()
    assert booked and booked[0].seconds > 0.5, booked
