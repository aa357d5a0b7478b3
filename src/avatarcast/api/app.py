"""The HTTP application: the routes of every API module, assembled, and the server's lifespan.

The routes live in modules named by what they serve: `session_routes` (IVH sessions),
`customservice` (avatar builds), `ws` (the command channel), `whep` (WebRTC viewers), `web`
(the demo page) and `openapi` (the description of them all). What they share (the envelope,
auth, ReqId and wire codes of an IVH call) is `api.handler`; this module only puts them together.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from avatarcast.api.context import ApiContext
from avatarcast.api.customservice import customservice_routes
from avatarcast.api.openapi import OPENAPI_PATH, openapi_json
from avatarcast.api.session_routes import session_routes
from avatarcast.api.status import status_routes
from avatarcast.api.web import web_routes
from avatarcast.api.whep import whep_routes
from avatarcast.api.ws import command_routes


async def healthz(request: Request) -> Response:
    return JSONResponse({"ok": True})


def create_app(ctx: ApiContext) -> Starlette:
    routes: list[BaseRoute] = [
        Route("/healthz", healthz, methods=["GET"]),
        *session_routes(ctx),
        Route(OPENAPI_PATH, openapi_json, methods=["GET"]),
        *command_routes(ctx),
        *whep_routes(ctx),
        *web_routes(ctx),
        *customservice_routes(ctx),
        *status_routes(ctx),
    ]

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
