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

from starlette.routing import BaseRoute, Route

from avatarcast.api.app import Handler, api_endpoint
from avatarcast.api.context import ApiContext
from avatarcast.api.envelope import (
    MAX_BODY_BYTES,
    Fields,
)
from avatarcast.avatars.jobs import BuildQueue
from avatarcast.errors import RequestError

CUSTOM_BASE = "/v2/ivh/assetmanager/customservice/"
MAX_MATERIAL_BYTES = 10 << 20  # 10 MiB of photo, decoded
MAX_MAKE_BODY_BYTES = MAX_MATERIAL_BYTES * 4 // 3 + (64 << 10)  # Base64 + the other fields

Payload = dict[str, Any]
QueueHandler = Callable[[BuildQueue, str, Fields], Awaitable[Payload]]


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


def customservice_routes(ctx: ApiContext) -> list[BaseRoute]:
    workers = ctx.settings.avatar_build_workers
    queue = BuildQueue(ctx.settings.data_dir, ctx.settings.db_path, workers)
    routes = (
        ("make", make, MAX_MAKE_BODY_BYTES),
        ("getprogress", get_progress, MAX_BODY_BYTES),
        ("customerconfirm", customer_confirm, MAX_BODY_BYTES),
    )

    def bound(handler: QueueHandler) -> Handler:
        async def call(ctx: ApiContext, appkey: str, f: Fields) -> Payload:
            return await handler(queue, appkey, f)

        return call

    return [
        Route(CUSTOM_BASE + name, api_endpoint(ctx, bound(handler), limit), methods=["POST"])
        for name, handler, limit in routes
    ]
