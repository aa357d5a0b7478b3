"""Capacity of one `avatarcast serve`: speaking and idle sessions at 25 fps, memory per session.

    python benchmarks/capacity.py [--quick] [--max-sessions 24] [--idle-cap 64] [--window-s 10]
                                  [--workers N] [--viewers 1] [--keep]

Drives the real server as a customer would, and prints one JSON object on stdout (progress and
a summary for people on stderr). Started here, stopped at the end (also on Ctrl-C or an error):
`avatarcast serve` (its own data directory under /tmp, a key from `avatarcast keys create`, a
free loopback port) and a local nginx RTMP server (`scripts/rtmp-server.sh`, as `make run`).

1. `encode_only_fps`: `benchmarks/engine.py`'s encode-only figure (x264 + AAC of pre-rendered
   540x960 frames, frames per CPU second of one core), measured first, in this run.
   `encoder_limit_sessions` = cores x encode_only_fps / 25: the streams the encoder alone allows.
2. Speaking ramp: 2, 4, 6, ... sessions (`createsessionbyasset` → `startsession` → `SEND_TEXT`
   over the command channel, the next text at each `TextOver`). Every session is
   `Protocol: rtmp` (pushed to nginx) except the first `--viewers` ones, `Protocol: webrtc`,
   each watched by a WHEP viewer (aiortc) that decodes every frame. After each step has
   settled, a window of `--window-s`: from two reads of `GET /v2/status`, each session's
   frames sent per second and its late (skipped) frame slots; the viewers' decoded fps. A step
   passes when every session sends ≥ 24.5 fps, late slots are < 1 % of all slots, and every
   viewer decodes ≥ 24 fps. A failing step is measured once more (a shared machine is noisy);
   the ramp stops at the first step that fails twice. `speaking_capacity` is the last step
   that passed; `speaking_capacity_ratio` = speaking_capacity / encoder_limit_sessions
   (issue 13's goal: ≥ 0.8).
3. Idle ramp: the speaking sessions are closed but the first (watched, still speaking); idle
   `Protocol: rtmp` sessions (started, never driven) are added 8 at a time up to `--idle-cap`.
   `idle_capacity`: the last step whose idle sessions passed (as above), and
   `idle_speaker_on_time`: whether the speaking session (and its viewer) passed there too.
4. Memory: RSS of the server process and all its descendants (worker processes, when there are
   some), from /proc, at every step. `rss_mb_per_session` is the slope of RSS over the number
   of open sessions across all steps; `rss_growth_mb` the RSS after every session closed minus
   the RSS before the first one (includes caches loaded once, e.g. the avatar). Then `--churn`
   cycles (default 5) each open `--churn-sessions` sessions (16, a quarter speaking), keep them a
   window, close them all: `rss_mb_after_churn` is the RSS after each cycle (flat, or one step
   and flat: caches and allocator reserve; rising every cycle: a leak; the allocator moves by
   tens of MB, so read the trend, not one difference).

The data directory (database, server log, nginx logs) is removed at the end unless `--keep`.
`--workers N` is passed to `avatarcast serve` as `--media-workers N` (default: the server's,
one media worker process per core; 0 runs every session inside the server process).
`--quick`: a smoke run (speaking ramp to 4, idle cap 8 in steps of 4, 5 s windows). On a shared
machine the figures measure the machine as much as the server: the load average is reported.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO, Any

import httpx
from websockets.sync.client import connect

from _report import lines
from avatarcast.client import Client
from engine import encode_only_fps

ROOT = Path(__file__).resolve().parent.parent
RTMP_SCRIPT = ROOT / "scripts" / "rtmp-server.sh"
STATUS_PATH = "/v2/status"
FPS = 25
MIN_SESSION_FPS = 24.5  # frames sent per second, each session, over the window
MAX_LATE_PCT = 1.0  # late (skipped) slots, % of all slots of the sessions measured
MIN_VIEWER_FPS = 24.0  # decoded at the WHEP viewer (the benchmark's own CPU is shared too)
TEXTS = (
    "Welcome to our store. I can help you find a product, check an order, or answer a "
    "question about delivery.",
    "Our opening hours are nine to six on weekdays, and ten to four on Saturdays.",
    "The parcel left the warehouse this morning and should arrive tomorrow before noon.",
    "Thank you for waiting. Is there anything else I can help you with today?",
)


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


# ---- memory of a process tree ---------------------------------------------------------------
def _children(pid: int) -> list[int]:
    kids: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        with contextlib.suppress(OSError, ValueError):
            kids.extend(int(k) for k in task.read_text().split())
    return kids


def tree_rss_mb(pid: int) -> float:
    """VmRSS of `pid` and every descendant (worker processes), MiB; 0 for a gone process."""
    total_kb, todo, seen = 0, [pid], set()
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        with contextlib.suppress(OSError, ValueError):
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total_kb += int(line.split()[1])
            todo.extend(_children(p))
    return total_kb / 1024


# ---- the processes this benchmark starts ------------------------------------------------------
class Stack:
    """nginx-rtmp and `avatarcast serve` with a key of their own; `stop()` ends both."""

    def __init__(self, workers: int | None) -> None:
        self.work = Path(tempfile.mkdtemp(prefix="avatarcast-capacity-"))
        self.data_dir = self.work / "data"
        self.data_dir.mkdir()
        self.rtmp_env = {**os.environ, "RTMP_PORT": str(free_port())}
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.workers = workers
        self.server: subprocess.Popen[bytes] | None = None
        self.rtmp_started = False
        self.workers_passed = False
        self.key: dict[str, Any] = {}
        self.log: IO[bytes] | None = None

    def _cli(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "avatarcast", *args]

    def start(self, max_sessions: int) -> None:
        subprocess.run(
            [str(RTMP_SCRIPT), "start", str(self.data_dir)],
            env=self.rtmp_env,
            check=True,
            capture_output=True,
        )
        self.rtmp_started = True
        made = subprocess.run(
            self._cli("keys", "create", "--name", "capacity", "--max-sessions", str(max_sessions),
                      "--data-dir", str(self.data_dir)),
            check=True, capture_output=True, text=True,
        )  # fmt: skip
        self.key = json.loads(made.stdout)
        cmd = self._cli(
            "serve",
            "--data-dir", str(self.data_dir),
            "--port", str(self.port),
            "--log-level", "warning",
            "--rtmp-ingest-url", f"rtmp://127.0.0.1:{self.rtmp_env['RTMP_PORT']}/live",
            "--ice-host-addresses", "127.0.0.1",
        )  # fmt: skip
        if self.workers is not None:  # else the server's default: one media worker per core
            cmd += ["--media-workers", str(self.workers)]
            self.workers_passed = True
        self.log = open(self.work / "server.log", "wb")  # noqa: SIM115 - closed by stop()
        # Its own session: a Ctrl-C here reaches this script, which then stops it in order.
        self.server = subprocess.Popen(
            cmd, stdout=subprocess.DEVNULL, stderr=self.log, start_new_session=True
        )
        deadline = time.monotonic() + 120
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url + "/healthz", timeout=2).status_code == 200:
                    return
            if self.server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the server did not start; see {self.work / 'server.log'}")
            time.sleep(0.2)

    @property
    def pid(self) -> int:
        assert self.server is not None
        return self.server.pid

    def client(self) -> Client:
        return Client(self.url, self.key["appkey"], self.key["accesstoken"], timeout_s=60)

    def stop(self) -> None:
        if self.server is not None and self.server.poll() is None:
            self.server.send_signal(signal.SIGTERM)  # closes every session, then exits
            try:
                self.server.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.server.pid, signal.SIGKILL)  # its session: workers too
                self.server.wait()
        if self.log is not None:
            self.log.close()
        if self.rtmp_started:
            subprocess.run(
                [str(RTMP_SCRIPT), "stop", str(self.data_dir)],
                env=self.rtmp_env,
                check=False,
                capture_output=True,
            )
            self.rtmp_started = False


# ---- clients: a talker per speaking session, a viewer per watched one ------------------------
class Talker(threading.Thread):
    """One session's command channel: SEND_TEXT, wait for its TextOver, the next text."""

    def __init__(self, url: str, session_id: str, index: int) -> None:
        super().__init__(daemon=True, name=f"talker-{index}")
        self.url, self.session_id, self.index = url, session_id, index
        self.spoken = 0
        self.errors: list[str] = []
        self.stop = threading.Event()

    def run(self) -> None:
        try:
            with connect(self.url, open_timeout=30) as ws:
                n = self.index
                while not self.stop.is_set():
                    req_id = uuid.uuid4().hex
                    data = {"Text": TEXTS[n % len(TEXTS)]}
                    n += 1
                    payload = {"ReqId": req_id, "SessionId": self.session_id}
                    payload |= {"Command": "SEND_TEXT", "Data": data}
                    ws.send(json.dumps({"Header": {}, "Payload": payload}))
                    while not self.stop.is_set():
                        try:
                            msg = json.loads(ws.recv(timeout=1.0))
                        except TimeoutError:
                            continue
                        if msg.get("Type") == 9:
                            self.errors.append(f"{msg.get('ErrorCode')} {msg.get('ErrorMessage')}")
                            return
                        if msg.get("ReqId") == req_id and msg.get("SpeakStatus") == "TextOver":
                            self.spoken += 1
                            break
        except Exception as exc:  # reported with the figures, not raised
            if not self.stop.is_set():
                self.errors.append(f"channel: {type(exc).__name__}: {exc}")


class Viewer(threading.Thread):
    """A WHEP viewer (aiortc) that decodes every frame of one session; counts them."""

    def __init__(self, play_url: str) -> None:
        super().__init__(daemon=True, name="viewer")
        self.play_url = play_url
        self.frames = 0
        self.error = ""
        self.stop = threading.Event()
        self.connected = threading.Event()

    def run(self) -> None:
        asyncio.run(self._watch())

    async def _watch(self) -> None:
        from avatarcast.client.viewer import WhepViewer

        try:
            async with WhepViewer(
                self.play_url,
                ice_host_addresses=["127.0.0.1"],
                crop=(0, 16, 0, 16),  # keep a corner: the frame is decoded whole all the same
                max_video_frames=50,
                max_audio_frames=50,
                timeout_s=30,
            ) as v:
                self.connected.set()
                while not self.stop.is_set() and not v.ended:
                    self.frames = v.frames_received
                    await asyncio.sleep(0.05)
        except Exception as exc:
            self.error = f"{type(exc).__name__}: {exc}"
        finally:
            self.connected.set()


@dataclass
class Session:
    id: str
    kind: str  # "speaking" | "idle"
    protocol: str
    talker: Talker | None = None
    viewer: Viewer | None = None


@dataclass
class Step:
    phase: str
    sessions: int
    speaking: int
    idle: int
    window_s: float
    fps_min: dict[str, float]  # per kind: the slowest session's frames sent per second
    late_pct: dict[str, float]  # per kind: late slots / all slots, %
    viewer_fps: list[float]
    load: list[float]  # /v2/status Workers[].Load at the end of the window
    rss_mb: float
    load_avg_1: float  # the machine's 1-minute load average at the end of the window
    ok: dict[str, bool] = field(default_factory=dict)

    def passed(self, kind: str) -> bool:
        return self.ok.get(kind, False)

    def line(self) -> str:
        kinds = ", ".join(
            f"{k}: min {self.fps_min[k]:.2f} fps, late {self.late_pct[k]:.2f} %"
            f" {'ok' if self.ok[k] else 'FAIL'}"
            for k in self.fps_min
        )
        viewers = ", ".join(f"{v:.1f}" for v in self.viewer_fps) or "-"
        return (
            f"{self.phase:>8} {self.sessions:3d} sessions ({self.speaking} speaking): {kinds}; "
            f"viewer fps {viewers}; server load {self.load}; RSS {self.rss_mb:.0f} MB; "
            f"machine load avg {self.load_avg_1}"
        )


# ---- the fleet of sessions --------------------------------------------------------------------
class Fleet:
    def __init__(self, stack: Stack, viewers: int) -> None:
        self.stack = stack
        self.client = stack.client()
        self.viewers = viewers
        self.sessions: dict[str, Session] = {}
        self.made = 0

    def add(self, n: int, kind: str) -> None:
        """`n` more sessions of `kind`, each ready, started and (speaking) talking."""
        new: list[tuple[Session, str]] = []
        for _ in range(n):
            watched = (
                kind == "speaking"
                and sum(1 for s in self.sessions.values() if s.viewer)
                + sum(1 for s, _ in new if s.protocol == "webrtc")
                < self.viewers
            )
            protocol = "webrtc" if watched else "rtmp"
            made = self.client.create_session_by_asset(
                "default", f"capacity-{self.made}", protocol=protocol
            )
            self.made += 1
            new.append((Session(made["SessionId"], kind, protocol), made["PlayStreamAddr"]))
        for s, play_url in new:
            self.client.wait_ready(s.id, timeout_s=120)
            self.client.start_session(s.id)
            self.sessions[s.id] = s
            if kind == "speaking":
                url = self.client.command_channel_url(s.id)
                s.talker = Talker(url, s.id, len(self.sessions))
                s.talker.start()
            if s.protocol == "webrtc":
                s.viewer = Viewer(play_url)
                s.viewer.start()
                s.viewer.connected.wait(40)

    def close(self, s: Session) -> None:
        for client in (s.talker, s.viewer):
            if client is not None:
                client.stop.set()
        with contextlib.suppress(Exception):
            self.client.close_session(s.id)
        self.sessions.pop(s.id, None)

    def close_all(self) -> None:
        for s in list(self.sessions.values()):
            self.close(s)

    def status(self) -> tuple[float, dict[str, Any]]:
        """(the read's mid time, /v2/status Payload)."""
        t0 = time.monotonic()
        resp = httpx.get(self.client.signed_url(STATUS_PATH), timeout=60)
        t1 = time.monotonic()
        resp.raise_for_status()
        body = resp.json()
        if body["Header"]["Code"] != 0:
            raise RuntimeError(f"/v2/status: {body['Header']}")
        payload: dict[str, Any] = body["Payload"]
        return (t0 + t1) / 2, payload

    def measure(self, phase: str, window_s: float) -> Step:
        viewers = [s.viewer for s in self.sessions.values() if s.viewer is not None]
        t0, st0 = self.status()
        v0 = [(time.monotonic(), v.frames) for v in viewers]
        time.sleep(window_s)
        t1, st1 = self.status()
        v1 = [(time.monotonic(), v.frames) for v in viewers]
        before = {x["SessionId"]: x for x in st0["Sessions"]}
        fps: dict[str, list[float]] = {}
        slots: dict[str, list[int]] = {}  # kind → [frames, late]
        for x in st1["Sessions"]:
            s, b = self.sessions.get(x["SessionId"]), before.get(x["SessionId"])
            if s is None or b is None:
                continue
            frames = x["FramesSent"] - b["FramesSent"]
            late = x["LateFrames"] - b["LateFrames"]
            fps.setdefault(s.kind, []).append(frames / (t1 - t0))
            acc = slots.setdefault(s.kind, [0, 0])
            acc[0] += frames
            acc[1] += late
        speaking = sum(1 for s in self.sessions.values() if s.kind == "speaking")
        step = Step(
            phase=phase,
            sessions=len(self.sessions),
            speaking=speaking,
            idle=len(self.sessions) - speaking,
            window_s=round(t1 - t0, 2),
            fps_min={k: round(min(v), 2) for k, v in sorted(fps.items())},
            late_pct={
                k: round(100 * late / max(1, frames + late), 3)
                for k, (frames, late) in sorted(slots.items())
            },
            viewer_fps=[
                round((f1 - f0) / (e1 - e0), 2) for (e0, f0), (e1, f1) in zip(v0, v1, strict=True)
            ],
            load=[w["Load"] for w in st1["Workers"]],
            rss_mb=round(tree_rss_mb(self.stack.pid), 1),
            load_avg_1=round(os.getloadavg()[0], 2),
        )
        viewers_ok = all(v >= MIN_VIEWER_FPS for v in step.viewer_fps)
        for k in step.fps_min:
            step.ok[k] = step.fps_min[k] >= MIN_SESSION_FPS and step.late_pct[k] < MAX_LATE_PCT
        if "speaking" in step.ok:
            step.ok["speaking"] = step.ok["speaking"] and viewers_ok
        return step

    def talker_errors(self) -> list[str]:
        return [e for s in self.sessions.values() if s.talker for e in s.talker.errors]


def add(fleet: Fleet, n: int, kind: str, out: dict[str, Any]) -> bool:
    """Add sessions; a failure (refused, not ready in time) ends the ramp and is reported."""
    try:
        fleet.add(n, kind)
    except Exception as exc:
        say(f"adding {n} {kind} sessions failed: {type(exc).__name__}: {exc}")
        out.setdefault("errors", []).append(f"{kind} +{n}: {type(exc).__name__}: {exc}")
        return False
    return True


def measure_step(fleet: Fleet, phase: str, kind: str, a: argparse.Namespace) -> Step:
    """Settle, measure; a failing step is measured once more (noise on a shared machine)."""
    time.sleep(a.settle_s)
    step = fleet.measure(phase, a.window_s)
    say(step.line())
    if not step.passed(kind):
        step = fleet.measure(phase, a.window_s)
        say(step.line() + "  (second try)")
    return step


def wait_not_full(fleet: Fleet, timeout_s: float = 30.0) -> None:
    """Until the server admits again (at most `timeout_s`)."""
    deadline = time.monotonic() + timeout_s
    while fleet.status()[1]["Capacity"].get("Full") and time.monotonic() < deadline:
        time.sleep(0.5)


def rss_after_close(fleet: Fleet) -> float:
    """Close every session, let the server settle, and give its process tree's RSS (MB)."""
    fleet.close_all()
    time.sleep(3.0)
    return tree_rss_mb(fleet.stack.pid)


def churn(fleet: Fleet, a: argparse.Namespace, out: dict[str, Any]) -> list[float]:
    """Open and close `--churn-sessions` sessions (a quarter speaking) `--churn` times; the
    server's RSS after each close: memory that stays flat is caches, a rise each time a leak."""
    rss: list[float] = []
    for cycle in range(a.churn):
        wait_not_full(fleet)
        speaking = a.churn_sessions // 4
        if not add(fleet, speaking, "speaking", out):
            break
        left = a.churn_sessions - speaking
        while left > 0:  # in the idle ramp's steps: a burst of session starts is costly
            time.sleep(a.settle_s)
            wait_not_full(fleet)
            if not add(fleet, min(a.idle_step, left), "idle", out):
                return rss
            left -= a.idle_step
        time.sleep(a.window_s)
        rss.append(round(rss_after_close(fleet), 1))
        say(f"churn {cycle + 1}: {a.churn_sessions} sessions opened and closed; RSS {rss[-1]} MB")
    return rss


def pinned_encode_only_fps(seconds: float, rounds: int) -> float:
    """engine.py's encode-only figure, pinned to one core as engine.py pins itself; the
    affinity is put back before any server starts (children inherit it)."""
    if not hasattr(os, "sched_setaffinity"):
        return encode_only_fps(seconds=seconds, rounds=rounds)
    cpus = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(cpus)})
    try:
        return encode_only_fps(seconds=seconds, rounds=rounds)
    finally:
        os.sched_setaffinity(0, cpus)


# ---- the run --------------------------------------------------------------------------------
def run(a: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {"cores": os.cpu_count() or 1, "load_avg_start": os.getloadavg()}
    say("measuring encode-only fps (benchmarks/engine.py) ...")
    enc = pinned_encode_only_fps(a.encode_seconds, a.encode_rounds)
    out["encode_only_fps"] = round(enc, 1)
    limit = out["cores"] * enc / FPS
    out["encoder_limit_sessions"] = round(limit, 1)
    say(f"encode-only {enc:.1f} fps on one core; encoder limit {limit:.1f} sessions")

    stack = Stack(a.workers)
    steps: list[Step] = []
    started = time.monotonic()
    try:
        stack.start(max_sessions=max(a.max_sessions, a.idle_cap + 1, a.churn_sessions) + 4)
        out["media_workers"] = a.workers if stack.workers_passed else "one per core"
        time.sleep(2.0)
        rss_base = tree_rss_mb(stack.pid)
        fleet = Fleet(stack, a.viewers)
        try:
            # -- speaking ramp
            capacity = 0
            n = 0
            while n + a.step <= a.max_sessions:
                if not add(fleet, a.step, "speaking", out):
                    break
                n += a.step
                if n == a.step:
                    out["rss_mb_first_sessions"] = round(tree_rss_mb(stack.pid), 1)
                step = measure_step(fleet, "speaking", "speaking", a)
                steps.append(step)
                if not step.passed("speaking"):
                    break
                capacity = n
            refused = [e for e in out.get("errors", []) if "server at capacity" in e]
            out["speaking_ramp_end"] = (
                f"the server refused session {capacity + 1} (capacity error)"
                if refused
                else "late frames or the ramp's end"
            )
            out["speaking_capacity"] = capacity
            out["speaking_capacity_ratio"] = round(capacity / limit, 3)
            out["speaking_capacity_limited_by_max_sessions"] = capacity == a.max_sessions
            out["talker_errors"] = fleet.talker_errors()[:10]
            out["utterances_spoken"] = sum(
                s.talker.spoken for s in fleet.sessions.values() if s.talker
            )

            # -- idle ramp, one speaking (watched) session among them
            keep = next(iter(fleet.sessions.values()), None)
            for s in list(fleet.sessions.values()):
                if s is not keep:
                    fleet.close(s)
            # The workers measure their load over 5 s: the closed speakers' load leaves the
            # window before the server admits again (it refuses while it looks full).
            time.sleep(a.settle_s)
            wait_not_full(fleet)
            idle_capacity = 0
            idle_speaker_ok: bool | None = None
            both = 0
            m = 0
            while m + a.idle_step <= a.idle_cap:
                if not add(fleet, a.idle_step, "idle", out):
                    break
                m += a.idle_step
                step = measure_step(fleet, "idle", "idle", a)
                steps.append(step)
                if not step.passed("idle"):
                    break
                idle_capacity = m
                idle_speaker_ok = step.passed("speaking") if keep else None
                if idle_speaker_ok:
                    both = m
            out["idle_capacity"] = idle_capacity
            out["idle_speaker_on_time"] = idle_speaker_ok
            out["idle_capacity_with_speaker_on_time"] = both
            out["idle_cap"] = a.idle_cap
            out["talker_errors"] += fleet.talker_errors()[:10]
            out["viewer_errors"] = [
                s.viewer.error for s in fleet.sessions.values() if s.viewer and s.viewer.error
            ]
            rss_end = rss_after_close(fleet)
            out["rss_mb_after_churn"] = churn(fleet, a, out)
        finally:
            fleet.close_all()
            fleet.client.close()
    except BaseException:
        say(f"stopped early; the server log is kept in {stack.work}")
        raise
    finally:
        stack.stop()
    out["run_s"] = round(time.monotonic() - started, 1)
    out["load_avg_end"] = os.getloadavg()

    # -- memory
    points = [(s.sessions, s.rss_mb) for s in steps]
    out["rss_mb_baseline"] = round(rss_base, 1)
    out["rss_mb_peak"] = max((r for _, r in points), default=None)
    out["rss_mb_after_close"] = round(rss_end, 1)
    out["rss_growth_mb"] = round(rss_end - rss_base, 1)
    out["rss_mb_per_session"] = _slope(points)
    out["steps"] = [
        {
            "phase": s.phase,
            "sessions": s.sessions,
            "speaking": s.speaking,
            "fps_min": s.fps_min,
            "late_pct": s.late_pct,
            "viewer_fps": s.viewer_fps,
            "load": s.load,
            "rss_mb": s.rss_mb,
            "load_avg_1": s.load_avg_1,
            "ok": s.ok,
        }
        for s in steps
    ]
    out["criteria"] = (
        f"every session >= {MIN_SESSION_FPS} fps sent, late slots < {MAX_LATE_PCT} %, "
        f"viewers >= {MIN_VIEWER_FPS} fps decoded, over {a.window_s} s windows"
    )
    if a.keep:
        out["work_dir"] = str(stack.work)
    else:
        shutil.rmtree(stack.work, ignore_errors=True)
    return out


def _slope(points: list[tuple[int, float]]) -> float | None:
    """Least-squares MB per session over (sessions, RSS) points."""
    if len({n for n, _ in points}) < 2:
        return None
    mx = sum(n for n, _ in points) / len(points)
    my = sum(r for _, r in points) / len(points)
    sxx = sum((n - mx) ** 2 for n, _ in points)
    sxy = sum((n - mx) * (r - my) for n, r in points)
    return round(sxy / sxx, 2)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # SIGTERM: the same clean stop as Ctrl-C


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--quick", action="store_true", help="smoke run: ramp to 4, idle cap 8, 5 s")
    p.add_argument("--max-sessions", type=int, help="speaking ramp's end (default 24; quick 4)")
    p.add_argument("--step", type=int, default=2, help="speaking sessions added per step")
    p.add_argument("--idle-cap", type=int, help="idle sessions at most (default 64; quick 8)")
    p.add_argument("--idle-step", type=int, help="idle sessions added per step (8; quick 4)")
    p.add_argument("--window-s", type=float, help="measuring window per step (10; quick 5)")
    p.add_argument("--settle-s", type=float, default=3.0, help="wait after adding sessions")
    p.add_argument("--viewers", type=int, default=1, choices=(0, 1, 2), help="WHEP viewers")
    p.add_argument(
        "--workers", type=int, help="media workers (serve --media-workers); default one per core"
    )
    p.add_argument("--keep", action="store_true", help="keep the data dir and server log")
    p.add_argument(
        "--churn", type=int, default=5, help="open/close cycles after the ramps (RSS after each)"
    )
    p.add_argument("--churn-sessions", type=int, default=16, help="sessions per churn cycle")
    p.add_argument("--encode-seconds", type=float, default=10.0, help=argparse.SUPPRESS)
    p.add_argument("--encode-rounds", type=int, default=3, help=argparse.SUPPRESS)
    a = p.parse_args()
    quick = a.quick
    a.max_sessions = a.max_sessions or (4 if quick else 24)
    a.idle_cap = a.idle_cap if a.idle_cap is not None else (8 if quick else 64)
    a.idle_step = a.idle_step or (4 if quick else 8)
    a.window_s = a.window_s or (5.0 if quick else 10.0)
    if quick:
        a.encode_rounds = min(a.encode_rounds, 2)
        a.churn = min(a.churn, 1)
        a.churn_sessions = min(a.churn_sessions, 4)
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started ignoring it
    out = run(a)
    print(json.dumps(out), flush=True)
    say("\n".join(lines({k: v for k, v in out.items() if k != "steps"}, width=38)))


if __name__ == "__main__":
    main()
