"""The HTTP application: IVH session routes, plus the command channel and WHEP of other modules.

Each session route is a small function `(ctx, appkey, fields) -> Payload`; `_endpoint` wraps it
with everything the routes share, in one place: read the body, authenticate, check `ReqId`,
build the envelope, and turn any exception into its wire code (`api.codes.wire_code`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from avatarcast.api.codes import INTERNAL, wire_code
from avatarcast.api.context import ApiContext
from avatarcast.api.envelope import (
    MAX_BODY_BYTES,
    REQ_ID,
    Fields,
    TransportError,
    new_request_id,
    payload_of,
    read_json,
    req_id_of,
    respond,
    transport_error,
)
from avatarcast.avatars.jobs import check_asset_access
from avatarcast.errors import AvatarcastError
from avatarcast.sessions.session import Session

log = logging.getLogger(__name__)

SESSION_BASE = "/v2/ivh/sessionmanager/sessionmanagerservice/"

Payload = dict[str, Any]
Handler = Callable[[ApiContext, str, Fields], Awaitable[Payload]]


# ---- the session routes ---------------------------------------------------------------------
async def _create(
    ctx: ApiContext,
    appkey: str,
    f: Fields,
    *,
    asset_key: str | None = None,
    project_id: str | None = None,
) -> Payload:
    user_id = f.text("UserId", max_len=128)
    protocol = f.text("Protocol", max_len=16)
    driver_type = f.integer("DriverType")
    interval = f.opt_int("StreamMaxInterval")
    option = f.sub("ProtocolOption")
    option.opt_text("CssCustomPushUrl", max_len=2048)  # checked now; used by the RTMP output
    extra_info = f.sub("ExtraInfo")
    alpha = extra_info.opt_bool("AlphaChannelEnable") or False
    # Ours: SpeechParam.TimbreKey names the TTS voice (e.g. "en-us", "cmn").
    voice = f.sub("SpeechParam").opt_text("TimbreKey", max_len=64)
    backgrounds = f.opt_list("Backgrounds")
    extra = {
        name: value
        for name, value in (
            ("ProtocolOption", option.payload or None),
            ("ExtraInfo", extra_info.payload or None),
            ("SpeechParam", f.payload.get("SpeechParam")),
            ("Backgrounds", backgrounds),
        )
        if value is not None
    }
    session = await ctx.manager.create(
        appkey,
        user_id=user_id,
        asset_key=asset_key,
        project_id=project_id,
        protocol=protocol,
        driver_type=driver_type,
        extra=extra,
        stream_max_interval_ms=interval,
        voice=voice,
        alpha=alpha,
    )
    return {
        "SessionId": session.id,
        "SessionStatus": int(session.status),
        "PlayStreamAddr": session.play_url,
    }


async def create_session_by_asset(ctx: ApiContext, appkey: str, f: Fields) -> Payload:
    asset_key = f.text("AssetVirtualmanKey", max_len=128)
    check_asset_access(ctx.settings.db_path, appkey, asset_key)  # another key's custom avatar
    return await _create(ctx, appkey, f, asset_key=asset_key)


async def create_session(ctx: ApiContext, appkey: str, f: Fields) -> Payload:
    return await _create(ctx, appkey, f, project_id=f.text("VirtualmanProjectId", max_len=64))


def _session(ctx: ApiContext, appkey: str, f: Fields) -> Session:
    return ctx.manager.get(f.text("SessionId", max_len=64), appkey)


async def stat_session(ctx: ApiContext, appkey: str, f: Fields) -> Payload:
    s = _session(ctx, appkey, f)
    return {
        "SessionStatus": int(s.status),
        "PlayStreamAddr": s.play_url,
        "SpeakStatus": s.speak_status,
        "IsSessionStarted": s.started,
        "ErrorCode": s.error_code,
        "ErrorMessage": s.error_message,
        # Ours: the state of each extra output (RTMP push, LiveKit, recorder).
        "Outputs": s.media_status()["Outputs"],
    }


async def start_session(ctx: ApiContext, appkey: str, f: Fields) -> Payload:
    ctx.manager.start(f.text("SessionId", max_len=64), appkey)
    return {}


async def close_session(ctx: ApiContext, appkey: str, f: Fields) -> Payload:
    await ctx.manager.close(f.text("SessionId", max_len=64), appkey)
    return {}


def _listed(sessions: list[Session]) -> Payload:
    return {"Sessions": [s.summary() for s in sessions]}


async def list_of_uin(ctx: ApiContext, appkey: str, f: Fields) -> Payload:
    return _listed(ctx.manager.list(appkey))


async def list_of_project(ctx: ApiContext, appkey: str, f: Fields) -> Payload:
    project_id = f.text("VirtualmanProjectId", max_len=64)
    return _listed(ctx.manager.list(appkey, project_id=project_id))


async def list_of_asset(ctx: ApiContext, appkey: str, f: Fields) -> Payload:
    asset_key = f.text("AssetVirtualmanKey", max_len=128)
    return _listed(ctx.manager.list(appkey, asset_key=asset_key))


SESSION_ROUTES: dict[str, Handler] = {
    "createsessionbyasset": create_session_by_asset,
    "createsession": create_session,
    "statsession": stat_session,
    "startsession": start_session,
    "closesession": close_session,
    "listsessionofuin": list_of_uin,
    "listsessionofprojectid": list_of_project,
    "listsessionofassetvk": list_of_asset,
}


# ---- what every route shares ------------------------------------------------------------------
def _echo_req_id(body: Any) -> str:
    """The caller's ReqId if it is valid, so even an auth failure can be matched to its call."""
    try:
        value = payload_of(body).get("ReqId")
    except AvatarcastError:
        return ""
    return value if isinstance(value, str) and REQ_ID.fullmatch(value) else ""


def _failure(exc: Exception, req_id: str, request_id: str, path: str) -> Response:
    code = wire_code(exc)
    if isinstance(exc, AvatarcastError) and code != INTERNAL:
        log.info("%s -> %d %s (RequestID %s)", path, code, exc.message, request_id)
        message = exc.message
    else:  # a bug or a failed component: log it whole, tell the caller only that it happened
        log.exception("%s failed (RequestID %s)", path, request_id)
        message = f"internal error (RequestID {request_id})"
    return respond(None, req_id=req_id, request_id=request_id, code=code, message=message)


def api_endpoint(
    ctx: ApiContext, handler: Handler, body_limit: int = MAX_BODY_BYTES
) -> Callable[[Request], Awaitable[Response]]:
    """A Starlette endpoint for an IVH handler: envelope, auth, ReqId and error codes."""

    async def endpoint(request: Request) -> Response:
        request_id = new_request_id()
        req_id = ""
        try:
            body = await read_json(request, limit=body_limit)
            req_id = _echo_req_id(body)
            appkey = ctx.authenticate(request.query_params)
            payload = payload_of(body)
            req_id = req_id_of(payload)
            out = await handler(ctx, appkey, Fields(payload))
            return respond(out, req_id=req_id, request_id=request_id)
        except TransportError as exc:
            return transport_error(exc.status_code, exc.detail)
        except Exception as exc:  # nothing a request does may crash the server
            return _failure(exc, req_id, request_id, request.url.path)

    return endpoint


def _peer_routes(ctx: ApiContext) -> list[BaseRoute]:
    """The command channel and WHEP routes, which live in their own modules.

    Imported here, not at the top: `api.ws` reuses this module's `api_endpoint`.
    """
    from avatarcast.api.customservice import customservice_routes
    from avatarcast.api.openapi import OPENAPI_PATH, openapi_json
    from avatarcast.api.web import web_routes
    from avatarcast.api.whep import whep_routes
    from avatarcast.api.ws import command_routes

    return [
        Route(OPENAPI_PATH, openapi_json, methods=["GET"]),
        *command_routes(ctx),
        *whep_routes(ctx),
        *web_routes(ctx),
        *customservice_routes(ctx),
    ]


async def healthz(request: Request) -> Response:
    return JSONResponse({"ok": True})


def create_app(ctx: ApiContext) -> Starlette:
    routes: list[BaseRoute] = [Route("/healthz", healthz, methods=["GET"])]
    for name, handler in SESSION_ROUTES.items():
        routes.append(Route(SESSION_BASE + name, api_endpoint(ctx, handler), methods=["POST"]))
    routes.extend(_peer_routes(ctx))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # The reaper/usage loop runs while the server does; shutdown closes every session so
        # their usage is booked and their encoders stop.
        loop = asyncio.create_task(ctx.manager.run(), name="session-manager")
        try:
            yield
        finally:
            loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await loop
            await ctx.manager.close_all()

    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.ctx = ctx
    return app
