"""A small client of the Janus WebRTC Server's HTTP API (core + VideoRoom plugin).

Janus 1.x speaks JSON over HTTP: `POST /janus` creates a session, `POST /janus/{session}`
attaches a plugin handle, `POST /janus/{session}/{handle}` sends a plugin message. Synchronous
plugin requests (`exists`, `create`) answer at once; asynchronous ones (`join`, `publish`,
`start`) answer `ack` and deliver their result later as an event with the same `transaction`,
which a long poll (`GET /janus/{session}?maxev=N`) collects, together with the events nobody
asked for (`webrtcup`, `hangup`, `detached`). The long poll does not keep a session alive:
`keepalive` must be sent more often than Janus's `session_timeout` (60 s by default).

`JanusSession` sends those keepalives itself, every third of the `session-timeout` that the
server's `GET /janus/info` states (at most every 20 s).

Errors: `JanusError` for an answer that refuses (core or plugin error, with Janus's code), and
its subclass `JanusUnreachable` when the server cannot be reached or the session is gone: the
caller retries those and reports the others.

Used by the `janus` output (the publisher) and by the tests' subscribers; the browser does the
same in `web/janus.js`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from typing import Any

import httpx

log = logging.getLogger(__name__)

VIDEOROOM = "janus.plugin.videoroom"
REQUEST_TIMEOUT_S = 10.0
LONG_POLL_S = 30.0  # Janus answers an idle long poll after 30 s with a keepalive
EVENT_TIMEOUT_S = 15.0
KEEPALIVE_MAX_S = 20.0

# Janus's codes used here (janus/apierror.h, plugins/janus_videoroom.c).
SESSION_NOT_FOUND = 458
HANDLE_NOT_FOUND = 459
ROOM_EXISTS = 427
NO_SUCH_ROOM = 426
ID_EXISTS = 436


class JanusError(Exception):
    """Janus refused a request: `code` is Janus's error code (0 when it gave none)."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"{reason} (Janus error {code})" if code else reason)
        self.code = code
        self.reason = reason


class JanusUnreachable(JanusError):
    """The server is not there (connection refused, reset, timed out) or forgot the session."""


def _transaction() -> str:
    return secrets.token_hex(8)


class JanusSession:
    """One Janus session: requests, plugin messages, and its event long poll.

    Create with `await JanusSession.open(...)`; `close()` destroys it (best effort). `lost` is
    set when the long poll fails (the server went away) or Janus says the session is gone.
    Events that answer no pending transaction go to `events` (bounded: the oldest are dropped).
    """

    def __init__(
        self,
        http: httpx.AsyncClient,
        url: str,
        session_id: int,
        *,
        api_secret: str = "",
        token: str = "",
    ) -> None:
        self.http = http
        self.url = url.rstrip("/")
        self.id = session_id
        self.api_secret = api_secret
        self.token = token
        self.lost = asyncio.Event()
        self.lost_reason = ""
        self.events: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=100)
        self._pending: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._poll: asyncio.Task[None] | None = None

    # ---- opening and closing -----------------------------------------------------------------
    @classmethod
    async def open(
        cls,
        url: str,
        *,
        api_secret: str = "",
        token: str = "",
        http: httpx.AsyncClient | None = None,
    ) -> JanusSession:
        """Create a Janus session at `url` (the API root, e.g. http://127.0.0.1:8088/janus)."""
        own = http is None
        client = http or httpx.AsyncClient(timeout=REQUEST_TIMEOUT_S)
        try:
            timeout_s = await session_timeout_s(client, url.rstrip("/"))
            answer = await _post(client, url.rstrip("/"), {"janus": "create"}, api_secret, token)
        except BaseException:
            if own:
                await client.aclose()
            raise
        session = cls(client, url, int(answer["data"]["id"]), api_secret=api_secret, token=token)
        session._own_http = own
        session.keepalive_s = min(KEEPALIVE_MAX_S, max(0.5, timeout_s / 3))
        session._poll = asyncio.create_task(session._long_poll(), name=f"janus-{session.id}")
        session._keep = asyncio.create_task(session._keep_alive(), name=f"janus-ka-{session.id}")
        return session

    _own_http = False
    _keep: asyncio.Task[None] | None = None
    keepalive_s = KEEPALIVE_MAX_S
    keepalives = 0  # sent and accepted

    async def close(self) -> None:
        """Destroy the session on the server (best effort) and stop polling."""
        for task in (self._poll, self._keep):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        if not self.lost.is_set():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.request({"janus": "destroy"}), 3.0)
        self._fail_pending("the Janus session was closed")
        if self._own_http:
            await self.http.aclose()

    # ---- requests ----------------------------------------------------------------------------
    async def request(self, body: dict[str, Any], handle: int | None = None) -> dict[str, Any]:
        """POST one request to the session (or one of its handles); the answer, or JanusError."""
        path = f"{self.url}/{self.id}" + (f"/{handle}" if handle is not None else "")
        try:
            return await _post(self.http, path, body, self.api_secret, self.token)
        except JanusError as exc:
            if exc.code in (SESSION_NOT_FOUND, HANDLE_NOT_FOUND) or isinstance(
                exc, JanusUnreachable
            ):
                self._set_lost(str(exc))
                raise JanusUnreachable(exc.code, exc.reason) from None
            raise

    async def keepalive(self) -> None:
        await self.request({"janus": "keepalive"})

    async def attach(self, plugin: str = VIDEOROOM) -> int:
        answer = await self.request({"janus": "attach", "plugin": plugin})
        return int(answer["data"]["id"])

    async def detach(self, handle: int) -> None:
        with contextlib.suppress(Exception):
            await self.request({"janus": "detach"}, handle)

    async def message(
        self,
        handle: int,
        body: dict[str, Any],
        jsep: dict[str, Any] | None = None,
        *,
        timeout_s: float = EVENT_TIMEOUT_S,
    ) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """Send a plugin message; (the plugin's data, the JSEP if any) of its answer or event.

        A plugin error (`error_code` in the data) raises JanusError with that code.
        """
        txn = _transaction()
        msg: dict[str, Any] = {"janus": "message", "body": body, "transaction": txn}
        if jsep is not None:
            msg["jsep"] = jsep
        waiter: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[txn] = waiter
        try:
            answer = await self.request(msg, handle)
            if answer.get("janus") == "ack":
                lost = asyncio.create_task(self.lost.wait())
                either: set[asyncio.Future[Any]] = {waiter, lost}
                try:
                    done, _ = await asyncio.wait(
                        either, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED
                    )
                finally:
                    lost.cancel()
                if waiter not in done:
                    if self.lost.is_set():
                        raise JanusUnreachable(0, f"lost the Janus session: {self.lost_reason}")
                    raise JanusError(0, f"no answer from Janus to {body.get('request')!r}")
                answer = waiter.result()
        finally:
            self._pending.pop(txn, None)
            if waiter.done() and not waiter.cancelled():
                waiter.exception()  # retrieved: a failure already raised above, or moot
        data = answer.get("plugindata", {}).get("data", {})
        if "error_code" in data or "error" in data:
            raise JanusError(int(data.get("error_code", 0)), str(data.get("error", "error")))
        return data, answer.get("jsep")

    async def _keep_alive(self) -> None:
        """A keepalive every `keepalive_s` (network timing: wall time is right here)."""
        while not self.lost.is_set():
            await asyncio.sleep(self.keepalive_s)
            try:
                await self.keepalive()
                self.keepalives += 1
            except JanusError as exc:
                self._set_lost(f"keepalive refused: {exc}")
                return

    # ---- events ------------------------------------------------------------------------------
    async def _long_poll(self) -> None:
        query: dict[str, Any] = {"maxev": 10}
        if self.api_secret:
            query["apisecret"] = self.api_secret
        if self.token:
            query["token"] = self.token
        try:
            while True:
                try:
                    r = await self.http.get(
                        f"{self.url}/{self.id}", params=query, timeout=LONG_POLL_S + 15
                    )
                    payload = r.json()
                except (httpx.HTTPError, ValueError) as exc:
                    self._set_lost(f"{type(exc).__name__}: {exc}" if str(exc) else repr(exc))
                    return
                for event in payload if isinstance(payload, list) else [payload]:
                    if not self._dispatch(event):
                        return
        except asyncio.CancelledError:
            raise

    def _dispatch(self, event: dict[str, Any]) -> bool:
        """Route one event; False when it says the session is gone."""
        kind = event.get("janus")
        if kind == "error":  # the poll itself was refused: the session is of no more use
            err = event.get("error", {})
            self._set_lost(f"{err.get('reason', 'error')} (Janus error {err.get('code', 0)})")
            return False
        if kind == "keepalive":
            return True
        txn = event.get("transaction")
        waiter = self._pending.get(txn) if isinstance(txn, str) else None
        if waiter is not None and not waiter.done() and kind != "ack":
            waiter.set_result(event)
            return True
        if self.events.full():
            self.events.get_nowait()
        self.events.put_nowait(event)
        return True

    def _set_lost(self, reason: str) -> None:
        if not self.lost.is_set():
            self.lost_reason = reason
            self.lost.set()
        self._fail_pending(reason)

    def _fail_pending(self, reason: str) -> None:
        for waiter in self._pending.values():
            if not waiter.done():
                waiter.set_exception(JanusUnreachable(0, reason))


async def session_timeout_s(http: httpx.AsyncClient, url: str) -> float:
    """The server's `session-timeout` (GET /janus/info, no secret needed); 60 if unknown."""
    try:
        r = await http.get(f"{url}/info")
        value = r.json().get("session-timeout", 60)
    except (httpx.HTTPError, ValueError, AttributeError) as exc:
        raise JanusUnreachable(0, f"cannot reach Janus at {url}: {exc!r}") from None
    return float(value) if isinstance(value, int | float) and value > 0 else 60.0


async def _post(
    http: httpx.AsyncClient, url: str, body: dict[str, Any], api_secret: str, token: str
) -> dict[str, Any]:
    msg = dict(body)
    msg.setdefault("transaction", _transaction())
    if api_secret:
        msg["apisecret"] = api_secret
    if token:
        msg["token"] = token
    try:
        r = await http.post(url, json=msg)
        answer: dict[str, Any] = r.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise JanusUnreachable(0, f"cannot reach Janus at {url}: {exc!r}") from None
    if answer.get("janus") == "error":
        err = answer.get("error", {})
        raise JanusError(int(err.get("code", 0)), str(err.get("reason", "error")))
    return answer
