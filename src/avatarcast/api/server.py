"""Run the API server: `serve` for `avatarcast serve`, `run_server_in_thread` for tests.

Both build the same parts: Store (SQLite in the data dir) → SessionManager → ApiContext → app,
then uvicorn. On shutdown (Ctrl-C, SIGTERM, `stop()`) the app's lifespan closes every session.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import replace

import uvicorn
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from avatarcast.api.app import create_app
from avatarcast.api.context import ApiContext
from avatarcast.logmask import uvicorn_log_config
from avatarcast.sessions.manager import SessionManager
from avatarcast.sessions.media import MediaFactory
from avatarcast.sessions.store import open_store
from avatarcast.sessions.workers import WorkerPool, worker_count
from avatarcast.settings import Settings
from avatarcast.stream.clock import MonotonicClock

log = logging.getLogger(__name__)


def build_context(settings: Settings, media_factory: MediaFactory | None = None) -> ApiContext:
    """Every long-lived part of a server, wired once.

    Sessions' media run in worker processes (`media_workers`, one per core by default) unless
    that setting is 0 or a test brings its own `media_factory`; with `cluster` set, in media
    worker actors on the nodes of that Ray cluster, shared with the other API processes.
    """
    if settings.cluster and media_factory is None:
        return _cluster_context(settings)
    store = open_store(settings)
    clock = MonotonicClock()
    pool = WorkerPool(settings) if media_factory is None and worker_count(settings) else None
    manager = SessionManager(settings, store, clock, time.time, media_factory, pool=pool)
    return ApiContext(settings=settings, store=store, manager=manager, clock=clock)


def _cluster_context(settings: Settings) -> ApiContext:
    from avatarcast.cluster.manager import ClusterManager
    from avatarcast.cluster.pool import ClusterPool, connect

    log.info("joining the Ray cluster at %s", settings.cluster)
    connect(settings.cluster)
    store = open_store(settings)
    clock = MonotonicClock()
    manager = ClusterManager(settings, store, clock, time.time, ClusterPool(settings))
    return ApiContext(settings=settings, store=store, manager=manager, clock=clock)


class WebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's WebSocket protocol, answering a handshake that websockets refused.

    A request line over 8 KiB (or too many headers): websockets prepares a 414/431 answer,
    but uvicorn 0.54 neither sends it nor closes the socket, so the client hangs until its
    own timeout. Send it and close.
    """

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        refused = not self.handshake_initiated and self.conn.handshake_exc is not None
        if refused and not self.transport.is_closing():
            self.transport.write(b"".join(self.conn.data_to_send()))
            self.transport.close()


def _config(settings: Settings, ctx: ApiContext) -> uvicorn.Config:
    return uvicorn.Config(
        create_app(ctx),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        lifespan="on",
        log_config=uvicorn_log_config(),  # the access log masks signature=, token=
        ws=WebSocketProtocol,
        # Sessions close in the lifespan shutdown; give their encoders a moment to stop.
        timeout_graceful_shutdown=10,
    )


def serve(settings: Settings) -> None:
    """Serve until interrupted; closing the server closes every session."""
    ctx = build_context(settings)
    server = uvicorn.Server(_config(settings, ctx))
    log.info("avatarcast API at %s (data in %s)", settings.base_url, settings.data_dir)
    try:
        server.run()
    finally:
        ctx.store.close()


def run_server_in_thread(
    settings: Settings,
    *,
    media_factory: MediaFactory | None = None,
    startup_timeout_s: float = 10.0,
) -> tuple[str, Callable[[], None]]:
    """Start a real server on a free loopback port in a thread; return (base_url, stop).

    `settings.host`/`port` are replaced by 127.0.0.1 and the port found, so PlayStreamAddr
    and every URL the server hands out point at this server. `stop()` shuts it down
    gracefully (sessions closed) and waits for the thread.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    settings = replace(settings, host="127.0.0.1", port=port, public_url="")
    ctx = build_context(settings, media_factory)
    server = uvicorn.Server(_config(settings, ctx))
    failed: list[BaseException] = []

    def run() -> None:
        try:
            server.run(sockets=[sock])  # handing over the bound socket: no port race
        except BaseException as exc:
            failed.append(exc)

    thread = threading.Thread(target=run, name=f"avatarcast-server-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout_s
    while not server.started:  # uvicorn sets this once the lifespan startup has run
        if failed or not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            thread.join(5)
            sock.close()
            ctx.store.close()
            raise RuntimeError(f"server did not start: {failed[0] if failed else 'timeout'}")
        time.sleep(0.01)

    def stop() -> None:
        server.should_exit = True
        thread.join(15)
        sock.close()
        ctx.store.close()

    return settings.base_url, stop
