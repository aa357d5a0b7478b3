"""What every IVH route shares: a handler's shape, and the endpoint that wraps it.

A route is a small function `(ctx, appkey, fields) -> Payload`; `api_endpoint` wraps it with
everything the routes share, in one place: read the body, authenticate, check `ReqId`, build
the envelope, and turn any exception into its wire code (`avatarcast.codes`). The route
modules (`session_routes`, `customservice`, `ws`) import this; `app` assembles their routes.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

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
from avatarcast.codes import INTERNAL, public_reason
from avatarcast.errors import AvatarcastError

log = logging.getLogger(__name__)

Payload = dict[str, Any]
Handler = Callable[[ApiContext, str, Fields], Awaitable[Payload]]
Endpoint = Callable[[Request], Awaitable[Response]]


def echo_req_id(body: Any) -> str:
    """The caller's ReqId if it is valid, so even an auth failure can be matched to its call."""
    try:
        value = payload_of(body).get("ReqId")
    except AvatarcastError:
        return ""
    return value if isinstance(value, str) and REQ_ID.fullmatch(value) else ""


def failure(exc: BaseException, req_id: str, request_id: str, path: str) -> Response:
    """The coded envelope for `exc`: our errors say why, a bug is logged and only reported."""
    code, message = public_reason(
        exc,
        log,
        failed=f"{path} failed (RequestID {request_id})",
        internal=f"internal error (RequestID {request_id})",
    )
    if code != INTERNAL:
        log.info("%s -> %d %s (RequestID %s)", path, code, message, request_id)
    return respond(None, req_id=req_id, request_id=request_id, code=code, message=message)


def api_endpoint(ctx: ApiContext, handler: Handler, body_limit: int = MAX_BODY_BYTES) -> Endpoint:
    """A Starlette endpoint for an IVH handler: envelope, auth, ReqId and error codes."""

    async def endpoint(request: Request) -> Response:
        request_id = new_request_id()
        req_id = ""
        try:
            body = await read_json(request, limit=body_limit)
            req_id = echo_req_id(body)
            appkey = ctx.authenticate(request.query_params)
            payload = payload_of(body)
            req_id = req_id_of(payload)
            out = await handler(ctx, appkey, Fields(payload))
            return respond(out, req_id=req_id, request_id=request_id)
        except TransportError as exc:
            return transport_error(exc.status_code, exc.detail)
        except Exception as exc:  # nothing a request does may crash the server
            return failure(exc, req_id, request_id, request.url.path)

    return endpoint
