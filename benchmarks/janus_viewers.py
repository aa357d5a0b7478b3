"""Viewers per session through Janus: what N subscribers cost the publishing session.

    python benchmarks/janus_viewers.py --json [--viewers 0,1,5,10] [--seconds 10]

Starts a real Janus on loopback (tests/e2e/janus_server.py: Debian's `janus`, the loopback
ICE shim) and `avatarcast serve` with one media worker process (`--media-workers 1`, its own
data directory and key), creates one session with `Protocol: janus` and keeps it speaking
(SEND_TEXT after text). This process then subscribes 0, 1, 5, 10 ... aiortc viewers to the
session's feed through Janus and measures, for each count, over `--seconds` (after 3 s to
settle):

- `worker_cpu_cores`: CPU seconds of the media worker process that runs the session / wall
  seconds (render, encode once, one aiortc publisher). The claim: it does not grow with the
  viewers.
- `janus_cpu_cores`: the same for the Janus process (it forwards RTP to every subscriber).
- `viewer_fps_min` / `viewer_fps_mean`: frames each subscriber received per second.

The subscribers (aiortc, decoding H.264 in this process) share the machine's cores with the
session and Janus; on a small machine they, not the session, are the limit.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from avatarcast.client import Client
from avatarcast.sessions.store_sqlite import SqliteStore

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "e2e"))
from janus_server import API_SECRET, JanusServer, JanusSubscriber, free_port  # noqa: E402

ROOM = 9001
TEXT = (
    "Welcome to our store. I can help you find a product, check an order, or answer a "
    "question about delivery. What would you like to do today?"
)
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    """utime + stime of a process (all its threads), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def media_worker(server_pid: int) -> int:
    """The server's media worker: its child that is a multiprocessing spawn."""
    for line in subprocess.run(
        ["pgrep", "-a", "-P", str(server_pid)], capture_output=True, text=True, check=False
    ).stdout.splitlines():
        pid, _, cmd = line.partition(" ")
        if "spawn_main" in cmd:
            return int(pid)
    raise RuntimeError("no media worker process")


def start_server(work: Path, janus_url: str) -> tuple[subprocess.Popen[bytes], Client]:
    store = SqliteStore(work / "avatarcast.db")
    appkey, token = store.create_key("bench", 4)
    store.close()
    port = free_port()
    cmd = [
        str(Path(sys.executable).parent / "avatarcast"),
        "serve",
        "--data-dir",
        str(work),
        "--port",
        str(port),
        "--media-workers",
        "1",
        "--janus-url",
        janus_url,
        "--ice-host-addresses",
        "127.0.0.1",
        "--log-level",
        "warning",
    ]
    env = dict(os.environ, AVATARCAST_JANUS_API_SECRET=API_SECRET)
    log = (work / "server.log").open("wb")
    server = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    client = Client(f"http://127.0.0.1:{port}", appkey, token)
    deadline = time.monotonic() + 60
    while True:
        try:
            client.list_sessions()
            return server, client
        except Exception:
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the server did not start; see {work / 'server.log'}") from None
            time.sleep(0.2)


async def measure(
    viewers: list[JanusSubscriber], worker_pid: int, janus_pid: int, seconds: float
) -> dict[str, object]:
    await asyncio.sleep(3.0)  # settle: new viewers' first keyframe, jitter buffers
    f0 = [v.frames for v in viewers]
    t0, p0, j0 = time.monotonic(), cpu_s(worker_pid), cpu_s(janus_pid)
    await asyncio.sleep(seconds)
    wall = time.monotonic() - t0
    fps = [(v.frames - a) / wall for v, a in zip(viewers, f0, strict=True)]
    return {
        "viewers": len(viewers),
        "worker_cpu_cores": round((cpu_s(worker_pid) - p0) / wall, 3),
        "janus_cpu_cores": round((cpu_s(janus_pid) - j0) / wall, 3),
        "viewer_fps_min": round(min(fps), 1) if fps else None,
        "viewer_fps_mean": round(sum(fps) / len(fps), 1) if fps else None,
    }


async def keep_talking(client: Client, sid: str, sent: list[int]) -> None:
    """A new text whenever the last one is over ("Idle" before the first)."""
    while True:
        stat = await asyncio.to_thread(client.stat_session, sid)
        if stat["SpeakStatus"] in ("Idle", "TextOver"):
            await asyncio.to_thread(client.command, sid, "SEND_TEXT", {"Text": TEXT})
            sent[0] += 1
        await asyncio.sleep(0.5)


async def run(a: argparse.Namespace) -> dict[str, object]:
    counts = sorted(int(n) for n in a.viewers.split(","))
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        janus = JanusServer(work / "janus", free_port())
        janus.start()
        server, client = start_server(work, janus.url)
        viewers: list[JanusSubscriber] = []
        talker: asyncio.Task[None] | None = None
        texts = [0]
        try:
            extra = {"ProtocolOption": {"RoomId": ROOM}}
            created = client.create_session_by_asset("default", "bench", "janus", extra=extra)
            sid = created["SessionId"]
            query = parse_qs(urlsplit(created["PlayStreamAddr"]).query)
            feed = int(query["feed"][0])
            client.wait_ready(sid, 60)
            client.start_session(sid)
            deadline = time.monotonic() + 30
            while [o["state"] for o in client.stat_session(sid)["Outputs"]] != ["streaming"]:
                assert time.monotonic() < deadline, client.stat_session(sid)["Outputs"]
                await asyncio.sleep(0.2)
            worker = media_worker(server.pid)
            assert janus.proc is not None
            talker = asyncio.create_task(keep_talking(client, sid, texts))
            rows = []
            for n in counts:
                while len(viewers) < n:
                    v = JanusSubscriber(janus.url, ROOM, feed, decode=False)
                    await v.__aenter__()
                    viewers.append(v)
                rows.append(await measure(viewers, worker, janus.proc.pid, a.seconds))
            stat = client.stat_session(sid)
        finally:
            if talker is not None:
                talker.cancel()
                with contextlib.suppress(BaseException):
                    await talker
            for v in viewers:
                with contextlib.suppress(Exception):
                    await v.__aexit__(None, None, None)
            server.terminate()
            server.wait(30)
            client.close()
            janus.stop()
    return {
        "cores": os.cpu_count(),
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "seconds": a.seconds,
        "rows": rows,
        "texts_spoken": texts[0],
        "session_outputs": stat["Outputs"],
        "note": "worker_cpu_cores should not grow with viewers (Janus forwards)",
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--json", action="store_true", help="print only the JSON object")
    ap.add_argument("--viewers", default="0,1,5,10")
    ap.add_argument("--seconds", type=float, default=10.0)
    a = ap.parse_args()
    out = asyncio.run(run(a))
    if a.json:
        print(json.dumps(out))
    else:
        for row in out["rows"]:  # type: ignore[attr-defined]
            print(row)


if __name__ == "__main__":
    main()
