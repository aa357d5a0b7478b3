"""Media worker processes, seen from the API process: start, place, admit, watch, replace.

Sessions' media run in worker processes (`avatarcast.engine.worker`), one per core by
default (setting `media_workers`). The pool:
- **places** a new session on the least-loaded worker, where load is the worker process's
  CPU use over the last few seconds (fraction of one core, from its reports), plus an
  estimate for sessions placed since that are not in the measurement yet;
- **admits** it only if that worker stays under `worker_max_load` (and under
  `worker_max_sessions` if set): when every worker is full, `place` raises CapacityError
  (100008, with the loads in its message) and the running sessions keep their frames;
- **watches** each process: a worker that dies fails its own sessions (their handles end
  with MediaWorkerError; the manager turns that into status 4 with the reason) and a new
  worker takes its place.

`RemoteHost` is the `HostHandle` of a session in a worker: each call is one message and
one reply on the worker's pipe; frames and notices come back as events.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import multiprocessing
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from avatarcast.engine.spec import (
    Call,
    HostEnded,
    HostEvent,
    HostSpec,
    Reply,
    SessionEvent,
    WorkerReport,
)
from avatarcast.engine.worker import worker_main
from avatarcast.errors import CapacityError, MediaWorkerError
from avatarcast.media import Pcm
from avatarcast.sessions.load import LoadMeter
from avatarcast.settings import Settings

log = logging.getLogger(__name__)

STOP_WAIT_S = 15.0


def worker_count(settings: Settings) -> int:
    """Worker processes the settings ask for: `media_workers`, or one per core when < 0."""
    if settings.media_workers < 0:
        return max(1, len(os.sched_getaffinity(0)))
    return settings.media_workers


@dataclass
class WorkerProc:
    """One worker process and the API side's view of it."""

    id: int
    process: BaseProcess
    conn: Connection
    started_at: float
    pid: int = 0
    up: bool = False  # its first report arrived
    dead: bool = False
    rss_bytes: int = 0
    sessions: dict[str, RemoteHost] = field(default_factory=dict)
    pending: dict[int, asyncio.Future[Any]] = field(default_factory=dict)
    meter: LoadMeter = field(default_factory=LoadMeter)

    @property
    def status(self) -> dict[str, dict[str, Any]]:
        """Each of its sessions' last reported host status."""
        return self.meter.status

    @property
    def load(self) -> float:
        return self.meter.load

    @property
    def late_fraction(self) -> float:
        return self.meter.late_fraction

    def projected_load(self, now: float) -> float:
        return self.meter.projected_load(now)

    def on_report(self, report: WorkerReport, now: float) -> None:
        self.pid, self.up, self.rss_bytes = report.pid, True, report.rss_bytes
        self.meter.record(now, report.cpu_s, report.sessions)

    def summary(self, now: float) -> dict[str, Any]:
        return {
            "Id": self.id,
            "Pid": self.pid or self.process.pid,
            "Up": self.up and not self.dead,
            "Sessions": len(self.sessions),
            "Load": round(self.load, 3),
            "ProjectedLoad": round(self.projected_load(now), 3),
            "LateFraction": round(self.late_fraction, 4),
            "RssMb": round(self.rss_bytes / 2**20, 1),
        }


class WorkerPool:
    """The media worker processes of one API process."""

    def __init__(self, settings: Settings, *, count: int | None = None) -> None:
        self.settings = settings
        self.count = worker_count(settings) if count is None else count
        self.max_load = settings.worker_max_load
        self.max_sessions = settings.worker_max_sessions
        self.workers: dict[int, WorkerProc] = {}
        self.replaced = 0  # workers started after one died
        self._ids = itertools.count()
        self._calls = itertools.count(1)
        self._ctx = multiprocessing.get_context("spawn")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping = False

    # ---- lifecycle ----------------------------------------------------------------------
    def start(self) -> None:
        """Start the workers (on the event loop; returns at once: each is ready when its
        first report comes, and calls sent before wait in its pipe). Idempotent."""
        if self._loop is not None:
            return
        self._loop = asyncio.get_running_loop()
        for _ in range(self.count):
            self._spawn()

    def _spawn(self) -> WorkerProc:
        assert self._loop is not None
        wid = next(self._ids)
        ours, theirs = self._ctx.Pipe(duplex=True)
        process = self._ctx.Process(
            target=worker_main,
            args=(theirs, self.settings, wid),
            name=f"avatarcast-media-{wid}",
            daemon=True,
        )
        process.start()
        theirs.close()
        worker = WorkerProc(wid, process, ours, time.monotonic())
        self.workers[wid] = worker
        self._loop.add_reader(ours.fileno(), self._readable, worker)
        self._loop.add_reader(process.sentinel, self._exited, worker)
        log.info("media worker %d started (pid %s)", wid, process.pid)
        return worker

    async def stop(self) -> None:
        """Ask every worker to close its sessions and exit; kill those that do not."""
        self._stopping = True
        for worker in list(self.workers.values()):
            if not worker.dead:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self._call(worker, "", "shutdown"), STOP_WAIT_S)
        for worker in list(self.workers.values()):
            await asyncio.to_thread(worker.process.join, 5.0)
            if worker.process.is_alive():
                worker.process.kill()
                await asyncio.to_thread(worker.process.join, 5.0)
            self._forget(worker)

    # ---- placement ----------------------------------------------------------------------
    def place(self, *, force: bool = False) -> WorkerProc:
        """The worker a new session goes to; CapacityError when every worker is full
        (`force`: the least loaded one anyway)."""
        self.start()
        now = time.monotonic()
        live = [w for w in self.workers.values() if not w.dead]
        room = [w for w in live if force or self._has_room(w, now)]
        if not room:
            loads = ", ".join(
                f"worker {w.id}: {w.projected_load(now):.2f} cores, {len(w.sessions)} sessions, "
                f"{w.late_fraction:.1%} frames late"
                for w in live
            )
            raise CapacityError(
                f"server at capacity: every media worker is at its limit (load limit "
                f"{self.max_load:g} of a core; {loads or 'no worker running'}); "
                "try again later"
            )
        best = min(
            room, key=lambda w: (w.projected_load(now), len(w.sessions) + w.meter.reserved, w.id)
        )
        best.meter.reserve(now)
        return best

    def release(self, worker: WorkerProc) -> None:
        """A placed session will not open on `worker` (closed or failed before its media)."""
        worker.meter.release()

    def full(self) -> bool:
        """No worker would take a new session now."""
        now = time.monotonic()
        return not any(self._has_room(w, now) for w in self.workers.values() if not w.dead)

    def _has_room(self, w: WorkerProc, now: float) -> bool:
        return w.meter.has_room(len(w.sessions), self.max_load, self.max_sessions, now)

    async def open(
        self, worker: WorkerProc, spec: HostSpec, on_event: Callable[[HostEvent], None]
    ) -> RemoteHost:
        """Bring a session's media up on `worker` (placed there by `place`); returns once
        frame 0 is out."""
        self.release(worker)  # from now on it counts among the worker's sessions
        handle = RemoteHost(self, worker, spec.session_id, on_event)
        worker.sessions[spec.session_id] = handle
        try:
            handle.language = await self._call(worker, spec.session_id, "open", spec)
        except BaseException:
            worker.sessions.pop(spec.session_id, None)
            if not worker.dead:  # cancelled (timeout): make sure nothing keeps running
                with contextlib.suppress(Exception):
                    self._send(worker, Call(next(self._calls), spec.session_id, "close"))
            raise
        return handle

    def status(self) -> list[dict[str, Any]]:
        now = time.monotonic()
        return [w.summary(now) for w in sorted(self.workers.values(), key=lambda w: w.id)]

    # ---- messages -----------------------------------------------------------------------
    def _send(self, worker: WorkerProc, call: Call) -> None:
        if worker.dead:
            raise MediaWorkerError(f"media worker {worker.id} is gone")
        try:
            worker.conn.send(call)
        except (OSError, EOFError, ValueError) as exc:
            raise MediaWorkerError(f"media worker {worker.id} is gone: {exc}") from exc

    async def _call(self, worker: WorkerProc, sid: str, op: str, *args: Any) -> Any:
        assert self._loop is not None
        call = Call(next(self._calls), sid, op, args)
        future: asyncio.Future[Any] = self._loop.create_future()
        worker.pending[call.call_id] = future
        try:
            self._send(worker, call)
            return await future
        finally:
            worker.pending.pop(call.call_id, None)

    def _readable(self, worker: WorkerProc) -> None:
        try:
            while worker.conn.poll():
                self._dispatch(worker, worker.conn.recv())
        except (EOFError, OSError):
            self._lost(worker)

    def _dispatch(self, worker: WorkerProc, msg: Any) -> None:
        if isinstance(msg, SessionEvent):
            handle = worker.sessions.get(msg.session_id)
            if handle is not None:
                handle.deliver(msg.event)
        elif isinstance(msg, Reply):
            future = worker.pending.get(msg.call_id)
            if future is not None and not future.done():
                if msg.error is not None:
                    future.set_exception(msg.error)
                else:
                    future.set_result(msg.value)
        elif isinstance(msg, WorkerReport):
            worker.on_report(msg, time.monotonic())
        elif isinstance(msg, HostEnded):
            handle = worker.sessions.pop(msg.session_id, None)
            if handle is not None:
                handle.end(msg.error)

    def _exited(self, worker: WorkerProc) -> None:
        self._lost(worker)

    @staticmethod
    def _how_it_ended(process: BaseProcess) -> str:
        process.join(1.0)  # it is gone or going: its pipe closed or its sentinel fired
        code = process.exitcode
        if code is None:
            process.kill()  # alive without its pipe: of no use any more
            process.join(1.0)
            return "closed its pipe"
        if code < 0:
            try:
                return f"was killed by {signal.Signals(-code).name}"
            except ValueError:
                return f"was killed by signal {-code}"
        return f"exited with status {code}"

    def _lost(self, worker: WorkerProc) -> None:
        if worker.dead:
            return
        self._forget(worker)
        how = self._how_it_ended(worker.process)
        error = MediaWorkerError(f"media worker {worker.id} (pid {worker.process.pid}) {how}")
        for future in worker.pending.values():
            if not future.done():
                future.set_exception(error)
        for handle in list(worker.sessions.values()):
            handle.end(error)
        worker.sessions.clear()
        if self._stopping:
            return
        log.error("%s; its sessions failed; starting another worker", error)
        self.workers.pop(worker.id, None)
        self.replaced += 1
        self._spawn()

    def _forget(self, worker: WorkerProc) -> None:
        if self._loop is None:
            return
        with contextlib.suppress(Exception):
            self._loop.remove_reader(worker.conn.fileno())
        with contextlib.suppress(Exception):
            self._loop.remove_reader(worker.process.sentinel)
        worker.dead = True
        with contextlib.suppress(Exception):
            worker.conn.close()


class RemoteHost:
    """The `HostHandle` of a session whose media runs in a worker process."""

    def __init__(
        self,
        pool: WorkerPool,
        worker: WorkerProc,
        session_id: str,
        on_event: Callable[[HostEvent], None],
    ) -> None:
        self.pool = pool
        self.worker = worker
        self.session_id = session_id
        self.on_event = on_event
        self.language = "en"
        self._error: BaseException | None = None
        self._closed = asyncio.Event()

    @property
    def worker_id(self) -> int:
        return self.worker.id

    def deliver(self, event: HostEvent) -> None:
        try:
            self.on_event(event)
        except Exception:  # a listener's bug must not break the worker's pipe
            log.exception("session %s: event listener failed", self.session_id)

    def end(self, error: BaseException) -> None:
        """The media died (worker gone, or the stream failed in the worker)."""
        if not self._closed.is_set():
            self._error = error
            self._closed.set()

    async def _call(self, op: str, *args: Any) -> Any:
        if self._closed.is_set():
            raise self._error or MediaWorkerError("the session's media has stopped")
        return await self.pool._call(self.worker, self.session_id, op, *args)

    @property
    def error(self) -> BaseException | None:
        return self._error

    async def wait_closed(self) -> None:
        await self._closed.wait()

    async def push_audio(
        self, pcm: Pcm, utterance_id: str, text: str | None, sei: str | None
    ) -> None:
        await self._call("push_audio", pcm, utterance_id, text, sei)

    async def end_audio(self) -> None:
        await self._call("end_audio")

    async def say_text(
        self, text: str, voice: str | None, utterance_id: str, sei: str | None
    ) -> None:
        await self._call("say_text", text, voice, utterance_id, sei)

    async def interrupt(self) -> int:
        index: int = await self._call("interrupt")
        return index

    def status(self) -> dict[str, Any]:
        status = self.worker.status.get(self.session_id)
        base = {"Outputs": [], "FramesSent": 0, "LateFrames": 0, "Viewers": 0}
        return {**base, **(status or {}), "Worker": self.worker.id}

    async def whep_answer(self, offer_sdp: str) -> tuple[str, str]:
        answer, resource_id = await self._call("whep_answer", offer_sdp)
        return str(answer), str(resource_id)

    async def whep_close(self, resource_id: str) -> bool:
        return bool(await self._call("whep_close", resource_id))

    async def stop(self) -> None:
        """Close the session's media in its worker; never raises."""
        if self._closed.is_set():
            return
        self._closed.set()
        self.worker.sessions.pop(self.session_id, None)
        if self.worker.dead:
            return
        try:
            await asyncio.wait_for(
                self.pool._call(self.worker, self.session_id, "close"), STOP_WAIT_S
            )
        except Exception as exc:
            log.warning("session %s: closing its media failed: %s", self.session_id, exc)
