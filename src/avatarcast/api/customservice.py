"""The custom-avatar builder over HTTP: `make` → `getprogress` → `customerconfirm` (spec §4).

    POST /v2/ivh/assetmanager/customservice/make            VirtualmanName, Material or
                                                            MaterialId, Background → TaskId
    POST /v2/ivh/assetmanager/customservice/getprogress     TaskId → Status, StageV2, Progress,
                                                            FailMessage, AssetVirtualmanKey
    POST /v2/ivh/assetmanager/customservice/customerconfirm TaskId → registers the avatar
    POST /v2/ivh/assetmanager/customservice/upload          raw bytes → MaterialId (ours)
    POST /v2/ivh/assetmanager/customservice/list            → Avatars (ours)
    POST /v2/ivh/assetmanager/customservice/delete          AssetVirtualmanKey (ours)

Same envelope, signature, ReqId and wire codes as the session routes (`api.handler`); `make`
reads its body itself with a larger limit (`MAX_MAKE_BODY_BYTES`), since a small photo or
video may come inline as Base64 (`Material`, **ours**, at most `MAX_MATERIAL_BYTES` decoded).
Larger material (a video) is uploaded first: `upload`'s body is the file itself
(`application/octet-stream`; the signed query authenticates it, `ReqId` may be a query
parameter), streamed to disk up to the setting `avatar_upload_max_mb`, and `make` names it by
`MaterialId`. The jobs themselves (stages, scoping, uploads, worker processes) are
`avatars.build_queue` (and its sibling modules).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from avatarcast.api.context import ApiContext
from avatarcast.api.envelope import (
    MAX_BODY_BYTES,
    REQ_ID,
    Fields,
    new_request_id,
    respond,
)
from avatarcast.api.handler import Endpoint, Handler, Payload, api_endpoint, failure
from avatarcast.avatars.build_queue import BuildQueue
from avatarcast.avatars.video import MAX_TRANSCRIPT_CHARS, parse_size
from avatarcast.errors import RequestError

log = logging.getLogger(__name__)

CUSTOM_BASE = "/v2/ivh/assetmanager/customservice/"
MAX_MATERIAL_BYTES = 10 << 20  # 10 MiB of photo, decoded
MAX_MAKE_BODY_BYTES = MAX_MATERIAL_BYTES * 4 // 3 + (64 << 10)  # Base64 + the other fields
WRITE_CHUNK = 1 << 20  # upload bytes gathered before each write to disk
DRAIN_MAX = 64 << 20  # an oversize upload's rest read (and dropped) so the answer arrives

QueueHandler = Callable[[BuildQueue, str, Fields], Awaitable[Payload]]


def decode_material(value: str) -> bytes:
    """Base64 (standard alphabet; a `data:...;base64,` prefix is allowed) → bytes."""
    if value.startswith("data:") and "," in value[:128]:
        value = value.split(",", 1)[1]
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise RequestError("Material must be the photo's or video's bytes in Base64") from None
    if not raw:
        raise RequestError("Material must not be empty")
    if len(raw) > MAX_MATERIAL_BYTES:
        raise RequestError(f"Material is larger than {MAX_MATERIAL_BYTES >> 20} MiB")
    return raw


async def make(queue: BuildQueue, appkey: str, f: Fields) -> Payload:
    name = f.text("VirtualmanName", max_len=64)
    inline = f.opt_text("Material", max_len=MAX_MAKE_BODY_BYTES, free=True)  # Base64 checks it
    material_id = f.opt_text("MaterialId", max_len=64)
    if (inline is None) == (material_id is None):
        raise RequestError(
            "give exactly one of Material (the bytes in Base64) and MaterialId (from upload)"
        )
    background = f.opt_text("Background", max_len=16) or "keep"
    size = parse_size(f.opt_text("Size", max_len=16))  # ours: "WxH", video only
    transcript = f.opt_text("Transcript", max_len=MAX_TRANSCRIPT_CHARS, free=True)  # ours, video
    material: bytes | Path
    if material_id is not None:
        material = queue.take_upload(appkey, material_id)
    else:
        assert inline is not None
        material = decode_material(inline)
    job = await asyncio.to_thread(
        queue.submit, appkey, name, material, background, size, transcript
    )
    return {"TaskId": job.task_id}


async def get_progress(queue: BuildQueue, appkey: str, f: Fields) -> Payload:
    return queue.get(appkey, f.text("TaskId", max_len=64)).to_payload()


async def customer_confirm(queue: BuildQueue, appkey: str, f: Fields) -> Payload:
    job = await asyncio.to_thread(queue.confirm, appkey, f.text("TaskId", max_len=64))
    return job.to_payload()


async def list_avatars(queue: BuildQueue, appkey: str, f: Fields) -> Payload:
    return {"Avatars": await asyncio.to_thread(queue.avatars, appkey)}


# ---- upload (ours) ----------------------------------------------------------------------------
async def _receive(request: Request, part: Path, limit: int) -> int:
    """Stream the body into `part`, at most `limit` bytes; the size, or RequestError."""
    declared = request.headers.get("content-length")
    size, dropped = 0, 0
    too_big = declared is not None and declared.isdigit() and int(declared) > limit
    buf = bytearray()
    with open(part, "wb") as fh:
        async for chunk in request.stream():
            if too_big or size + len(chunk) > limit:
                too_big = True  # read on (and drop) a bounded rest, so the client gets the answer
                dropped += len(chunk)
                if dropped > DRAIN_MAX:
                    break
                continue
            size += len(chunk)
            buf += chunk
            if len(buf) >= WRITE_CHUNK:
                await asyncio.to_thread(fh.write, bytes(buf))
                buf.clear()
        if buf and not too_big:
            await asyncio.to_thread(fh.write, bytes(buf))
    if too_big:
        raise RequestError(
            f"the upload is larger than {limit >> 20} MiB (setting avatar_upload_max_mb)"
        )
    if size == 0:
        raise RequestError("the upload is empty; the body must be the file's bytes")
    return size


def upload_endpoint(ctx: ApiContext, queue: BuildQueue) -> Endpoint:
    """`upload`: authenticate the signed query, stream the raw body to disk → MaterialId."""
    limit = ctx.settings.avatar_upload_max_mb << 20

    async def endpoint(request: Request) -> Response:
        request_id = new_request_id()
        given = request.query_params.get("ReqId", "")
        req_id = given if REQ_ID.fullmatch(given) else ""
        part: Path | None = None
        try:
            appkey = ctx.authenticate(request.query_params)  # before a byte is stored
            if given and not req_id:
                raise RequestError("ReqId must be 32 lowercase hex characters")
            material_id, tmp = await asyncio.to_thread(queue.new_upload, appkey)
            part = tmp  # removed below unless finished
            size = await _receive(request, tmp, limit)
            await asyncio.to_thread(queue.finish_upload, tmp)
            part = None
            log.info("upload %s: %d bytes from key %s", material_id, size, appkey)
            return respond(
                {"MaterialId": material_id, "Size": size}, req_id=req_id, request_id=request_id
            )
        except Exception as exc:  # ClientDisconnect included: nothing may crash the server
            return failure(exc, req_id, request_id, request.url.path)
        finally:
            if part is not None:
                with contextlib.suppress(OSError):
                    part.unlink(missing_ok=True)

    return endpoint


def customservice_routes(ctx: ApiContext) -> list[BaseRoute]:
    workers = ctx.settings.avatar_build_workers
    queue = BuildQueue(ctx.settings.data_dir, ctx.settings.db_path, workers)

    async def delete(queue: BuildQueue, appkey: str, f: Fields) -> Payload:
        """Ours: remove one of the key's avatars, unless one of its sessions streams it."""
        asset_key = f.text("AssetVirtualmanKey", max_len=128)
        if queue.owns(appkey, asset_key):
            using = ctx.manager.list(appkey, asset_key=asset_key)
            if using:
                raise RequestError(
                    f"AssetVirtualmanKey {asset_key!r} is used by {len(using)} open session(s) "
                    f"({', '.join(s.id for s in using[:3])}); close them first"
                )
        await asyncio.to_thread(queue.delete, appkey, asset_key)
        return {"AssetVirtualmanKey": asset_key}

    routes: tuple[tuple[str, QueueHandler, int], ...] = (
        ("make", make, MAX_MAKE_BODY_BYTES),
        ("getprogress", get_progress, MAX_BODY_BYTES),
        ("customerconfirm", customer_confirm, MAX_BODY_BYTES),
        ("list", list_avatars, MAX_BODY_BYTES),
        ("delete", delete, MAX_BODY_BYTES),
    )

    def bound(handler: QueueHandler) -> Handler:
        async def call(ctx: ApiContext, appkey: str, f: Fields) -> Payload:
            return await handler(queue, appkey, f)

        return call

    return [
        *(
            Route(CUSTOM_BASE + name, api_endpoint(ctx, bound(handler), limit), methods=["POST"])
            for name, handler, limit in routes
        ),
        Route(CUSTOM_BASE + "upload", upload_endpoint(ctx, queue), methods=["POST"]),
    ]
