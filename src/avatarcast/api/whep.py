"""WHEP playback (RFC 9725): a viewer POSTs an SDP offer and gets the answer; DELETE leaves.

    POST    /v2/whep/{session_id}?token=...   Content-Type: application/sdp, body = offer
            → 201, body = answer (all candidates included: no trickle ICE),
              Location: /v2/whep/{session_id}/{resource_id}
    DELETE  /v2/whep/{session_id}/{resource_id}  → 200
    OPTIONS either path                         → 204 (CORS preflight of browser players)

Auth: viewers cannot sign requests, so the session's `play_token` (in `PlayStreamAddr`) is
the capability: `?token=` or `Authorization: Bearer <token>` (what WHEP players send). The
resource id in `Location` is a random 128-bit id and is itself the capability to DELETE.
Trickle ICE (PATCH) is not offered: Starlette answers 405, which WHEP clients accept.
"""

from __future__ import annotations

import hmac
import logging

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from avatarcast.api.context import ApiContext
from avatarcast.errors import QuotaError, RequestError, SessionClosed
from avatarcast.sessions.playback import WHEP_PATH
from avatarcast.sessions.session import Session, SessionStatus

log = logging.getLogger(__name__)

MAX_OFFER_BYTES = 64 * 1024  # real offers are a few kB
CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Expose-Headers": "Location",
}
PREFLIGHT = {
    **CORS,
    "Access-Control-Allow-Methods": "POST, DELETE, OPTIONS",
    "Access-Control-Allow-Headers": "Content-Type, Authorization",
    "Access-Control-Max-Age": "86400",
}


def find_session(ctx: ApiContext, session_id: str) -> Session | None:
    """Any key's session by id: WHEP has no appkey; the play token is checked by the caller."""
    return ctx.manager.find(session_id)


def _text(status: int, message: str) -> PlainTextResponse:
    return PlainTextResponse(message + "\n", status_code=status, headers=CORS)


def _token_of(request: Request) -> str:
    token = request.query_params.get("token", "")
    auth = request.headers.get("authorization", "")
    if not token and auth.lower().startswith("bearer "):
        token = auth[7:].strip()
    return token


def whep_routes(ctx: ApiContext) -> list[BaseRoute]:
    async def offer(request: Request) -> Response:
        if request.method == "OPTIONS":
            return Response(status_code=204, headers=PREFLIGHT)
        session_id = request.path_params["session_id"]
        session = find_session(ctx, session_id)
        if session is None:
            return _text(404, "no such session")
        token = _token_of(request)
        if not token or not hmac.compare_digest(token, session.play_token):
            return _text(403, "bad or missing play token")
        if session.status is not SessionStatus.READY:
            if session.is_open:
                return _text(409, "session is not ready yet")
            return _text(404, "session is closed")
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype != "application/sdp":
            return _text(415, "Content-Type must be application/sdp")
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > MAX_OFFER_BYTES:
            return _text(413, "offer too large")
        body = await request.body()
        if len(body) > MAX_OFFER_BYTES:
            return _text(413, "offer too large")
        try:
            sdp = body.decode("utf-8")
        except UnicodeDecodeError:
            return _text(400, "offer is not UTF-8 text")
        host = session.host
        if host is None:
            return _text(409, "session has no live stream")
        try:
            answer, resource_id = await host.whep_answer(sdp)
        except RequestError as exc:
            return _text(400, exc.message)
        except SessionClosed as exc:
            return _text(404, exc.message)
        except QuotaError as exc:
            return _text(503, exc.message)
        return Response(
            answer,
            status_code=201,
            media_type="application/sdp",
            headers={**CORS, "Location": f"/v2/whep/{session_id}/{resource_id}"},
        )

    async def resource(request: Request) -> Response:
        if request.method == "OPTIONS":
            return Response(status_code=204, headers=PREFLIGHT)
        session = find_session(ctx, request.path_params["session_id"])
        host = session.host if session is not None else None
        if host is None or not await host.whep_close(request.path_params["resource_id"]):
            return _text(404, "no such viewer")
        return _text(200, "viewer closed")

    return [
        Route(WHEP_PATH, offer, methods=["POST", "OPTIONS"]),
        Route("/v2/whep/{session_id}/{resource_id}", resource, methods=["DELETE", "OPTIONS"]),
    ]
