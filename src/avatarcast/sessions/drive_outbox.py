"""The downstream side of the drive channel: one socket at a time, messages in order, replay.

Messages are posted from three places (command handlers, the frame callback, timers); one
writer task sends them, so a slow `send` never reorders them and never blocks the frame loop.
Statuses are also kept per request, so a client that reconnects gets those of its last
`REPLAY_REQUESTS` requests again (spec section 3).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger(__name__)

Sender = Callable[[dict[str, Any]], Awaitable[None]]

REPLAY_REQUESTS = 3  # spec: on reconnect, re-send the statuses of the last 3 drive requests
REPLAY_PER_REQUEST = 64  # a long text stream keeps only its latest statuses for replay
MAX_QUEUED = 1024  # messages waiting for a socket that does not read; statuses are replayed


class Outbox:
    def __init__(self, session_id: str) -> None:
        self._session_id = session_id
        # ReqId → (arrival rank of the request, [(emission number, message)])
        self._history: dict[str, tuple[int, list[tuple[int, dict[str, Any]]]]] = {}
        self._n_emitted = 0
        self._sender: Sender | None = None
        self._replaced: asyncio.Event | None = None
        self._queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._writer: asyncio.Task[None] | None = None
        self._closed = False

    def attach(self, send: Sender) -> asyncio.Event:
        """Make `send` the socket; replay recent statuses to it; the event marks its end."""
        if self._replaced is not None:
            self._replaced.set()
        self._drain()  # meant for the old socket; the statuses among them are replayed below
        self._sender = send
        self._replaced = asyncio.Event()
        if self._closed:
            self._replaced.set()
            return self._replaced
        replay = sorted(
            (item for _, items in self._history.values() for item in items), key=lambda i: i[0]
        )
        for _, msg in replay:
            self.post(msg)
        return self._replaced

    def detach(self, send: Sender) -> None:
        if self._sender is send:
            self._sender = None
            self._drain()

    async def flush(self) -> None:
        await self._queue.join()

    async def close(self) -> None:
        self._closed = True
        if self._replaced is not None:
            self._replaced.set()
        self._sender = None
        self._drain()
        if self._writer is not None:
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer
            self._writer = None

    def status(self, rank: int, req_id: str, msg: dict[str, Any]) -> None:
        """Send a status message and keep it for replay.

        `rank` orders requests by arrival: "the last 3 requests" are the 3 received last,
        whatever order their statuses come in (a queued one may end after newer ones start).
        """
        self._n_emitted += 1
        entry = self._history.get(req_id)
        if entry is None:
            oldest = min(self._history.values(), key=lambda e: e[0], default=None)
            if len(self._history) < REPLAY_REQUESTS or (oldest is not None and rank > oldest[0]):
                entry = self._history[req_id] = (rank, [])
            while len(self._history) > REPLAY_REQUESTS:
                drop = min(self._history, key=lambda k: self._history[k][0])
                del self._history[drop]
        if entry is not None:
            entry[1].append((self._n_emitted, msg))
            del entry[1][:-REPLAY_PER_REQUEST]
        self.post(msg)

    def post(self, msg: dict[str, Any]) -> None:
        """Send a message to the current socket, if any (errors are not replayed)."""
        if self._sender is None or self._closed:
            return
        if self._queue.qsize() >= MAX_QUEUED:
            log.warning("session %s: command socket not reading; message dropped", self._session_id)
            return
        self._queue.put_nowait(msg)
        if self._writer is None or self._writer.done():
            self._writer = asyncio.get_running_loop().create_task(self._write())

    def _drain(self) -> None:
        while not self._queue.empty():
            self._queue.get_nowait()
            self._queue.task_done()

    async def _write(self) -> None:
        while True:
            msg = await self._queue.get()
            try:
                send = self._sender
                if send is not None:
                    await send(msg)
            except Exception as exc:  # the socket went away; its transport detaches it
                log.debug("session %s: send failed: %s", self._session_id, exc)
            finally:
                self._queue.task_done()
