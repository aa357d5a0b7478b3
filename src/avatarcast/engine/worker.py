"""A media worker process: it holds session hosts and runs them; the API process talks to it.

The API process starts workers (`avatarcast.sessions.workers.WorkerPool`), one per core by
default, and talks to each over one pipe (a `multiprocessing` connection; messages are the
plain values of `avatarcast.engine.spec`): `Call`s in, `Reply`s, `SessionEvent`s,
`HostEnded` and a `WorkerReport` every second out. Each worker runs its own event loop, so
its sessions' frame loops, encoders and WebRTC peers use their own core and their own GIL.

Transport-free core: `Worker.handle(call)` runs one call, `send` is whatever delivers a
message back; `worker_main` wires them to a pipe. A worker whose pipe closes (the API
process went away) stops its sessions and exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import pickle
import resource
import signal
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from avatarcast.engine.host import SessionHost, say_text_queued
from avatarcast.engine.spec import (
    Call,
    HostEnded,
    HostEvent,
    HostSpec,
    Reply,
    SessionEvent,
    WorkerReport,
)
from avatarcast.errors import BackendError, SessionClosed, SessionNotFound
from avatarcast.logmask import install_on_root
from avatarcast.settings import Settings
from avatarcast.stream.clock import MonotonicClock

log = logging.getLogger(__name__)

REPORT_INTERVAL_S = 1.0
_PAGE = os.sysconf("SC_PAGE_SIZE")


def trim_heap() -> None:
    """Give freed heap back to the system (glibc keeps it otherwise): after a session closes,
    its encoder's and muxers' buffers would stay in the worker's RSS. A no-op elsewhere."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def portable_error(exc: BaseException) -> BaseException:
    """`exc` if it survives pickling unchanged in kind, else a BackendError saying what it was."""
    try:
        again = pickle.loads(pickle.dumps(exc))
    except Exception:
        again = None
    if isinstance(again, BaseException) and type(again) is type(exc):
        return again
    return BackendError(f"{type(exc).__name__}: {exc}")


def rss_bytes() -> int:
    with open("/proc/self/statm", encoding="ascii") as f:
        return int(f.read().split()[1]) * _PAGE


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Worker:
    """The session hosts of one worker process."""

    def __init__(self, settings: Settings, send: Callable[[Any], None]) -> None:
        self.settings = settings
        self.send = send
        self.clock = MonotonicClock()
        self.hosts: dict[str, SessionHost] = {}
        self._closing: set[str] = set()

    # ---- calls --------------------------------------------------------------------------
    async def handle(self, call: Call) -> None:
        """Run `call`; always answers with a `Reply` (value or error)."""
        try:
            value = await self._run(call)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            if not isinstance(exc, (SessionClosed, SessionNotFound)):
                log.debug("call %s of %s failed: %s", call.op, call.session_id, exc)
            self.send(Reply(call.call_id, error=portable_error(exc)))
        else:
            self.send(Reply(call.call_id, value=value))

    async def _run(self, call: Call) -> Any:
        if call.op == "open":
            return await self.open(*call.args)
        if call.op == "shutdown":
            await self.close_all()
            return None
        host = self.hosts.get(call.session_id)
        if host is None or host.controls is None:
            raise SessionNotFound(f"session {call.session_id} has no media on this worker")
        controls = host.controls
        match call.op:
            case "push_audio":
                await asyncio.to_thread(controls.push_audio, *call.args)
            case "end_audio":
                await asyncio.to_thread(controls.end_audio)
            case "say_text":
                await say_text_queued(controls, *call.args)
            case "interrupt":
                return controls.interrupt()
            case "whep_answer":
                return await host.whep_answer(*call.args)
            case "whep_close":
                return await host.whep_close(*call.args)
            case "close":
                await self.close(call.session_id)
            case _:
                raise BackendError(f"unknown worker call {call.op!r}")
        return None

    async def open(self, spec: HostSpec) -> str:
        """Bring a session's media up; returns the engine's language once frame 0 is out."""
        sid = spec.session_id
        if sid in self.hosts:
            raise BackendError(f"session {sid} is already open on this worker")

        def on_event(event: HostEvent) -> None:
            self.send(SessionEvent(sid, event))

        host = SessionHost(spec, self.settings, self.clock, on_event)
        self.hosts[sid] = host
        try:
            await asyncio.to_thread(host.load)
            await host.start()
        except BaseException:
            self.hosts.pop(sid, None)
            await host.stop()
            raise
        asyncio.get_running_loop().create_task(self._watch(sid, host), name=f"watch-{sid}")
        assert host.engine is not None
        return host.engine.language

    async def _watch(self, sid: str, host: SessionHost) -> None:
        """A live stream that dies on its own is reported (the API side fails the session)."""
        await host.wait_closed()
        if sid in self._closing or self.hosts.get(sid) is not host:
            return
        error = host.error or BackendError("the live stream ended")
        log.error("session %s: media failed: %s", sid, error)
        self.hosts.pop(sid, None)
        await host.stop()
        self.send(HostEnded(sid, portable_error(error)))

    async def close(self, sid: str) -> None:
        host = self.hosts.get(sid)
        if host is None:
            return
        self._closing.add(sid)
        try:
            await host.stop()
        finally:
            self.hosts.pop(sid, None)
            self._closing.discard(sid)
        await asyncio.to_thread(trim_heap)

    async def close_all(self) -> None:
        for sid in list(self.hosts):
            await self.close(sid)

    def report(self) -> WorkerReport:
        sessions = {sid: host.status() for sid, host in self.hosts.items()}
        return WorkerReport(os.getpid(), cpu_seconds(), rss_bytes(), sessions)


async def serve_pipe(conn: Connection, settings: Settings) -> None:
    """Run a `Worker` over `conn` until the pipe closes or a shutdown call was answered."""
    loop = asyncio.get_running_loop()
    done = asyncio.Event()
    broken = False

    def send(msg: Any) -> None:
        nonlocal broken
        if broken:
            return
        try:
            conn.send(msg)
        except (OSError, EOFError, ValueError):  # the API process is gone
            broken = True
            done.set()

    worker = Worker(settings, send)
    tasks: set[asyncio.Task[None]] = set()

    async def run(call: Call) -> None:
        await worker.handle(call)
        if call.op == "shutdown":
            done.set()

    def readable() -> None:
        try:
            while conn.poll():
                call = conn.recv()
                task = loop.create_task(run(call), name=f"call-{call.op}")
                tasks.add(task)
                task.add_done_callback(tasks.discard)
        except (EOFError, OSError):
            done.set()

    async def reports() -> None:
        while True:
            await asyncio.sleep(REPORT_INTERVAL_S)
            send(worker.report())

    loop.add_reader(conn.fileno(), readable)
    reporter = loop.create_task(reports(), name="worker-report")
    send(worker.report())  # "up": the API side learns the pid and starts measuring load
    try:
        await done.wait()
    finally:
        loop.remove_reader(conn.fileno())
        reporter.cancel()
        await worker.close_all()
        for task in list(tasks):
            task.cancel()
        with contextlib.suppress(Exception):
            conn.close()


def worker_main(conn: Connection, settings: Settings, worker_id: int) -> None:
    """Entry point of a worker process (started with the `spawn` method)."""
    # Ctrl-C goes to the whole process group: the API process closes sessions and then its
    # workers; a worker must not die first. SIGTERM from the API side still ends it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.basicConfig(
        level=settings.log_level.upper(),
        format=f"%(asctime)s %(levelname)s worker-{worker_id} %(name)s: %(message)s",
    )
    install_on_root()
    asyncio.run(serve_pipe(conn, settings))
