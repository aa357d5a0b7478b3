"""The command channel's transports: the WebSocket (spec section 3) and the HTTP `command`.

Only the translation lives here: authenticate, find the caller's started session, then hand
text frames (or the HTTP Payload) to the session's `DriveChannel`, which owns every rule of
the protocol. One socket per session: a newer connection replaces the older one, which gets a
Type 9 saying so and is closed; the session streams on. A socket silent for
`ws_idle_timeout_s` is dropped (the session's own idle limit is separate and longer).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from avatarcast.api.context import ApiContext
from avatarcast.api.envelope import Fields, new_request_id
from avatarcast.api.handler import api_endpoint
from avatarcast.codes import wire_code
from avatarcast.errors import (
    AvatarcastError,
    BackendError,
    RequestError,
    SessionClosed,
    SessionNotReady,
    SessionNotStarted,
    WrongTime,
)
from avatarcast.sessions.channel import CommandChannel
from avatarcast.sessions.drive_messages import error_message
from avatarcast.sessions.session import Session

log = logging.getLogger(__name__)

CHANNEL_PATH = "/v2/ws/ivh/interactdriver/interactdriverservice/commandchannel"
COMMAND_PATH = "/v2/ivh/interactdriver/interactdriverservice/command"
CLOSE_NORMAL = 1000
CLOSE_POLICY = 1008  # refused: bad signature, unknown or not started session
CLOSE_INTERNAL = 1011  # a bug: the Type 9 carries the RequestID to look up in the log
MAX_SESSION_ID_CHARS = 64  # SessionIds are 32 hex; the bound keeps echoes of bad ones short


def drive_of(session: Session) -> CommandChannel:
    """The session's drive channel, if it may be driven now."""
    if not session.is_open:
        raise SessionClosed(f"session {session.id} is closed")
    if not session.started:
        raise SessionNotStarted(f"session {session.id} was not started (call startsession)")
    if session.drive is None:
        raise SessionNotReady(f"session {session.id} has no drive channel yet")
    return session.drive


async def _command(ctx: ApiContext, appkey: str, f: Fields) -> dict[str, Any]:
    """`POST .../command`: the same commands as the socket; statuses go to the socket."""
    session = ctx.manager.get(f.text("SessionId", max_len=64), appkey)
    return await drive_of(session).handle_command(f.payload)


async def _say_and_close(ws: WebSocket, session_id: str, exc: AvatarcastError, code: int) -> None:
    """One Type 9 naming why, then close; the peer may already be gone."""
    with contextlib.suppress(Exception):
        msg = error_message(session_id, "", 0, wire_code(exc), exc.message)
        await ws.send_text(json.dumps(msg, ensure_ascii=False))
    with contextlib.suppress(Exception):
        await ws.close(
            code=code, reason=exc.message.encode("utf-8")[:120].decode("utf-8", "ignore")
        )


def _channel_endpoint(ctx: ApiContext) -> Any:
    async def endpoint(ws: WebSocket) -> None:
        # Accept first so a refusal can say why in a Type 9 (a pre-accept refusal is a bare 403).
        await ws.accept()
        session_id = ws.query_params.get("requestid", "")
        try:
            appkey = ctx.authenticate(ws.query_params)
            if not session_id:
                raise RequestError("requestid (the SessionId) is required in the URL")
            if len(session_id) > MAX_SESSION_ID_CHARS:
                session_id = ""  # not echoed: it is no SessionId
                raise RequestError(f"requestid is longer than {MAX_SESSION_ID_CHARS} characters")
            channel = drive_of(ctx.manager.get(session_id, appkey))
        except AvatarcastError as exc:
            log.info("command channel refused (%s): %s", wire_code(exc), exc.message)
            await _say_and_close(ws, session_id, exc, CLOSE_POLICY)
            return
        except Exception:  # a bug: say so (never a socket dropped without a word)
            request_id = new_request_id()
            log.exception("command channel failed (RequestID %s)", request_id)
            await _say_and_close(
                ws, "", BackendError(f"internal error (RequestID {request_id})"), CLOSE_INTERNAL
            )
            return
        await _serve(ws, channel, session_id, ctx.settings.ws_idle_timeout_s)

    return endpoint


async def _serve(ws: WebSocket, channel: CommandChannel, session_id: str, idle_s: float) -> None:
    async def send(msg: dict[str, Any]) -> None:
        await ws.send_text(json.dumps(msg, ensure_ascii=False))

    replaced = asyncio.ensure_future(channel.attach(send).wait())
    try:
        receive: asyncio.Future[Any] | None = None
        while True:
            if receive is None or receive.done():
                receive = asyncio.ensure_future(ws.receive())
            done, _ = await asyncio.wait(
                {receive, replaced}, timeout=idle_s, return_when=asyncio.FIRST_COMPLETED
            )
            if receive not in done and not replaced.done() and channel.busy:
                # A client that only listens while its session speaks is not idle; keep the
                # pending receive and wait another period.
                continue
            if receive not in done:
                receive.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await receive
                await _say_and_close(
                    ws, session_id, _why_closed(channel, replaced, idle_s), CLOSE_NORMAL
                )
                return
            message = receive.result()
            if message["type"] == "websocket.disconnect":
                return
            raw = message.get("text")
            if raw is None:  # a binary frame: read it as UTF-8 JSON all the same
                raw = (message.get("bytes") or b"").decode("utf-8", "replace")
            await channel.handle_raw(raw)
    except WebSocketDisconnect:
        return
    except Exception:  # a bug: say so before closing, never drop the socket without a word
        request_id = new_request_id()
        log.exception("command channel of %s failed (RequestID %s)", session_id, request_id)
        error = BackendError(f"internal error (RequestID {request_id}); the session streams on")
        await _say_and_close(ws, session_id, error, CLOSE_INTERNAL)
    finally:
        replaced.cancel()
        if receive is not None:
            receive.cancel()
        channel.detach(send)


def _why_closed(
    channel: CommandChannel, replaced: asyncio.Future[Any], idle_s: float
) -> AvatarcastError:
    if not replaced.done():
        return WrongTime(f"no message for {idle_s:g} s: socket dropped; the session streams on")
    if channel.closed:
        return SessionClosed("the session was closed")
    return WrongTime("replaced by a newer command channel for this session; the session streams on")


def command_routes(ctx: ApiContext) -> list[BaseRoute]:
    return [
        WebSocketRoute(CHANNEL_PATH, _channel_endpoint(ctx)),
        Route(COMMAND_PATH, api_endpoint(ctx, _command), methods=["POST"]),
    ]
