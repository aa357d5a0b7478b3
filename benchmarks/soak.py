"""Soak: a server with 4 speaking sessions for N minutes; RSS, threads, fds and frame timing.

    python benchmarks/soak.py --minutes 30 [--sample-s 10] [--tracemalloc] [--after-close-s 30]

The server runs in its own process (`avatarcast.api.server`'s app under uvicorn, as `serve` runs
it), so its memory is measured alone. This script drives it as clients would: 4 sessions
(3 WebRTC, 1 `Protocol: rtmp` pushing to a local nginx-rtmp started with
`scripts/rtmp-server.sh`), each speaking text after text over its command channel (the next
`SEND_TEXT` right after a `TextOver`), and one WHEP viewer (aiortc, decoding) on the first.

Sampled every `--sample-s` in the server process: RSS (VmRSS), OS threads, open fds, and per
session the frames sent, the late (skipped) frame slots, and the drift of the frame loop
(slots due by the clock minus slots produced or skipped: grows if the loop falls behind
without skipping). A and V share one timeline (slot n carries video pts n and the audio of
slot n), so A/V drift would show as loop drift. After the run every session is closed and RSS
is sampled for `--after-close-s` more (what stays after all sessions closed).

`--tracemalloc`: the server traces Python allocations (the allocating line) and reports the 15
source lines whose traced memory grew most from the 2-minute mark to the end (and the traced total
beside RSS: growth in RSS but not in traced memory is not Python objects: arenas, native
buffers, fragmentation). Tracing slows the server; use it to look for leaks, not for timing.

Prints one JSON object. Goals (issue 12, over 30 minutes): RSS growth under 5 % after the first
5 minutes, no drift, late frames under 1 %. On a shared machine, late frames measure the
machine as much as the server: the load average is printed beside them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import gc
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
import uuid
from pathlib import Path
from typing import Any

import httpx
from websockets.sync.client import connect

ROOT = Path(__file__).resolve().parent.parent
TEXTS = (
    "Welcome to our store. I can help you find a product, check an order, or answer a "
    "question about delivery.",
    "Our opening hours are nine to six on weekdays, and ten to four on Saturdays.",
    "The parcel left the warehouse this morning and should arrive tomorrow before noon.",
    "Thank you for waiting. Is there anything else I can help you with today?",
)
TRACE_FROM_S = 120.0  # tracemalloc baseline: after start-up, caches and the first utterances


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


# ---- the server process ------------------------------------------------------------------
def _proc_status() -> dict[str, int]:
    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "Threads"):
            out[key] = int(value.split()[0])
    return out


def _serve(a: argparse.Namespace) -> None:
    """Child mode: run the server; append one JSON sample per interval to `a.samples`."""
    import uvicorn

    from avatarcast.api.server import _config, build_context
    from avatarcast.avatars import registry
    from avatarcast.settings import Settings

    if a.tracemalloc:
        tracemalloc.start(1)  # the allocating line is enough to group by; deeper costs more
    settings = Settings(
        data_dir=Path(a.data_dir),
        port=a.port,
        log_level="warning",
        rtmp_ingest_url=a.rtmp_ingest,
        ice_host_addresses="127.0.0.1",
        # The media in this process: the soak looks inside it (RSS, tracemalloc, caches).
        # benchmarks/capacity.py measures the worker processes.
        media_workers=0,
    ).validate()
    ctx = build_context(settings)
    server = uvicorn.Server(_config(settings, ctx))
    started = time.monotonic()
    out = open(a.samples, "a", buffering=1)  # noqa: SIM115 - lives as long as the process
    baseline: list[tracemalloc.Snapshot] = []

    def sample() -> None:
        last_trace = 0.0
        had_sessions = False
        trimmed: list[str] = []
        while not server.should_exit:
            time.sleep(a.sample_s)
            now = time.monotonic()
            status = _proc_status()
            sessions = []
            for s in list(ctx.manager._sessions.values()):
                host = getattr(s.host, "host", None)  # the SessionHost behind a LocalHost
                live = host.live if host is not None else None
                if live is None or live.pacer is None or live.closed:
                    continue
                due = int((ctx.clock.now() - live.pacer.start) * live.options.fps) + 1
                sessions.append(
                    {
                        "frames": live.frames_sent,
                        "late": live.late_frames,
                        "drift_frames": due - live.frames_sent - live.late_frames,
                    }
                )
            caches = sum(getattr(av, "cache_bytes", 0) for av in list(registry._instances.values()))
            rec: dict[str, Any] = {
                "t_s": round(now - started, 1),
                "unix": time.time(),
                "rss_mb": round(status["VmRSS"] / 1024, 1),
                "avatar_cache_mb": round(caches / 2**20, 1),
                "threads": status["Threads"],
                "fds": len(os.listdir("/proc/self/fd")),
                "sessions": sessions,
                "load1": os.getloadavg()[0],
            }
            if not sessions and had_sessions and "trimmed" not in trimmed:
                # All closed: how much of the RSS left is freed heap glibc kept (returned by
                # malloc_trim), and how much is live (shared avatar caches, libraries)?
                trimmed.append("trimmed")
                ctypes.CDLL("libc.so.6").malloc_trim(0)
                rec["rss_mb_after_malloc_trim"] = round(_proc_status()["VmRSS"] / 1024, 1)
            had_sessions = had_sessions or bool(sessions)
            if a.tracemalloc and now - last_trace >= 60:
                last_trace = now
                rec["traced_mb"] = round(tracemalloc.get_traced_memory()[0] / 2**20, 1)
                rec["gc_objects"] = len(gc.get_objects())
                snap = tracemalloc.take_snapshot().filter_traces(
                    (tracemalloc.Filter(False, tracemalloc.__file__),)
                )
                if not baseline and now - started >= TRACE_FROM_S:
                    baseline.append(snap)
                elif baseline:
                    top = snap.compare_to(baseline[0], "lineno")[:15]
                    rec["trace_top"] = [
                        {
                            "where": f"{st.traceback[0].filename.split('site-packages/')[-1]}"
                            f":{st.traceback[0].lineno}",
                            "growth_kb": round(st.size_diff / 1024),
                            "count_growth": st.count_diff,
                        }
                        for st in top
                    ]
            out.write(json.dumps(rec) + "\n")

    threading.Thread(target=sample, daemon=True, name="soak-sampler").start()
    server.run()


# ---- the clients -------------------------------------------------------------------------
class Talker(threading.Thread):
    """One session's command channel: SEND_TEXT, wait for its TextOver, the next text."""

    def __init__(self, url: str, session_id: str, index: int) -> None:
        super().__init__(daemon=True, name=f"talker-{index}")
        self.url = url
        self.session_id = session_id
        self.index = index
        self.spoken = 0
        self.errors: list[str] = []
        self.stop = threading.Event()

    def run(self) -> None:
        try:
            with connect(self.url, open_timeout=20) as ws:
                n = self.index
                while not self.stop.is_set():
                    req_id = uuid.uuid4().hex
                    text = TEXTS[n % len(TEXTS)]
                    n += 1
                    payload = {
                        "ReqId": req_id,
                        "SessionId": self.session_id,
                        "Command": "SEND_TEXT",
                        "Data": {"Text": text},
                    }
                    ws.send(json.dumps({"Header": {}, "Payload": payload}))
                    while not self.stop.is_set():
                        try:
                            msg = json.loads(ws.recv(timeout=1.0))
                        except TimeoutError:
                            continue
                        if msg.get("Type") == 9 and not self.stop.is_set():
                            self.errors.append(f"{msg.get('ErrorCode')} {msg.get('ErrorMessage')}")
                            break
                        if msg.get("ReqId") == req_id and msg.get("SpeakStatus") == "TextOver":
                            self.spoken += 1
                            break
        except Exception as exc:  # reported, not raised: the soak goes on for the others
            self.errors.append(f"channel: {type(exc).__name__}: {exc}")


class Viewer(threading.Thread):
    """A WHEP viewer (aiortc, decoding) on one session; counts frames and gaps."""

    def __init__(self, play_url: str) -> None:
        super().__init__(daemon=True, name="viewer")
        self.play_url = play_url
        self.frames = 0
        self.gaps_over_200ms = 0
        self.error = ""
        self.stop = threading.Event()

    def run(self) -> None:
        asyncio.run(self._watch())

    async def _watch(self) -> None:
        from avatarcast.client.viewer import WhepViewer

        try:
            async with WhepViewer(
                self.play_url,
                ice_host_addresses=["127.0.0.1"],
                crop=(0, 16, 0, 16),
                max_video_frames=50,
                max_audio_frames=50,
                timeout_s=20,
            ) as v:
                last = None
                async for frame in v.video_frames(idle_timeout_s=10):
                    self.frames += 1
                    if last is not None and frame.t - last > 0.2:
                        self.gaps_over_200ms += 1
                    last = frame.t
                    if self.stop.is_set():
                        return
        except Exception as exc:
            self.error = f"{type(exc).__name__}: {exc}"


def _rtmp_alive(url: str) -> int:
    """Frames an RTMP player decodes from the nginx relay in ~2 s (0: nothing arrives)."""
    import av

    with contextlib.suppress(Exception), av.open(url, options={"rw_timeout": "5000000"}) as c:
        n = 0
        for _ in c.decode(video=0):
            n += 1
            if n >= 50:
                break
        return n
    return 0


def _summary(samples: list[dict[str, Any]], closed_unix: float, minutes: float) -> dict[str, Any]:
    running = [s for s in samples if s["unix"] <= closed_unix]
    after = [s for s in samples if s["unix"] > closed_unix]
    closed_at_s = running[-1]["t_s"]
    settle_s = min(300.0, closed_at_s / 6)  # the first 5 minutes (or a sixth of a short run)
    steady = [s for s in running if s["t_s"] >= settle_s] or running[-1:]
    first, last = steady[0], running[-1]
    frames = sum(x["frames"] for x in last["sessions"])
    late = sum(x["late"] for x in last["sessions"])
    drifts = [x["drift_frames"] for s in running for x in s["sessions"]]
    out: dict[str, Any] = {
        "minutes": minutes,
        "sessions_seen": len(last["sessions"]),
        "rss_mb": {
            "start": running[0]["rss_mb"],
            "at_settle": first["rss_mb"],
            "settle_s": round(settle_s),
            "end_running": last["rss_mb"],
            "max_running": max(s["rss_mb"] for s in running),
            "growth_after_settle_pct": round(100 * (last["rss_mb"] / first["rss_mb"] - 1), 2),
            "after_close": next(
                (s["rss_mb"] for s in after if "rss_mb_after_malloc_trim" in s), None
            ),
            "after_close_and_malloc_trim": next(
                (s["rss_mb_after_malloc_trim"] for s in after if "rss_mb_after_malloc_trim" in s),
                None,
            ),
            "avatar_cache_at_settle": first["avatar_cache_mb"],
            "avatar_cache_end": last["avatar_cache_mb"],
        },
        "threads": {
            "at_settle": first["threads"],
            "end": last["threads"],
            "after_close": after[-1]["threads"] if after else None,
        },
        "fds": {
            "at_settle": first["fds"],
            "end": last["fds"],
            "after_close": after[-1]["fds"] if after else None,
        },
        "frames_sent": frames,
        "late_frames": late,
        "late_pct": round(100 * late / max(1, frames + late), 3),
        "drift_frames_max": max(drifts) if drifts else None,
        "drift_frames_end": [x["drift_frames"] for x in last["sessions"]],
        "load1_median": round(statistics.median(s["load1"] for s in samples), 2),
        "rss_series_mb": [(s["t_s"], s["rss_mb"]) for s in samples],
    }
    traced = [s for s in samples if "traced_mb" in s]
    if traced:
        out["traced_mb_series"] = [(s["t_s"], s["traced_mb"]) for s in traced]
        out["gc_objects_series"] = [(s["t_s"], s["gc_objects"]) for s in traced]
        tops = [s for s in running if "trace_top" in s]
        if tops:
            out["trace_top_growth_end_running"] = tops[-1]["trace_top"]
        tops_after = [s for s in after if "trace_top" in s]
        if tops_after:
            out["trace_top_growth_after_close"] = tops_after[-1]["trace_top"]
    return out


def run(a: argparse.Namespace) -> dict[str, Any]:
    from avatarcast.client import Client
    from avatarcast.sessions.store_sqlite import SqliteStore

    work = Path(tempfile.mkdtemp(prefix="avatarcast-soak-"))
    data_dir = work / "data"
    data_dir.mkdir()
    rtmp_port = _free_port()
    env = {**os.environ, "RTMP_PORT": str(rtmp_port)}
    rtmp_script = str(ROOT / "scripts" / "rtmp-server.sh")
    subprocess.run([rtmp_script, "start", str(data_dir)], env=env, check=True, capture_output=True)
    store = SqliteStore(data_dir / "avatarcast.db")
    appkey, token = store.create_key("soak", 8)
    store.close()
    port = _free_port()
    samples_path = work / "samples.jsonl"
    cmd = [
        sys.executable,
        __file__,
        "--serve",
        "--data-dir",
        str(data_dir),
        "--port",
        str(port),
        "--samples",
        str(samples_path),
        "--sample-s",
        str(a.sample_s),
        "--rtmp-ingest",
        f"rtmp://127.0.0.1:{rtmp_port}/live",
    ]
    if a.tracemalloc:
        cmd.append("--tracemalloc")
    log = open(work / "server.log", "w")  # noqa: SIM115 - the server's whole life
    server = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log)
    base = f"http://127.0.0.1:{port}"
    talkers: list[Talker] = []
    viewer: Viewer | None = None
    viewer_started = 0.0
    rtmp_frames = 0
    closed_at = 0.0
    closed_unix = float("inf")
    started = time.monotonic()
    try:
        deadline = time.monotonic() + 300  # tracemalloc makes start-up slow
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(base + "/healthz", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline or server.poll() is not None:
                raise RuntimeError(f"server did not start; see {work / 'server.log'}")
            time.sleep(0.2)
        c = Client(base, appkey, token, timeout_s=30)
        made = []
        for i, protocol in enumerate(("webrtc", "rtmp", "webrtc", "webrtc")):
            made.append(c.create_session_by_asset("default", f"soak-{i}", protocol=protocol))
        for m in made:
            c.wait_ready(m["SessionId"], timeout_s=60)
            c.start_session(m["SessionId"])
        viewer = Viewer(made[0]["PlayStreamAddr"])
        viewer.start()
        viewer_started = time.monotonic() - started
        for i, m in enumerate(made):
            t = Talker(c.command_channel_url(m["SessionId"]), m["SessionId"], i)
            t.start()
            talkers.append(t)
        end = time.monotonic() + a.minutes * 60  # from the moment all four speak
        while time.monotonic() < end and server.poll() is None:
            time.sleep(1)
        rtmp_frames = _rtmp_alive(made[1]["PlayStreamAddr"])
        for t in talkers:
            t.stop.set()
        viewer.stop.set()
        closed_at = time.monotonic() - started
        closed_unix = time.time()
        for m in made:
            c.close_session(m["SessionId"])
        c.close()
        time.sleep(a.after_close_s + a.sample_s)
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
        subprocess.run(
            [rtmp_script, "stop", str(data_dir)], env=env, check=False, capture_output=True
        )
    samples = [json.loads(line) for line in samples_path.read_text().splitlines()]
    result = _summary(samples, closed_unix, a.minutes)
    result.update(
        {
            "utterances_spoken": [t.spoken for t in talkers],
            "talker_errors": [e for t in talkers for e in t.errors][:10],
            "viewer_frames": viewer.frames if viewer else 0,
            "viewer_fps": round(
                (viewer.frames if viewer else 0) / max(1.0, closed_at - viewer_started), 2
            ),
            "viewer_gaps_over_200ms": viewer.gaps_over_200ms if viewer else None,
            "viewer_error": viewer.error if viewer else "",
            "rtmp_frames_decoded_at_end": rtmp_frames,
            "server_exit_status": server.returncode,
            "cpus": os.cpu_count(),
            "work_dir": str(work),
        }
    )
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=30.0)
    p.add_argument("--sample-s", type=float, default=10.0)
    p.add_argument("--after-close-s", type=float, default=30.0)
    p.add_argument("--tracemalloc", action="store_true")
    # Child mode (the server process).
    p.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--data-dir", help=argparse.SUPPRESS)
    p.add_argument("--port", type=int, help=argparse.SUPPRESS)
    p.add_argument("--samples", help=argparse.SUPPRESS)
    p.add_argument("--rtmp-ingest", default="", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.serve:
        _serve(a)
        return
    print(json.dumps(run(a), indent=1))


if __name__ == "__main__":
    main()
