"""The API side's proxies of a session whose media and drive channel run on a cluster node.

`RemoteDrive` is the session's `CommandChannel` in any API process: a socket attached here is
opened on the worker (`socket_open`, which makes it the session's one socket), its frames go
there (`socket_send`) and a pump long-polls what the socket must send (`socket_poll`). If the
worker dies under it, the socket gets the Type 10 "session failed" notice and is closed.
`ClusterHost` is its `HostHandle` for what the API side still does itself: status, WHEP
offers, stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from avatarcast.cluster.pool import ClusterPool
from avatarcast.codes import wire_code
from avatarcast.errors import AvatarcastError, BackendError, MediaWorkerError
from avatarcast.media import FrameMeta, Pcm
from avatarcast.sessions.drive_messages import OUTPUT_NOTICE
from avatarcast.sessions.drive_outbox import Sender

log = logging.getLogger(__name__)

POLL_S = 10.0  # one long poll waits this long for a message at most

StatusOf = Callable[[], dict[str, Any] | None]


class RemoteDrive:
    """A session's command channel, on the worker that holds the session."""

    def __init__(self, pool: ClusterPool, worker: str, session_id: str, status: StatusOf):
        self._pool = pool
        self._worker = worker
        self._sid = session_id
        self._status = status
        self._busy = False
        self._closed = False
        self._pumps: dict[Sender, tuple[asyncio.Task[None], asyncio.Future[int]]] = {}

    @property
    def speak_status(self) -> str:
        return str((self._status() or {}).get("SpeakStatus", "Idle"))

    @property
    def busy(self) -> bool:
        return self._busy or bool((self._status() or {}).get("Busy", False))

    @property
    def closed(self) -> bool:
        return self._closed

    def attach(self, send: Sender) -> asyncio.Event:
        ended = asyncio.Event()
        token: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        pump = asyncio.create_task(self._pump(send, ended, token), name=f"drive-{self._sid}")
        self._pumps[send] = (pump, token)
        return ended

    async def _pump(self, send: Sender, ended: asyncio.Event, token: asyncio.Future[int]) -> None:
        try:
            try:
                opened = await self._pool.call(self._worker, "socket_open", self._sid)
            except BaseException as exc:
                token.set_exception(exc)
                raise
            token.set_result(int(opened))
            while True:
                reply = await self._pool.call(
                    self._worker,
                    "socket_poll",
                    self._sid,
                    token.result(),
                    POLL_S,
                    timeout=POLL_S + 10,
                )
                self._busy = bool(reply["Busy"])
                for msg in reply["Messages"]:
                    await send(msg)
                if reply["State"] != "open":
                    self._closed = reply["State"] == "closed"
                    return
        except asyncio.CancelledError:
            raise
        except MediaWorkerError as exc:
            self._closed = True
            with contextlib.suppress(Exception):
                await send(
                    {
                        "Type": OUTPUT_NOTICE,
                        "SessionId": self._sid,
                        "Output": "session",
                        "State": "failed",
                        "ErrorCode": wire_code(exc),
                        "Message": f"stream failed: {exc}",
                    }
                )
        except AvatarcastError:  # the session is no longer on its worker: closed
            self._closed = True
        except Exception:
            log.exception("session %s: command channel relay failed", self._sid)
            self._closed = True
        finally:
            ended.set()

    def detach(self, send: Sender) -> None:
        entry = self._pumps.pop(send, None)
        if entry is None:
            return
        pump, token = entry
        pump.cancel()
        if token.done() and not token.cancelled() and token.exception() is None:
            asyncio.get_running_loop().create_task(self._socket_close(token.result()))

    async def _socket_close(self, token: int) -> None:
        with contextlib.suppress(Exception):
            await self._pool.call(self._worker, "socket_close", self._sid, token, timeout=5.0)

    async def handle_raw(self, text: str) -> None:
        if not self._pumps:
            raise BackendError("no socket is attached to this command channel")
        _, token = next(reversed(self._pumps.values()))
        try:
            opened = await token
            await self._pool.call(self._worker, "socket_send", self._sid, opened, text)
        except AvatarcastError as exc:  # its pump sees the same and ends the socket
            log.info("session %s: a frame was not delivered: %s", self._sid, exc)

    async def handle_command(self, payload: dict[str, Any]) -> dict[str, Any]:
        reply: dict[str, Any] = await self._pool.call(self._worker, "command", self._sid, payload)
        return reply

    # Frames and notices stay on the node (the drive channel there gets them).
    def on_frame(self, frame: FrameMeta) -> None:
        return None

    def output_notice(self, event: dict[str, Any]) -> None:
        return None

    def media_failed(self, code: int, reason: str) -> None:
        return None

    async def flush(self) -> None:
        return None

    async def close(self) -> None:
        self._closed = True
        for send in list(self._pumps):
            self.detach(send)


class ClusterHost:
    """A session's media on a cluster worker, as the API side reaches it (`HostHandle`)."""

    def __init__(self, pool: ClusterPool, worker: str, session_id: str, status: StatusOf):
        self._pool = pool
        self.worker = worker
        self._sid = session_id
        self._status = status

    @property
    def language(self) -> str:
        return "en"

    async def push_audio(
        self, pcm: Pcm, utterance_id: str, text: str | None, sei: str | None
    ) -> None:
        raise BackendError("on a cluster, speech reaches the session through its command channel")

    async def end_audio(self) -> None:
        raise BackendError("on a cluster, speech reaches the session through its command channel")

    async def say_text(
        self, text: str, voice: str | None, utterance_id: str, sei: str | None
    ) -> None:
        raise BackendError("on a cluster, speech reaches the session through its command channel")

    async def interrupt(self) -> int:
        raise BackendError("on a cluster, speech reaches the session through its command channel")

    def status(self) -> dict[str, Any]:
        base = {"Outputs": [], "FramesSent": 0, "LateFrames": 0, "Viewers": 0}
        return {**base, **(self._status() or {}), "Worker": self.worker}

    async def whep_answer(self, offer_sdp: str) -> tuple[str, str]:
        answer, resource = await self._pool.call(self.worker, "whep_answer", self._sid, offer_sdp)
        return str(answer), str(resource)

    async def whep_close(self, resource_id: str) -> bool:
        return bool(await self._pool.call(self.worker, "whep_close", self._sid, resource_id))

    @property
    def error(self) -> BaseException | None:
        return None

    async def wait_closed(self) -> None:
        await asyncio.Event().wait()  # the cluster manager watches workers, not handles

    async def stop(self) -> None:
        with contextlib.suppress(Exception):
            await self._pool.call(self.worker, "close", self._sid, timeout=15.0)
