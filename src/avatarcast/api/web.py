"""The demo page: static files, its configuration, avatar thumbnails.

    GET /                                      → web/index.html
    GET /web/{path}                            → the page's static files (package data)
    GET /v2/demo/config                        → protocols, avatars, Janus URL, maybe the dev key
    GET /v2/demo/avatars/{name}/thumbnail.png  → the avatar's picker thumbnail

Thumbnails: an avatar every key may use (built-in, CLI-built) is served to anyone, as the
page lists them before it knows a key. An avatar made through the customservice API belongs
to the key that made it: its thumbnail is served only with that key's signed query
(`?appkey=…&timestamp=…&signature=…`, signed like every API call; the page signs the `<img>`
URL in the browser). Unsigned, badly signed or another key's requests get the same 404 as a
name that does not exist, so nobody learns which avatars other keys have.

Security of `/v2/demo/config`: the development key (`<data_dir>/dev-key.json`, written by
`make run`) is handed out only when all of these hold, so the page "just works" for the person
sitting at the machine and for nobody else:

- the server listens on a loopback address (`--host 127.0.0.1`, the default), and
- the request comes from a loopback client address, and
- the `Host` header names loopback (`127.0.0.1`, `localhost`, `[::1]`): a web page elsewhere
  that re-binds its own DNS name to 127.0.0.1 (DNS rebinding) sends its own name and gets
  nothing, and no CORS header lets another origin read the answer, and
- the request carries no proxy header (`Forwarded`, `X-Forwarded-For`, `X-Real-IP`): behind a
  reverse proxy on the same machine every client would look like loopback.

Everywhere else the page asks for an appkey and accesstoken and signs requests in the browser,
as integrators of the cloud API do. That puts the accesstoken in the browser: fine for a
demo, not for production, where the integrator's backend signs (docs/quickstart.md).
"""

from __future__ import annotations

import ipaddress
import json
import logging
import struct
import zlib
from functools import lru_cache
from importlib.resources import files
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from avatarcast.api.context import ApiContext
from avatarcast.avatars.access import asset_owner
from avatarcast.avatars.registry import available_avatars, load_avatar
from avatarcast.errors import AvatarcastError
from avatarcast.stream import outputs

log = logging.getLogger(__name__)

WEB_DIR = Path(str(files("avatarcast") / "web"))
DEV_KEY_FILE = "dev-key.json"
PROXY_HEADERS = ("forwarded", "x-forwarded-for", "x-forwarded-host", "x-real-ip")
LOOPBACK_NAMES = ("localhost",)
NO_STORE = {"Cache-Control": "no-store"}

_PROTOCOL_LABELS = {
    "webrtc": "WebRTC (in this page)",
    "rtmp": "RTMP",
    "trtc": "LiveKit",
    "janus": "Janus room (in this page, through Janus)",
}


# ---- loopback checks ---------------------------------------------------------------------
def is_loopback_host(host: str) -> bool:
    """True for a loopback IP literal or `localhost` (brackets and port allowed)."""
    name = host.strip().lower()
    if name.startswith("["):  # "[::1]:8080"
        name = name[1 : name.find("]")] if "]" in name else name[1:]
    elif name.count(":") == 1:  # "127.0.0.1:8080", "localhost:8080"
        name = name.split(":", 1)[0]
    if name in LOOPBACK_NAMES or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def dev_key_allowed(request: Request, listen_host: str) -> bool:
    """Whether this request may receive the development key (see the module docstring)."""
    client = request.client.host if request.client else ""
    return (
        is_loopback_host(listen_host)
        and bool(client)
        and is_loopback_host(client)
        and is_loopback_host(request.headers.get("host", ""))
        and not any(h in request.headers for h in PROXY_HEADERS)
    )


def read_dev_key(ctx: ApiContext) -> dict[str, str] | None:
    """appkey + accesstoken from `<data_dir>/dev-key.json`, if present and still a valid key."""
    path = ctx.settings.data_dir / DEV_KEY_FILE
    try:
        data = json.loads(path.read_text("utf-8"))
        appkey, token = str(data["appkey"]), str(data["accesstoken"])
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("ignoring %s: %s", path, exc)
        return None
    # A revoked (or foreign) key would only give the page confusing 100005 errors.
    if ctx.store.accesstoken_of(appkey) != token:
        return None
    return {"appkey": appkey, "accesstoken": token}


# ---- protocols and avatars ---------------------------------------------------------------
# espeak-ng voices the demo page offers besides the installed piper ones.
_ESPEAK_DEMO_VOICES = (
    ("en-us", "English (US), espeak-ng"),
    ("en-gb", "English (UK), espeak-ng"),
    ("en-us+f3", "English (US), female, espeak-ng"),
    ("cmn", "Mandarin, espeak-ng"),
)


def demo_voices(session_voice: str) -> list[dict[str, str]]:
    """[{name, label}] for the page's voice menu: the session's voice first, then the natural
    piper voices that are installed, then a few espeak-ng ones."""
    from avatarcast.speech.piper_tts import KNOWN_VOICES, PiperBackend

    installed = set(PiperBackend().voices())
    voices = [
        {"name": v.aliases[0], "label": f"{v.aliases[0].capitalize()}, natural (piper)"}
        for v in KNOWN_VOICES
        if v.name in installed
    ]
    voices += [{"name": n, "label": label} for n, label in _ESPEAK_DEMO_VOICES]
    first = [v for v in voices if v["name"] == session_voice] or [
        {"name": session_voice, "label": f"{session_voice} (the server's voice)"}
    ]
    return first + [v for v in voices if v["name"] != session_voice]


def protocols(ctx: ApiContext) -> list[dict[str, str]]:
    """The protocols a session may be created with on this server, WebRTC first."""
    return [
        {"name": name, "label": label}
        for name, label in _PROTOCOL_LABELS.items()
        if outputs.configured(name, ctx.settings)
    ]


def png_bytes(rgb: NDArray[np.uint8]) -> bytes:
    """A minimal RGB PNG (8 bit, no filter): thumbnails are small, no image library needed."""
    height, width, _ = rgb.shape
    raw = b"".join(b"\x00" + rgb[row].tobytes() for row in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw, 6))
        + chunk(b"IEND", b"")
    )


def _asset_stamp(name: str, data_dir: Path) -> int:
    """The manifest's mtime (0 for built-ins): a deleted and re-made avatar of the same name
    gets a new thumbnail, not the cached one."""
    from avatarcast.avatars.asset import avatars_dir

    try:
        return (avatars_dir(data_dir) / name / "manifest.json").stat().st_mtime_ns
    except OSError:
        return 0


def thumbnail_png(name: str, data_dir: Path) -> bytes:
    return _thumbnail_png(name, data_dir, _asset_stamp(name, data_dir))


@lru_cache(maxsize=32)
def _thumbnail_png(name: str, data_dir: Path, stamp: int) -> bytes:
    rgb = np.ascontiguousarray(load_avatar(name, data_dir).thumbnail()[:, :, :3], np.uint8)
    return png_bytes(rgb)


# ---- routes ------------------------------------------------------------------------------
def web_routes(ctx: ApiContext) -> list[BaseRoute]:
    async def index(request: Request) -> Response:
        return FileResponse(WEB_DIR / "index.html", headers=NO_STORE)

    def public_avatars() -> list[str]:
        # The page has no key before it knows its credentials: it lists only avatars every key
        # may use (built-in and CLI-built); API-made ones belong to the key that made them.
        return [
            n
            for n in available_avatars(ctx.settings.data_dir)
            if asset_owner(ctx.settings.db_path, n) is None
        ]

    async def config(request: Request) -> Response:
        names = public_avatars()
        body: dict[str, Any] = {
            "protocols": protocols(ctx),
            "avatars": [
                {"name": n, "thumbnail": f"/v2/demo/avatars/{n}/thumbnail.png"} for n in names
            ],
            "default_avatar": ctx.settings.avatar if ctx.settings.avatar in names else "",
            "idle_timeout_s": ctx.settings.idle_timeout_s,
            # Voices for "Say it" (sent as Data.Voice per request); the first is the session's.
            "voices": demo_voices(ctx.settings.voice),
            # The builder panel refuses a larger file before uploading it (the server would too).
            "avatar_upload_max_mb": ctx.settings.avatar_upload_max_mb,
            "credentials": None,
            # The colour|matte compositor of the transparent-background work, when shipped.
            "alpha_helper": "/web/alpha.js" if (WEB_DIR / "alpha.js").is_file() else None,
            # Janus's API root, when janus sessions can be made: the page subscribes through
            # it (web/janus.js). Never the API secret.
            "janus_url": ctx.settings.janus_url or None,
        }
        if dev_key_allowed(request, ctx.settings.host):
            body["credentials"] = read_dev_key(ctx)
        return JSONResponse(body, headers=NO_STORE)

    def owner_signed(request: Request, name: str) -> bool:
        """Whether the request's signed query is that of the key that made `name`."""
        owner = asset_owner(ctx.settings.db_path, name)
        if owner is None or "signature" not in request.query_params:
            return False
        try:
            appkey = ctx.authenticate(request.query_params)
        except AvatarcastError:
            return False
        return appkey == owner and name in available_avatars(ctx.settings.data_dir)

    async def thumbnail(request: Request) -> Response:
        name = request.path_params["name"]
        if name in public_avatars():
            cache = "max-age=300"
        elif owner_signed(request, name):
            cache = "private, max-age=300"  # one key's: never kept by a shared cache
        else:  # unknown, or another key's: the same answer, so nothing is learnt
            return Response("no such avatar\n", status_code=404, media_type="text/plain")
        try:
            png = thumbnail_png(name, ctx.settings.data_dir)
        except AvatarcastError as exc:
            return Response(f"{exc.message}\n", status_code=500, media_type="text/plain")
        return Response(png, media_type="image/png", headers={"Cache-Control": cache})

    return [
        Route("/", index, methods=["GET"]),
        Route("/v2/demo/config", config, methods=["GET"]),
        Route("/v2/demo/avatars/{name}/thumbnail.png", thumbnail, methods=["GET"]),
        Mount("/web", StaticFiles(directory=WEB_DIR), name="web"),
    ]
