"""The IVH session routes (spec section 2): create, stat, start, close and list sessions.

    POST /v2/ivh/sessionmanager/sessionmanagerservice/{createsessionbyasset, createsession,
         statsession, startsession, closesession, listsessionofuin, listsessionofprojectid,
         listsessionofassetvk}

Each is a small handler `(ctx, appkey, fields) -> Payload` over `sessions.manager`; the
envelope, signature, ReqId and wire codes are `api.handler`'s.
"""

from __future__ import annotations

from starlette.routing import BaseRoute, Route

from avatarcast.api.context import ApiContext
from avatarcast.api.envelope import Fields
from avatarcast.api.handler import Handler, Payload, api_endpoint
from avatarcast.avatars.access import check_asset_access
from avatarcast.sessions.session import NewSession, Session

SESSION_BASE = "/v2/ivh/sessionmanager/sessionmanagerservice/"


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
    request = NewSession(
        user_id=user_id,
        protocol=protocol,
        driver_type=driver_type,
        asset_key=asset_key,
        project_id=project_id,
        extra=extra,
        stream_max_interval_ms=interval,
        voice=voice,
        alpha=alpha,
    )
    session = await ctx.manager.create(appkey, request)
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
    s = await ctx.manager.stat(f.text("SessionId", max_len=64), appkey)
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


def session_routes(ctx: ApiContext) -> list[BaseRoute]:
    return [
        Route(SESSION_BASE + name, api_endpoint(ctx, handler), methods=["POST"])
        for name, handler in SESSION_ROUTES.items()
    ]
