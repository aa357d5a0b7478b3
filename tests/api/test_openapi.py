"""The OpenAPI description: served at /v2/openapi.json, and true to the app's routes.

Every HTTP route of the app (path and method) is described, and nothing else; the command
channel (a WebSocket) and the demo page's static files are named in the description. Every
`$ref` resolves, every operation has responses, the wire codes are those of `avatarcast.codes`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.routing import Mount, Route, WebSocketRoute

from avatarcast.api.app import create_app
from avatarcast.api.openapi import OPENAPI_PATH
from avatarcast.api.server import build_context, run_server_in_thread
from avatarcast.api.ws import CHANNEL_PATH
from avatarcast.codes import wire_codes
from avatarcast.settings import Settings

METHODS = {"get", "post", "put", "patch", "delete", "options"}


@pytest.fixture(scope="module")
def document(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    settings = Settings(data_dir=tmp_path_factory.mktemp("data"), log_level="warning")
    url, stop = run_server_in_thread(settings)
    try:
        resp = httpx.get(url + OPENAPI_PATH, timeout=10)  # no key needed
        assert resp.status_code == 200
        assert resp.headers["content-type"] == "application/json"
        yield resp.json()
    finally:
        stop()


def _app_routes(data_dir: Path) -> tuple[set[tuple[str, str]], list[str], list[str]]:
    ctx = build_context(Settings(data_dir=data_dir))
    try:
        app = create_app(ctx)
    finally:
        ctx.store.close()
    http, sockets, mounts = set(), [], []
    for route in app.routes:
        if isinstance(route, Route):
            for method in route.methods or ():
                if method != "HEAD":  # Starlette adds HEAD to every GET
                    http.add((route.path, method.lower()))
        elif isinstance(route, WebSocketRoute):
            sockets.append(route.path)
        elif isinstance(route, Mount):
            mounts.append(route.path)
        else:  # pragma: no cover - a new kind of route needs a look
            raise AssertionError(f"unexpected route {route!r}")
    return http, sockets, mounts


def test_every_http_route_is_described_and_nothing_else(
    document: dict[str, Any], tmp_path: Path
) -> None:
    http, sockets, mounts = _app_routes(tmp_path)
    described = {
        (path, method)
        for path, item in document["paths"].items()
        for method in item
        if method in METHODS
    }
    assert described == http
    assert sockets == [CHANNEL_PATH] and CHANNEL_PATH in document["info"]["description"]
    assert mounts == ["/web"] and "/web/" in document["info"]["description"]


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def test_the_document_is_well_formed(document: dict[str, Any]) -> None:
    assert document["openapi"] == "3.1.0"
    for ref in _refs(document):
        assert ref.startswith("#/")
        node: Any = document
        for part in ref[2:].split("/"):
            node = node[part]  # KeyError: a dangling $ref
    for path, item in document["paths"].items():
        params = {p["name"] for p in item.get("parameters", [])}
        for method, op in item.items():
            assert op["responses"], (path, method)
            named = params | {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
            for segment in path.split("/"):
                if segment.startswith("{"):
                    assert segment.strip("{}") in named, (path, method)
    header = document["components"]["schemas"]["Header"]
    assert header["properties"]["Code"]["enum"] == wire_codes()
    assert -101000 in wire_codes() and -111004 in wire_codes()


def test_each_ivh_call_requires_reqid_and_is_signed(document: dict[str, Any]) -> None:
    ivh = [p for p in document["paths"] if p.startswith("/v2/ivh/")]
    assert len(ivh) == 15
    for path in ivh:
        op = document["paths"][path]["post"]
        names = {p["name"] for p in op["parameters"]}
        assert {"appkey", "timestamp", "signature"} <= names
        body = op["requestBody"]["content"]
        if "application/json" in body:
            payload = body["application/json"]["schema"]["properties"]["Payload"]
            assert "ReqId" in payload["required"], path
