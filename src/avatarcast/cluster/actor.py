"""A media worker on a cluster node: session hosts AND their drive channels, in one actor.

On a Ray cluster (`cluster_address`) each media worker is a Ray actor (`MediaActor`, made
remote by `avatarcast.cluster.pool`) on a node that offers the `avatarcast_media` resource.
Unlike the local worker processes, whose drive channels stay in the one API process, here a
session's whole live state lives with its media: the hosts (`engine.worker.Worker`) and the
`DriveChannel` of each session. Any API process can then serve any session: it forwards the
command channel's frames (`socket_send`) and long-polls what goes back (`socket_poll`),
forwards WHEP offers, and reads statuses from `report()`. Frame events never leave the node.

Plain Python: nothing here imports Ray, so the class is tested in one process too.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
from dataclasses import dataclass, field
from typing import Any

from avatarcast.codes import wire_code
from avatarcast.engine.spec import HostEnded, HostSpec, OutputNotice, SessionEvent
from avatarcast.engine.worker import Worker, cpu_seconds, rss_bytes
from avatarcast.errors import SessionClosed, SessionNotFound
from avatarcast.media import FrameInfo
from avatarcast.sessions.drive import DriveChannel
from avatarcast.sessions.handle import LocalHost
from avatarcast.settings import Settings

log = logging.getLogger(__name__)

MAX_POLL_S = 20.0  # a socket_poll waits at most this long for a message
STALE_SOCKET_S = 60.0  # its API process stopped polling (gone): detached
SOCKET_QUEUE = 256  # messages waiting for a poll; the drive channel's writer waits beyond


@dataclass
class _Owner:
    """What a drive channel reads of its session (`DriveOwner`), on the worker's side."""

    id: str
    voice: str | None
    stream_max_interval_ms: int
    last_activity: float
    is_open: bool = True
    # The API side lets drive traffic through for started sessions only (statsession's
    # IsSessionStarted is in the shared store); here every command that arrives may drive.
    started: bool = True


@dataclass
class _Socket:
    token: int
    queue: asyncio.Queue[dict[str, Any]]
    ended: asyncio.Event
    send: Any = None
    polled_at: float = 0.0  # a socket nobody polls for STALE_SOCKET_S is detached


@dataclass
class _Live:
    owner: _Owner
    drive: DriveChannel
    sockets: dict[int, _Socket] = field(default_factory=dict)
    failed: tuple[int, str] | None = None  # (wire code, reason) once its media died


class MediaActor:
    """The sessions of one media worker; every public method is a call of the API side."""

    def __init__(self, settings: Settings, name: str) -> None:
        self.settings = settings
        self.name = name
        self.worker = Worker(settings, self._event)
        self.clock = self.worker.clock
        self.live: dict[str, _Live] = {}
        self.draining = False
        self._warm = False
        self.warmed = False  # reported: the API side places sessions on it once true
        self.avatars: set[str] = set()  # avatars loaded here (placement prefers such a worker)
        self._tokens = itertools.count(1)
        self._tasks: set[asyncio.Task[None]] = set()

    # ---- events of the hosts ------------------------------------------------------------
    def _event(self, msg: Any) -> None:
        if isinstance(msg, SessionEvent):
            live = self.live.get(msg.session_id)
            if live is None:
                return
            if isinstance(msg.event, FrameInfo):
                live.drive.on_frame(msg.event)
            elif isinstance(msg.event, OutputNotice):
                live.drive.output_notice(msg.event.event)
        elif isinstance(msg, HostEnded):
            live = self.live.get(msg.session_id)
            if live is not None and live.failed is None:
                code, reason = wire_code(msg.error), f"stream failed: {msg.error}"
                live.failed = (code, reason)
                live.drive.media_failed(code, reason)
                task = asyncio.get_running_loop().create_task(self._close_drive(live))
                self._tasks.add(task)  # kept until done: the loop holds tasks weakly
                task.add_done_callback(self._tasks.discard)

    async def _close_drive(self, live: _Live) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(live.drive.flush(), 1.0)
        live.owner.is_open = False
        await live.drive.close()

    def _get(self, session_id: str) -> _Live:
        live = self.live.get(session_id)
        if live is None:
            raise SessionNotFound(f"session {session_id} has no media on worker {self.name}")
        return live

    # ---- lifecycle ----------------------------------------------------------------------
    async def open(self, spec: HostSpec, stream_max_interval_ms: int) -> str:
        """Bring a session's media and drive channel up; returns once frame 0 is out."""
        language = await self.worker.open(spec)
        self.avatars.add(spec.asset_key)
        host = self.worker.hosts[spec.session_id]
        owner = _Owner(spec.session_id, spec.voice, stream_max_interval_ms, self.clock.now())

        def touch() -> None:
            owner.last_activity = self.clock.now()

        drive = DriveChannel(
            owner, LocalHost.of(host), self.settings, self.clock, on_activity=touch
        )
        self.live[spec.session_id] = _Live(owner, drive)
        return language

    async def close(self, session_id: str) -> bool:
        """Stop a session's media and drive channel; False if it was not here. Never raises
        for the session's own failures (closing must always finish)."""
        live = self.live.pop(session_id, None)
        if live is not None:
            live.owner.is_open = False
            with contextlib.suppress(Exception):
                await live.drive.close()
        known = live is not None or session_id in self.worker.hosts
        await self.worker.close(session_id)
        return known

    async def close_all(self) -> None:
        for sid in list(self.live):
            await self.close(sid)

    async def warm(self) -> bool:
        """Open and close a throwaway session of the default avatar once, so the first real
        session finds the avatar, its shared idle loop and the encoder's code loaded (a cold
        first session took ~0.6 s to come up, later ones ~0.04 s). False if already warm.
        The API side places sessions on a worker only once its report says `Warm`."""
        if self._warm:
            return False
        self._warm = True
        sid = f"warm-up-{self.name}"
        try:
            await self.worker.open(HostSpec(sid, self.settings.avatar))
            self.avatars.add(self.settings.avatar)
        except Exception:
            log.warning("warming up %s failed", self.name, exc_info=True)
        finally:
            await self.worker.close(sid)
            self.warmed = True
        return True

    async def drain(self, on: bool = True) -> bool:
        """A draining worker takes no new session; its sessions stream until they close."""
        self.draining = on
        return on

    # ---- the command channel ------------------------------------------------------------
    async def command(self, session_id: str, payload: dict[str, Any]) -> dict[str, Any]:
        """The HTTP command: the drive channel's dispatch (raises the coded error)."""
        return await self._get(session_id).drive.handle_command(payload)

    async def touch(self, session_id: str) -> None:
        live = self._get(session_id)
        live.owner.last_activity = self.clock.now()

    async def socket_open(self, session_id: str) -> int:
        """A command channel socket opened on some API process: it becomes the session's one
        socket (the older one is told it was replaced) and gets the replayed statuses."""
        live = self._get(session_id)
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(SOCKET_QUEUE)
        sock = _Socket(next(self._tokens), queue, asyncio.Event())

        async def send(msg: dict[str, Any]) -> None:
            # Never waits: a socket whose API process stopped polling must not hold up the
            # drive channel's writer (a newer socket would get nothing). Its oldest message
            # goes first; the statuses are replayed to whichever socket attaches next.
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(msg)

        sock.send = send
        sock.polled_at = self.clock.now()
        sock.ended = live.drive.attach(send)
        live.sockets[sock.token] = sock
        return sock.token

    async def socket_send(self, session_id: str, token: int, raw: str) -> None:
        """One frame from the socket (never raises for bad input: a Type 9 goes back)."""
        live = self._get(session_id)
        if token not in live.sockets:
            return
        await live.drive.handle_raw(raw)

    async def socket_poll(self, session_id: str, token: int, timeout_s: float) -> dict[str, Any]:
        """What the socket should send next: waits up to `timeout_s` for a message.

        {"Messages": [...], "State": "open" | "replaced" | "closed", "Busy": bool}; once
        State is not "open" the socket is done (its last messages are in this answer).
        """
        live = self.live.get(session_id)
        if live is None:
            return {"Messages": [], "State": "closed", "Busy": False}
        sock = live.sockets.get(token)
        if sock is None:
            return {"Messages": [], "State": "replaced", "Busy": live.drive.busy}
        sock.polled_at = self.clock.now()
        messages: list[dict[str, Any]] = []
        if sock.queue.empty() and not sock.ended.is_set():
            getter = asyncio.ensure_future(sock.queue.get())
            ended = asyncio.ensure_future(sock.ended.wait())
            done, _ = await asyncio.wait(
                {getter, ended},
                timeout=min(MAX_POLL_S, max(0.0, timeout_s)),
                return_when=asyncio.FIRST_COMPLETED,
            )
            ended.cancel()
            if getter in done:
                messages.append(getter.result())
            else:
                getter.cancel()
        while not sock.queue.empty():
            messages.append(sock.queue.get_nowait())
        state = "open"
        if sock.ended.is_set() and sock.queue.empty():
            state = "closed" if live.drive.closed or not live.owner.is_open else "replaced"
            live.sockets.pop(token, None)
        return {"Messages": messages, "State": state, "Busy": live.drive.busy}

    async def socket_close(self, session_id: str, token: int) -> None:
        live = self.live.get(session_id)
        sock = live.sockets.pop(token, None) if live is not None else None
        if live is not None and sock is not None:
            live.drive.detach(sock.send)

    # ---- viewers ------------------------------------------------------------------------
    async def whep_answer(self, session_id: str, offer_sdp: str) -> tuple[str, str]:
        live, host = self._get(session_id), self.worker.hosts.get(session_id)
        if host is None or live.failed is not None:
            raise SessionClosed(f"session {session_id} has no live stream")
        return await host.whep_answer(offer_sdp)

    async def whep_close(self, session_id: str, resource_id: str) -> bool:
        host = self.worker.hosts.get(session_id)
        return host is not None and await host.whep_close(resource_id)

    # ---- what the API side reads --------------------------------------------------------
    def _status(self, sid: str, live: _Live, now: float) -> dict[str, Any]:
        host = self.worker.hosts.get(sid)
        status = host.status() if host is not None else {}
        busy = live.drive.busy
        return {
            **status,
            "SpeakStatus": live.drive.speak_status,
            "Busy": busy,
            "IdleS": 0.0 if busy else round(now - live.owner.last_activity, 3),
            "Failed": list(live.failed) if live.failed is not None else None,
        }

    async def session_status(self, session_id: str) -> dict[str, Any] | None:
        """One session's state now (statsession), None if it is not here."""
        live = self.live.get(session_id)
        return self._status(session_id, live, self.clock.now()) if live is not None else None

    async def report(self) -> dict[str, Any]:
        """CPU, memory and every session's state, read by each API process once a second."""
        now = self.clock.now()
        for live in self.live.values():
            for token, sock in list(live.sockets.items()):
                if now - sock.polled_at > STALE_SOCKET_S + MAX_POLL_S:
                    live.sockets.pop(token, None)
                    live.drive.detach(sock.send)
        sessions = {sid: self._status(sid, live, now) for sid, live in self.live.items()}
        return {
            "Name": self.name,
            "Pid": os.getpid(),
            "CpuS": cpu_seconds(),
            "RssBytes": rss_bytes(),
            "Draining": self.draining,
            "Warm": self.warmed,
            "Avatars": sorted(self.avatars),
            "Sessions": sessions,
        }
