"""The demo page's routes: static files, thumbnails, and who gets the development key."""

from __future__ import annotations

import base64
import json
import time
import warnings
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from avatarcast.api.app import create_app
from avatarcast.api.auth import sign
from avatarcast.api.server import build_context
from avatarcast.api.web import is_loopback_host, png_bytes
from avatarcast.sessions.store_sqlite import SqliteStore
from avatarcast.settings import Settings

with warnings.catch_warnings():  # "use httpx2": irrelevant to these in-process requests
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

LOOPBACK_CLIENT = ("127.0.0.1", 50000)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    store = SqliteStore(tmp_path / "avatarcast.db")
    appkey, token = store.create_key("dev", 4)
    store.close()
    (tmp_path / "dev-key.json").write_text(json.dumps({"appkey": appkey, "accesstoken": token}))
    return tmp_path


def _client(data_dir: Path, host: str = "127.0.0.1", client: tuple[str, int] = LOOPBACK_CLIENT):
    settings = Settings(data_dir=data_dir, host=host, log_level="warning").validate()
    ctx = build_context(settings)
    # Not entered as a context manager: no lifespan, so no session manager loop is needed.
    return TestClient(create_app(ctx), base_url="http://127.0.0.1:8080", client=client), ctx


@pytest.fixture
def loopback(data_dir: Path) -> Iterator[TestClient]:
    tc, ctx = _client(data_dir)
    yield tc
    ctx.store.close()


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1", True),
        ("127.0.0.1:8080", True),
        ("localhost:8080", True),
        ("[::1]:8080", True),
        ("::1", True),
        ("app.localhost", True),
        ("0.0.0.0", False),
        ("192.168.1.4:8080", False),
        ("evil.example:8080", False),
        ("127.0.0.1.evil.example", False),
        ("", False),
    ],
)
def test_is_loopback_host(host: str, expected: bool) -> None:
    assert is_loopback_host(host) is expected


def test_index_and_static_files_are_served(loopback: TestClient) -> None:
    index = loopback.get("/")
    assert index.status_code == 200
    assert '<script type="module" src="/web/app.js">' in index.text
    scripts = ("app.js", "api.js", "builder.js", "whep.js", "channel.js", "audio.js")
    for name in (*scripts, "style.css"):
        answer = loopback.get(f"/web/{name}")
        assert answer.status_code == 200, name
    assert "javascript" in loopback.get("/web/app.js").headers["content-type"]
    assert loopback.get("/web/nope.js").status_code == 404


def test_config_on_loopback_hands_over_the_dev_key(loopback: TestClient, data_dir: Path) -> None:
    config = loopback.get("/v2/demo/config").json()
    key = json.loads((data_dir / "dev-key.json").read_text())
    assert config["credentials"] == {"appkey": key["appkey"], "accesstoken": key["accesstoken"]}
    assert config["protocols"][0] == {"name": "webrtc", "label": "WebRTC (in this page)"}
    assert config["avatars"] == [
        {"name": "default", "thumbnail": "/v2/demo/avatars/default/thumbnail.png"}
    ]
    assert config["avatar_upload_max_mb"] == 512  # the builder panel checks a file's size
    # The voice menu: the server's voice first (en-us), the natural piper voice when installed.
    names = [v["name"] for v in config["voices"]]
    assert names[0] == "en-us" and "cmn" in names
    from avatarcast.speech.piper_tts import PiperBackend

    assert ("joe" in names) == bool(PiperBackend().voices())
    assert "access-control-allow-origin" not in loopback.get("/v2/demo/config").headers


@pytest.mark.parametrize(
    "headers",
    [
        {"Host": "evil.example:8080"},  # DNS rebinding: a foreign name pointing at 127.0.0.1
        {"X-Forwarded-For": "203.0.113.9"},  # a reverse proxy in front
        {"Forwarded": "for=203.0.113.9"},
    ],
)
def test_config_refuses_the_key_to_proxied_or_foreign_named_requests(
    loopback: TestClient, headers: dict[str, str]
) -> None:
    assert loopback.get("/v2/demo/config", headers=headers).json()["credentials"] is None


def test_config_refuses_the_key_off_loopback(data_dir: Path) -> None:
    remote, ctx = _client(data_dir, client=("192.0.2.7", 40000))
    assert remote.get("/v2/demo/config").json()["credentials"] is None
    ctx.store.close()
    # Listening on every interface: even a loopback client gets nothing.
    public, ctx = _client(data_dir, host="0.0.0.0")
    assert public.get("/v2/demo/config").json()["credentials"] is None
    ctx.store.close()


def test_config_without_a_valid_dev_key(loopback: TestClient, data_dir: Path) -> None:
    (data_dir / "dev-key.json").write_text(json.dumps({"appkey": "x", "accesstoken": "y"}))
    assert loopback.get("/v2/demo/config").json()["credentials"] is None  # not a stored key
    (data_dir / "dev-key.json").write_text("not json")
    assert loopback.get("/v2/demo/config").json()["credentials"] is None
    (data_dir / "dev-key.json").unlink()
    assert loopback.get("/v2/demo/config").json()["credentials"] is None


def test_thumbnail_is_a_png_of_the_avatar(loopback: TestClient) -> None:
    answer = loopback.get("/v2/demo/avatars/default/thumbnail.png")
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "image/png"
    png = answer.content
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    assert (width, height) == (180, 320)
    assert loopback.get("/v2/demo/avatars/nobody/thumbnail.png").status_code == 404


def test_png_bytes_round_trip() -> None:
    rgb = np.arange(4 * 3 * 3, dtype=np.uint8).reshape(4, 3, 3)
    png = png_bytes(rgb)
    # IDAT holds one filter byte (0) per row, then the row's pixels.
    start = png.index(b"IDAT") + 4
    length = int.from_bytes(png[start - 8 : start - 4], "big")
    raw = zlib.decompress(png[start : start + length])
    rows = [raw[i * 10 + 1 : (i + 1) * 10] for i in range(4)]
    assert b"".join(rows) == rgb.tobytes()
    assert all(raw[i * 10] == 0 for i in range(4))


# ---- thumbnails of avatars a key made through the API ------------------------------------
CUSTOM = "/v2/ivh/assetmanager/customservice/"


def _signed(appkey: str, token: str) -> dict[str, str]:
    params = {"appkey": appkey, "timestamp": str(int(time.time()))}
    return {**params, "signature": sign(params, token)}


def _custom(tc: TestClient, key: tuple[str, str], name: str, payload: dict[str, object]):
    body = {"Payload": {"ReqId": "0" * 32, **payload}}
    answer = tc.post(CUSTOM + name, params=_signed(*key), json=body).json()
    assert answer["Header"]["Code"] == 0, answer["Header"]
    return answer["Payload"]


def test_thumbnail_of_an_owned_avatar_needs_its_owners_signature(data_dir: Path) -> None:
    """The unauthenticated thumbnail route serves shared avatars only; a key's own avatar
    needs that key's signed query, and anyone else gets the 404 of a name that does not
    exist (nothing learnt about other keys' avatars)."""
    import cv2
    from skimage import data

    tc, ctx = _client(data_dir)
    owner = ctx.store.create_key("owner", 2)
    other = ctx.store.create_key("other", 2)
    ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR))
    assert ok
    material = base64.b64encode(jpeg.tobytes()).decode()
    task = _custom(tc, owner, "make", {"VirtualmanName": "astro", "Material": material})["TaskId"]
    deadline = time.monotonic() + 60
    while (prog := _custom(tc, owner, "getprogress", {"TaskId": task}))["Status"] == "MAKING":
        assert time.monotonic() < deadline, prog
        time.sleep(0.2)
    assert prog["Status"] == "SUCCESS", prog
    key = _custom(tc, owner, "customerconfirm", {"TaskId": task})["AssetVirtualmanKey"]
    url = f"/v2/demo/avatars/{key}/thumbnail.png"
    try:
        # Not listed for everybody, not served unsigned, nor to another key, nor forged.
        names = [a["name"] for a in tc.get("/v2/demo/config").json()["avatars"]]
        assert key not in names
        assert tc.get(url).status_code == 404
        assert tc.get(url, params=_signed(*other)).status_code == 404
        forged = {**_signed(*owner), "signature": _signed(*other)["signature"]}
        assert tc.get(url, params=forged).status_code == 404
        stale = {"appkey": owner[0], "timestamp": str(int(time.time()) - 3600)}
        stale["signature"] = sign(stale, owner[1])
        assert tc.get(url, params=stale).status_code == 404
        # The owner's signed query: the avatar's PNG, kept by private caches only.
        answer = tc.get(url, params=_signed(*owner))
        assert answer.status_code == 200
        assert answer.headers["content-type"] == "image/png"
        assert answer.headers["cache-control"].startswith("private")
        png = answer.content
        assert png.startswith(b"\x89PNG\r\n\x1a\n")
        assert (int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")) == (180, 320)
        # A shared avatar needs no signature (a signed query does no harm either).
        assert tc.get("/v2/demo/avatars/default/thumbnail.png", params=_signed(*other)).is_success
        # Deleted: gone for its owner too.
        _custom(tc, owner, "delete", {"AssetVirtualmanKey": key})
        assert tc.get(url, params=_signed(*owner)).status_code == 404
    finally:
        ctx.store.close()
