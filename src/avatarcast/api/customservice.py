"""The custom-avatar builder over HTTP: `make` → `getprogress` → `customerconfirm` (spec §4).

    POST /v2/ivh/assetmanager/customservice/make            VirtualmanName, Material, Background
                                                            → TaskId
    POST /v2/ivh/assetmanager/customservice/getprogress     TaskId → Status, StageV2, Progress,
                                                            FailMessage, AssetVirtualmanKey
    POST /v2/ivh/assetmanager/customservice/customerconfirm TaskId → registers the avatar

Same envelope, signature, ReqId and wire codes as the session routes (`api.app`); `make`
reads its body itself with a larger limit (`MAX_MAKE_BODY_BYTES`), since the photo comes inline
as Base64 (`Material`, **ours**, at most `MAX_MATERIAL_BYTES` decoded). The jobs themselves
(stages, scoping, worker processes) are `avatars.jobs`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from avatarcast.api.app import _echo_req_id, _failure
from avatarcast.api.context import ApiContext
from avatarcast.api.envelope import (
    MAX_BODY_BYTES,
    Fields,
    TransportError,
    new_request_id,
    payload_of,
    read_json,
    req_id_of,
    respond,
    transport_error,
)
from avatarcast.avatars.jobs import BuildQueue
from avatarcast.errors import RequestError

CUSTOM_BASE = "/v2/ivh/assetmanager/customservice/"
MAX_MATERIAL_BYTES = 10 << 20  # 10 MiB of photo, decoded
MAX_MAKE_BODY_BYTES = MAX_MATERIAL_BYTES * 4 // 3 + (64 << 10)  # Base64 + the other fields

Payload = dict[str, Any]
Handler = Callable[[BuildQueue, str, Fields], Awaitable[Payload]]


def decode_material(value: str) -> bytes:
    """Base64 (standard alphabet; a `data:...;base64,` prefix is allowed) → bytes."""
    if value.startswith("data:") and "," in value[:128]:
        value = value.split(",", 1)[1]
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise RequestError("Material must be the photo's bytes in Base64") from None
    if not raw:
        raise RequestError("Material must not be empty")
    if len(raw) > MAX_MATERIAL_BYTES:
        raise RequestError(f"Material is larger than {MAX_MATERIAL_BYTES >> 20} MiB")
    return raw


async def make(queue: BuildQueue, appkey: str, f: Fields) -> Payload:
    name = f.text("VirtualmanName", max_len=64)
    material = decode_material(f.text("Material", max_len=MAX_MAKE_BODY_BYTES))
    background = f.opt_text("Background", max_len=16) or "keep"
    job = await asyncio.to_thread(queue.submit, appkey, name, material, background)
    return {"TaskId": job.task_id}


async def get_progress(queue: BuildQueue, appkey: str, f: Fields) -> Payload:
    return queue.get(appkey, f.text("TaskId", max_len=64)).to_payload()


async def customer_confirm(queue: BuildQueue, appkey: str, f: Fields) -> Payload:
    job = await asyncio.to_thread(queue.confirm, appkey, f.text("TaskId", max_len=64))
    return job.to_payload()


def _endpoint(
    ctx: ApiContext, queue: BuildQueue, handler: Handler, limit: int
) -> Callable[[Request], Awaitable[Response]]:
    """`api.app.api_endpoint` with the body limit of this route."""

    async def endpoint(request: Request) -> Response:
        request_id = new_request_id()
        req_id = ""
        try:
            body = await read_json(request, limit=limit)
            req_id = _echo_req_id(body)
            appkey = ctx.authenticate(request.query_params)
            payload = payload_of(body)
            req_id = req_id_of(payload)
            out = await handler(queue, appkey, Fields(payload))
            return respond(out, req_id=req_id, request_id=request_id)
        except TransportError as exc:
            return transport_error(exc.status_code, exc.detail)
        except Exception as exc:  # nothing a request does may crash the server
            return _failure(exc, req_id, request_id, request.url.path)

    return endpoint


def customservice_routes(ctx: ApiContext) -> list[BaseRoute]:
    workers = ctx.settings.avatar_build_workers
    queue = BuildQueue(ctx.settings.data_dir, ctx.settings.db_path, workers)
    routes = (
        ("make", make, MAX_MAKE_BODY_BYTES),
        ("getprogress", get_progress, MAX_BODY_BYTES),
        ("customerconfirm", customer_confirm, MAX_BODY_BYTES),
    )
    return [
        Route(CUSTOM_BASE + name, _endpoint(ctx, queue, handler, limit), methods=["POST"])
        for name, handler, limit in routes
    ]
