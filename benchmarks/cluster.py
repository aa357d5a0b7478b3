"""The cost of running sessions on a Ray cluster (issue 14), measured against one machine.

    python benchmarks/cluster.py [--quick] [--sessions 4] [--window-s 15] [--settle-s 5]
                                 [--rounds 2] [--repeats 5]

Needs root: it re-runs itself in a loopback-only network namespace (`unshare -n`, where Ray
binds 127.0.0.1) and starts there the real stack of tests/cluster (cluster_support.py: Ray
nodes, `avatarcast serve --cluster`; tests/pg_server.py: PostgreSQL). One JSON object on
stdout, progress on stderr; all it started is stopped, its temp dirs removed, also on errors.

1. `single` / `cluster`: `--sessions` speaking sessions (webrtc, no viewer; capacity.py's
   Talker: SEND_TEXT over the command channel, the next at each TextOver) on one `avatarcast
   serve --media-workers 1` (SQLite, a local worker process) and on a 1-node Ray cluster (one
   media worker actor, one API process, PostgreSQL), both up, loaded in turn for `--rounds`
   (ABBA…). After `--settle-s`, over `--window-s`: CPU in cores (/proc) of the media worker
   (/v2/status Workers[].Pid), the API process (and the node's Ray daemons, PostgreSQL),
   frames sent per second and late frames per session (/v2/status Sessions[]), RSS.
   `sessions_per_node_ratio`: single-node / cluster worker CPU per session (goal >= 0.9).
2. `first_frame`: 2 nodes, API processes A and B; createsessionbyasset at A, statsession at
   B every 20 ms until ready, a WHEP viewer through B until its first decoded frame.
3. `dead_node`: a session on the non-head node, SIGKILL of that node: time until statsession
   says failed (4), and until /v2/status no longer lists the worker, at A and at B.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from types import FrameType
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path[1:1] = [str(ROOT / "tests"), str(ROOT / "tests" / "cluster")]

import cluster_support as cs  # noqa: E402

from _report import report  # noqa: E402
from avatarcast.client import Client  # noqa: E402
from avatarcast.client.viewer import WhepViewer  # noqa: E402
from capacity import Stack, Talker, say  # noqa: E402
from pg_server import PgServer  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")
MAX_LOAD = "8"  # admission off (cores): the load here is fixed, not a search for the limit


def cpu_s(pids: Iterable[int]) -> float:
    """utime + stime of `pids` (a gone process counts 0), seconds."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError, ValueError, IndexError):
            stat = Path(f"/proc/{pid}/stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()
            total += int(fields[11]) + int(fields[12])
    return total / TICK


def rss_mb(pid: int) -> float:
    with contextlib.suppress(OSError, ValueError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def parents() -> dict[int, int]:
    """pid → parent pid of every process."""
    out = {}
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError, ValueError):
            stat = (entry / "stat").read_text() if entry.name.isdigit() else ""
            if stat:
                out[int(entry.name)] = int(stat[stat.rindex(")") + 2 :].split()[1])
    return out


def descendants(pid: int) -> list[int]:
    """`pid` and every process below it (PostgreSQL's backends)."""
    ppid, out, todo = parents(), [], [pid]
    while todo:
        out.append(p := todo.pop())
        todo += [c for c, pp in ppid.items() if pp == p]
    return out


def status(c: Client) -> dict[str, Any]:
    payload: dict[str, Any] = httpx.get(c.signed_url("/v2/status"), timeout=30).json()["Payload"]
    return payload


def wait_workers(c: Client, n: int, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while len([w for w in status(c)["Workers"] if w["Up"]]) < n:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{n} media workers not up: {status(c)['Workers']}")
        time.sleep(1)


# ---- 1. the same load on one machine and on a cluster -----------------------------------
def load(c: Client, api_pid: int, a: argparse.Namespace, others: dict[str, Callable[[], list[int]]]
         ) -> dict[str, Any]:  # fmt: skip
    """`a.sessions` speaking sessions; CPU, fps, late frames and RSS over the window."""
    sids = [c.create_session_by_asset("default", f"load-{i}")["SessionId"]
            for i in range(a.sessions)]  # fmt: skip
    talkers = []
    try:
        for i, sid in enumerate(sids):
            c.wait_ready(sid, timeout_s=120)
            c.start_session(sid)
            talkers.append(Talker(c.command_channel_url(sid), sid, i))
            talkers[-1].start()
        time.sleep(a.settle_s)
        workers = [w["Pid"] for w in status(c)["Workers"] if w["Up"]]
        pids = {"worker": workers, "api": [api_pid], **{k: f() for k, f in others.items()}}
        t0, st0, cpu0 = time.monotonic(), status(c), {k: cpu_s(p) for k, p in pids.items()}
        time.sleep(a.window_s)
        t1, st1, cpu1 = time.monotonic(), status(c), {k: cpu_s(p) for k, p in pids.items()}
        before = {s["SessionId"]: s for s in st0["Sessions"]}
        pairs = [(s, before[s["SessionId"]]) for s in st1["Sessions"] if s["SessionId"] in before]
        cores = {f"{k}_cores": round((cpu1[k] - cpu0[k]) / (t1 - t0), 3) for k in pids}
        return {"sessions": len(sids), "window_s": round(t1 - t0, 2), **cores,
                "worker_cores_per_session": round(cores["worker_cores"] / len(sids), 4),
                "fps_per_session": [round((s["FramesSent"] - b["FramesSent"]) / (t1 - t0), 2)
                                    for s, b in pairs],
                "late_frames_per_session": [s["LateFrames"] - b["LateFrames"] for s, b in pairs],
                "worker_rss_mb": sum(rss_mb(p) for p in workers), "api_rss_mb": rss_mb(api_pid),
                "utterances": sum(t.spoken for t in talkers),
                "talker_errors": [e for t in talkers for e in t.errors][:5],
                "load_avg_1": round(os.getloadavg()[0], 2)}  # fmt: skip
    finally:
        for t in talkers:
            t.stop.set()
        for sid in sids:
            with contextlib.suppress(Exception):
                c.close_session(sid)


class ClusterRun:
    """Ray nodes (one media worker each) and API processes on one PostgreSQL database."""

    def __init__(self, work: Path, pg: PgServer, nodes: int, apis: int) -> None:
        self.work, self.pg, self.nodes, self.n_apis = work, pg, nodes, apis
        self.ray: cs.RayCluster | None = None
        self.apis: list[cs.ApiProcess] = []
        self.clients: list[Client] = []

    def start(self) -> None:
        from avatarcast.sessions.store_pg import PgStore

        self.work.mkdir(parents=True)
        store_url = self.pg.new_database()
        self.ray = cs.start_ray(
            self.work, nodes=self.nodes, media_per_node=1
        )  # cleans up on failure
        for name in "ab"[: self.n_apis]:
            self.apis.append(cs.start_api(self.work, self.work / "data", self.ray.address,
                                          store_url, name, worker_max_load=MAX_LOAD))  # fmt: skip
        store = PgStore(store_url)
        try:
            key = store.create_key("bench", 32)
        finally:
            store.close()
        self.clients = [Client(x.url, *key, timeout_s=60) for x in self.apis]
        wait_workers(self.clients[0], self.nodes)

    def stop(self) -> None:
        for api in self.apis:
            api.stop()
        if self.ray is not None:
            self.ray.stop()  # its nodes and temp dir


def per_session(rounds: list[dict[str, Any]], *keys: str) -> float:
    """Mean over the rounds of the sum of `keys` (cores) per session."""
    return statistics.mean(sum(r[f"{k}_cores"] for k in keys) / r["sessions"] for r in rounds)


def compare(a: argparse.Namespace, work: Path, pg: PgServer, out: dict[str, Any]) -> None:
    """The same load on one machine and on a 1-node cluster, in alternating rounds (ABBA…)
    while both are up, so that a shared machine's drift weighs on both alike."""
    stack, one = Stack(workers=1), ClusterRun(work / "one", pg, nodes=1, apis=1)
    try:
        stack.start(max_sessions=a.sessions + 2)
        wait_workers(stack.client(), 1)
        one.start()
        assert one.ray is not None
        node = one.ray.nodes[0].proc.pid
        ws = {w["Pid"] for w in status(one.clients[0])["Workers"]}
        others = {"ray_daemons": lambda: [p for p in cs.session_pids(node) if p not in ws],
                  "postgres": lambda: descendants(pg.proc.pid)}  # fmt: skip
        targets = {"single": (stack.client(), stack.pid, {}),
                   "cluster": (one.clients[0], one.apis[0].proc.pid, others)}  # fmt: skip
        for r in range(a.rounds):
            for name in ("single", "cluster")[:: 1 if r % 2 == 0 else -1]:
                say(f"round {r + 1}/{a.rounds}, {name}: {a.sessions} speaking sessions ...")
                c, pid, more = targets[name]
                out.setdefault(name, []).append(load(c, pid, a, more))
                say(f"{name}: {out[name][-1]}")
    finally:
        one.stop()
        stack.stop()
        shutil.rmtree(stack.work, ignore_errors=True)
    s, c = out["single"], out["cluster"]
    out["worker_cores_per_session"] = {"single": round(per_session(s, "worker"), 4),
                                       "cluster": round(per_session(c, "worker"), 4)}  # fmt: skip
    for suffix, single_keys, cluster_keys in (
        ("", ["worker"], ["worker"]),
        ("_with_api", ["worker", "api"], ["worker", "api"]),
        ("_with_ray_daemons", ["worker"], ["worker", "ray_daemons"]),
    ):
        ratio = per_session(s, *single_keys) / per_session(c, *cluster_keys)
        out[f"sessions_per_node_ratio{suffix}"] = round(ratio, 3)


# ---- 2. create -> first frame through the other API process ------------------------------
async def first_frame(url: str) -> tuple[float, float]:
    """(WHEP answered, first decoded frame): monotonic times."""
    async with WhepViewer(url, ice_host_addresses=["127.0.0.1"], timeout_s=30) as v:
        frames = await v.wait_frames(1, timeout_s=30)
        return v.connected_at or 0.0, frames[0].t


def first_frames(run: ClusterRun, repeats: int) -> dict[str, Any]:
    ca, cb = run.clients
    rows = []
    for r in range(repeats):
        t0 = time.monotonic()
        made = ca.create_session_by_asset("default", f"first-{r}")
        t_made = time.monotonic()
        try:
            while cb.stat_session(made["SessionId"])["SessionStatus"] != 1:
                if time.monotonic() - t0 > 120:
                    raise RuntimeError(f"not ready in 120 s: {made}")
                time.sleep(0.02)
            t_ready = time.monotonic()
            play = made["PlayStreamAddr"]
            url = run.apis[1].url + play[play.index("/v2/whep/") :]
            t_whep, t_frame = asyncio.run(first_frame(url))
        finally:
            with contextlib.suppress(Exception):
                ca.close_session(made["SessionId"])
        rows.append({"create_s": round(t_made - t0, 3), "create_to_ready_s": round(t_ready - t0, 3),
                     "ready_to_whep_answer_s": round(t_whep - t_ready, 3),
                     "ready_to_first_frame_s": round(t_frame - t_ready, 3),
                     "create_to_first_frame_s": round(t_frame - t0, 3)})  # fmt: skip
        say(f"first frame {r + 1}/{repeats}: {rows[-1]}")
        time.sleep(1.5)  # the closed session leaves its worker's report
    total = [x["create_to_first_frame_s"] for x in rows]
    return {"repeats": rows, "median_s": round(statistics.median(total), 3), "max_s": max(total),
            **{f"median_{k}": round(statistics.median(x[k] for x in rows), 3)
               for k in ("create_to_ready_s", "ready_to_first_frame_s")}}  # fmt: skip


# ---- 3. a node dies ----------------------------------------------------------------------
def reported(c: Client, sid: str, timeout_s: float = 15) -> dict[str, Any]:
    """The session's row in /v2/status once its worker reported frames sent."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for row in status(c)["Sessions"]:
            if row["SessionId"] == sid and row["FramesSent"]:
                return dict(row)
        time.sleep(0.3)
    raise RuntimeError(f"{sid} not reported by its worker")


def dead_node(run: ClusterRun) -> dict[str, Any]:
    assert run.ray is not None
    ca, cb = run.clients
    victim = run.ray.nodes[1]
    sids: list[str] = []
    try:
        doomed = worker = ""
        while not doomed and len(sids) < 4:  # until one lands on the second node
            sids.append(ca.create_session_by_asset("default", f"dead-{len(sids)}")["SessionId"])
            ca.wait_ready(sids[-1], timeout_s=120)
            row = reported(ca, sids[-1])
            pid = {w["Name"]: w["Pid"] for w in status(ca)["Workers"]}[row["Worker"]]
            if pid in cs.session_pids(victim.proc.pid):
                doomed, worker = sids[-1], row["Worker"]
        if not doomed:
            raise RuntimeError("no session landed on the second node")
        time.sleep(2)
        say(f"killing the node of {worker} ...")
        t0 = time.monotonic()
        victim.kill()
        found: dict[str, float] = {}
        checks: dict[str, Callable[[], bool]] = {
            "failed_at_a_s": lambda: ca.stat_session(doomed)["SessionStatus"] == 4,
            "failed_at_b_s": lambda: cb.stat_session(doomed)["SessionStatus"] == 4,
            "worker_gone_at_a_s": lambda: all(
                w["Name"] != worker or not w["Up"] for w in status(ca)["Workers"]),
            "worker_gone_at_b_s": lambda: all(
                w["Name"] != worker or not w["Up"] for w in status(cb)["Workers"]),
        }  # fmt: skip
        while len(found) < len(checks) and time.monotonic() - t0 < 60:
            for k, check in checks.items():
                if k not in found and check():
                    found[k] = round(time.monotonic() - t0, 2)
            time.sleep(0.1)
        return {**found, "error_message": ca.stat_session(doomed).get("ErrorMessage", ""),
                "undetected_after_60_s": sorted(set(checks) - set(found))}  # fmt: skip
    finally:
        for sid in sids:
            with contextlib.suppress(Exception):
                ca.close_session(sid)


# ---- the run -----------------------------------------------------------------------------
def run(a: argparse.Namespace) -> dict[str, Any]:
    os.environ["AVATARCAST_WORKER_MAX_LOAD"] = MAX_LOAD  # the local server reads it too
    out: dict[str, Any] = {"cores": os.cpu_count(), "load_avg_start": os.getloadavg()}
    out["method"] = (
        f"sessions_per_node_ratio is derived from the media worker's CPU per session at "
        f"{a.sessions} speaking sessions (single-node / cluster worker CPU per session, mean "
        f"of {a.rounds} alternating rounds of {a.window_s} s windows), not from a ramp to "
        f"saturation; worker_max_load {MAX_LOAD} so admission never refuses"
    )
    work = Path(tempfile.mkdtemp(prefix="avatarcast-clbench-"))
    pg: PgServer | None = None
    two: ClusterRun | None = None
    try:
        pg = PgServer.start()
        compare(a, work, pg, out)
        say("2-node cluster, API processes A and B ...")
        two = ClusterRun(work / "two", pg, nodes=2, apis=2)
        two.start()
        out["first_frame"] = first_frames(two, a.repeats)
        out["dead_node"] = dead_node(two)
    finally:
        if two is not None:
            two.stop()
        if pg is not None:
            pg.stop()
        shutil.rmtree(work, ignore_errors=True)
    out["load_avg_end"] = os.getloadavg()
    return out


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # SIGTERM: the same clean stop as Ctrl-C


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--quick", action="store_true", help="smoke: 2 sessions, 5 s, 1 round, 2 repeats"
    )
    p.add_argument("--sessions", type=int, help="speaking sessions of the load (4; quick 2)")
    p.add_argument("--window-s", type=float, help="measuring window (15; quick 5)")
    p.add_argument("--settle-s", type=float, default=5.0, help="wait before the window")
    p.add_argument("--rounds", type=int, help="load rounds on each stack (2; quick 1)")
    p.add_argument("--repeats", type=int, help="create -> first frame runs (5; quick 2)")
    a = p.parse_args()
    if os.environ.get(cs.NETNS_ENV) != "1":  # Ray must only see loopback: a namespace of its own
        if os.geteuid() != 0 or not shutil.which("unshare"):
            raise SystemExit("benchmarks/cluster.py needs root and unshare (util-linux)")
        script = 'ip link set lo up && exec "$0" "$@"'
        args = [sys.executable, str(Path(__file__).resolve()), *sys.argv[1:]]
        os.execvpe("unshare", ["unshare", "-n", "sh", "-c", script, *args],
                   {**os.environ, cs.NETNS_ENV: "1"})  # fmt: skip
    a.sessions = a.sessions or (2 if a.quick else 4)
    a.window_s = a.window_s or (5.0 if a.quick else 15.0)
    a.rounds = a.rounds or (1 if a.quick else 2)
    a.repeats = a.repeats or (2 if a.quick else 5)
    signal.signal(signal.SIGTERM, _interrupt)
    report(run(a), as_json=True, human=True, width=40)


if __name__ == "__main__":
    main()
