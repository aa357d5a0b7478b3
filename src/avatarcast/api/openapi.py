"""An OpenAPI 3.1 description of the HTTP API, served at `GET /v2/openapi.json`.

For integrators who generate clients and for schema-driven fuzzers. It describes every HTTP
route (the command channel is a WebSocket, which OpenAPI cannot describe: it is named in
`info.description` and documented in docs/protocol.md). A test checks it against the app's
routes, so a route added without its description fails.

Every IVH call is a `POST` of `{"Header": {}, "Payload": {...}}`, signed in the query, and
answers HTTP 200 with `{"Header": {"Code", "Message", "RequestID"}, "Payload": {...}}`, `Code`
being one of the wire codes (docs/api.md); transport failures are 400/413 with
`{"error": "..."}`.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from avatarcast import __version__
from avatarcast.api.customservice import CUSTOM_BASE
from avatarcast.api.session_routes import SESSION_BASE
from avatarcast.api.status import STATUS_PATH
from avatarcast.api.ws import CHANNEL_PATH, COMMAND_PATH
from avatarcast.codes import wire_codes

OPENAPI_PATH = "/v2/openapi.json"

Schema = dict[str, Any]


def _s(type_: str, description: str = "", **extra: Any) -> Schema:
    out: Schema = {"type": type_, **extra}
    if description:
        out["description"] = description
    return out


def _obj(props: dict[str, Schema], required: tuple[str, ...] = ()) -> Schema:
    out: Schema = {"type": "object", "properties": props}
    if required:
        out["required"] = list(required)
    return out


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


IDENT = _s("string", "no control characters", maxLength=128)
SESSION_ID = _s("string", "SessionId", maxLength=64)
SESSION_ITEM = _obj(
    {
        "UserId": IDENT,
        "SessionId": SESSION_ID,
        "SessionStatus": _s(
            "integer", "1 ready, 2 closed, 3 preparing, 4 failed", enum=[1, 2, 3, 4]
        ),
        "PlayStreamAddr": _s("string"),
        "DriverType": _s("integer", enum=[1, 3]),
        "IsSessionStarted": _s("boolean"),
    }
)
CREATE_IN = {
    "UserId": IDENT,
    "Protocol": _s("string", enum=["webrtc", "rtmp", "trtc", "janus"]),
    "DriverType": _s("integer", "1 text, 3 audio + text", enum=[1, 3]),
    "StreamMaxInterval": _s("integer", "ms", minimum=2000, maximum=6000),
    "ProtocolOption": _obj(
        {"CssCustomPushUrl": _s("string", "rtmp:// URL on an allowed host", maxLength=2048)}
    ),
    "ExtraInfo": _obj({"AlphaChannelEnable": _s("boolean")}),
    "SpeechParam": _obj({"TimbreKey": _s("string", "a TTS voice, e.g. en-us", maxLength=64)}),
    "Backgrounds": _s("array", items={}),
}
CREATE_OUT = {
    "SessionId": SESSION_ID,
    "SessionStatus": _s("integer", enum=[1, 3]),
    "PlayStreamAddr": _s("string", "a WHEP URL for webrtc"),
}
JOB_OUT = {
    "TaskId": _s("string"),
    "Status": _s("string", enum=["MAKING", "SUCCESS", "FAIL"]),
    "StageV2": _s("string", enum=["SUBMIT", "PROCESS", "TRAIN", "CONFIRM", "END"]),
    "Progress": _s("integer", minimum=0, maximum=100),
    "FailMessage": _s("string"),
    "FailReason": _s("string"),
    "VirtualmanName": _s("string"),
    "AssetVirtualmanKey": _s("string"),
}

# path → (summary, Payload in, required fields, Payload out)
IVH_CALLS: dict[str, tuple[str, dict[str, Schema], tuple[str, ...], dict[str, Schema]]] = {
    SESSION_BASE + "createsessionbyasset": (
        "Create a stream of an avatar",
        {"AssetVirtualmanKey": IDENT, **CREATE_IN},
        ("AssetVirtualmanKey", "UserId", "Protocol", "DriverType"),
        CREATE_OUT,
    ),
    SESSION_BASE + "createsession": (
        "Create a stream of a project",
        {"VirtualmanProjectId": _s("string", maxLength=64), **CREATE_IN},
        ("VirtualmanProjectId", "UserId", "Protocol", "DriverType"),
        CREATE_OUT,
    ),
    SESSION_BASE + "statsession": (
        "Status of a session",
        {"SessionId": SESSION_ID},
        ("SessionId",),
        {
            "SessionStatus": _s("integer", enum=[1, 2, 3, 4]),
            "PlayStreamAddr": _s("string"),
            "SpeakStatus": _s("string"),
            "IsSessionStarted": _s("boolean"),
            "ErrorCode": _s("integer"),
            "ErrorMessage": _s("string"),
            "Outputs": _s(
                "array", "ours: RTMP push, LiveKit, Janus, recorder states", items=_obj({})
            ),
        },
    ),
    SESSION_BASE + "startsession": (
        "Open a ready session for driving",
        {"SessionId": SESSION_ID},
        ("SessionId",),
        {},
    ),
    SESSION_BASE + "closesession": (
        "Stop streaming, release the quota",
        {"SessionId": SESSION_ID},
        ("SessionId",),
        {},
    ),
    SESSION_BASE + "listsessionofuin": (
        "Open sessions of the calling key",
        {},
        (),
        {"Sessions": _s("array", items=SESSION_ITEM)},
    ),
    SESSION_BASE + "listsessionofprojectid": (
        "Open sessions of a project",
        {"VirtualmanProjectId": _s("string", maxLength=64)},
        ("VirtualmanProjectId",),
        {"Sessions": _s("array", items=SESSION_ITEM)},
    ),
    SESSION_BASE + "listsessionofassetvk": (
        "Open sessions of an avatar",
        {"AssetVirtualmanKey": IDENT},
        ("AssetVirtualmanKey",),
        {"Sessions": _s("array", items=SESSION_ITEM)},
    ),
    COMMAND_PATH: (
        "A drive command over HTTP (statuses go to the command channel)",
        {
            "SessionId": SESSION_ID,
            "Command": _s(
                "string",
                enum=["SEND_AUDIO", "SEND_TEXT", "SEND_STREAMTEXT", "SEND_HEARTBEAT"],
            ),
            "Data": _obj({}),
        },
        ("SessionId", "Command"),
        {"SessionId": SESSION_ID},
    ),
    CUSTOM_BASE + "make": (
        "Build an avatar from a photo or video",
        {
            "VirtualmanName": _s("string", pattern="^[a-z0-9][a-z0-9_-]{0,39}$"),
            "Material": _s("string", "ours: Base64 of the file, at most 10 MiB decoded"),
            "MaterialId": _s("string", "ours: from upload"),
            "Background": _s("string", enum=["keep", "green", "white", "remove"]),
            "Size": _s("string", enum=["540x960", "720x1280", "960x540", "1280x720"]),
            "Transcript": _s("string", maxLength=20000),
        },
        ("VirtualmanName",),
        {"TaskId": _s("string")},
    ),
    CUSTOM_BASE + "getprogress": ("Progress of a build", {"TaskId": IDENT}, ("TaskId",), JOB_OUT),
    CUSTOM_BASE + "customerconfirm": (
        "Confirm a built avatar",
        {"TaskId": IDENT},
        ("TaskId",),
        JOB_OUT,
    ),
    CUSTOM_BASE + "list": (
        "Ours: the key's avatars",
        {},
        (),
        {"Avatars": _s("array", items=_obj({}))},
    ),
    CUSTOM_BASE + "delete": (
        "Ours: remove one of the key's avatars",
        {"AssetVirtualmanKey": IDENT},
        ("AssetVirtualmanKey",),
        {"AssetVirtualmanKey": IDENT},
    ),
}

SIGNED_QUERY = [
    {"name": "appkey", "in": "query", "required": True, "schema": _s("string", maxLength=128)},
    {
        "name": "timestamp",
        "in": "query",
        "required": True,
        "schema": _s("string", "Unix seconds, within 300 s", pattern="^[0-9]{1,12}$"),
    },
    {
        "name": "signature",
        "in": "query",
        "required": True,
        "description": "Base64(HMAC-SHA256(accesstoken, sorted k=v&k=v of the other query "
        "parameters)), URL-encoded",
        "schema": _s("string", maxLength=128),
    },
    {
        "name": "nonce",
        "in": "query",
        "required": False,
        "description": "ours: required when the server's replay_nonce setting is on",
        "schema": _s("string", pattern="^[0-9A-Za-z_-]{16,64}$"),
    },
]


def _text(description: str) -> Schema:
    return {"description": description, "content": {"text/plain": {"schema": _s("string")}}}


def _ivh_operation(
    summary: str, props: dict[str, Schema], required: tuple[str, ...], out: dict[str, Schema]
) -> Schema:
    payload_in = _obj({"ReqId": _ref("ReqId"), **props}, ("ReqId", *required))
    payload_out = _obj({"ReqId": _ref("ReqId"), **out})
    return {
        "summary": summary,
        "parameters": SIGNED_QUERY,
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": _obj({"Header": _obj({}), "Payload": payload_in}, ("Payload",))
                }
            },
        },
        "responses": {
            "200": {
                "description": "an envelope: Header.Code 0, or a wire error code",
                "content": {
                    "application/json": {
                        "schema": _obj(
                            {"Header": _ref("Header"), "Payload": payload_out},
                            ("Header", "Payload"),
                        )
                    }
                },
            },
            "400": {"$ref": "#/components/responses/TransportError"},
            "413": {"$ref": "#/components/responses/TransportError"},
        },
    }


def build_openapi() -> Schema:
    paths: dict[str, Schema] = {
        path: {"post": _ivh_operation(*spec)} for path, spec in IVH_CALLS.items()
    }
    upload = _ivh_operation("Ours: upload material (the body is the file)", {}, (), {})
    upload["parameters"] = [
        *SIGNED_QUERY,
        {"name": "ReqId", "in": "query", "required": False, "schema": _ref("ReqId")},
    ]
    upload["requestBody"] = {
        "required": True,
        "content": {"application/octet-stream": {"schema": _s("string", format="binary")}},
    }
    upload["responses"]["200"]["content"]["application/json"]["schema"]["properties"]["Payload"] = (
        _obj({"ReqId": _s("string"), "MaterialId": _s("string"), "Size": _s("integer")})
    )
    paths[CUSTOM_BASE + "upload"] = {"post": upload}
    token = {
        "name": "token",
        "in": "query",
        "required": False,
        "schema": _s("string"),
        "description": "the play token of PlayStreamAddr (or Authorization: Bearer)",
    }
    sid = {"name": "session_id", "in": "path", "required": True, "schema": _s("string")}
    rid = {"name": "resource_id", "in": "path", "required": True, "schema": _s("string")}
    paths["/v2/whep/{session_id}"] = {
        "post": {
            "summary": "WHEP: an SDP offer in, the answer out (RFC 9725)",
            "parameters": [sid, token],
            "requestBody": {
                "required": True,
                "content": {"application/sdp": {"schema": _s("string")}},
            },
            "responses": {
                "201": {
                    "description": "the SDP answer; Location names the viewer resource",
                    "content": {"application/sdp": {"schema": _s("string")}},
                },
                **{
                    str(c): _text(d)
                    for c, d in (
                        (400, "not an offer"),
                        (403, "bad play token"),
                        (404, "no such session"),
                        (409, "not ready"),
                        (413, "too large"),
                        (415, "not application/sdp"),
                        (503, "viewer limit"),
                    )
                },
            },
        },
        "options": {
            "summary": "CORS preflight",
            "parameters": [sid],
            "responses": {"204": {"description": "allowed"}},
        },
    }
    paths["/v2/whep/{session_id}/{resource_id}"] = {
        "delete": {
            "summary": "WHEP: leave",
            "parameters": [sid, rid],
            "responses": {"200": _text("viewer closed"), "404": _text("no such viewer")},
        },
        "options": {
            "summary": "CORS preflight",
            "parameters": [sid, rid],
            "responses": {"204": {"description": "allowed"}},
        },
    }
    paths["/healthz"] = {
        "get": {"summary": "Liveness", "responses": {"200": {"description": '{"ok": true}'}}}
    }
    worker = _obj(
        {
            **{k: _s("integer") for k in ("Id", "Pid", "Sessions")},
            "Load": _s("number", "CPU over the last 5 s, a fraction of one core"),
            "RssMb": _s("number"),
        }
    )
    item = _obj(
        {
            "SessionId": _s("string"),
            **{
                k: _s("integer")
                for k in ("Worker", "Status", "FramesSent", "LateFrames", "Viewers")
            },
            "Speaking": _s("boolean"),
        }
    )
    capacity = _obj({"MaxLoad": _s("number"), "Full": _s("boolean")})
    status_out = _obj(
        {
            "ReqId": _s("string", "empty (a GET has no body)"),
            "Workers": {"type": "array", "items": worker},
            "Sessions": {"type": "array", "items": item, "description": "the caller's own"},
            "Capacity": capacity,
        }
    )
    paths[STATUS_PATH] = {
        "get": {
            "summary": "Ours: workers, their load, and the caller's sessions (docs/api.md)",
            "parameters": SIGNED_QUERY,
            "responses": {
                "200": {
                    "description": "an envelope: Header.Code 0, or a wire error code",
                    "content": {
                        "application/json": {
                            "schema": _obj(
                                {"Header": _ref("Header"), "Payload": status_out},
                                ("Header", "Payload"),
                            )
                        }
                    },
                }
            },
        }
    }
    paths["/"] = {"get": {"summary": "The demo page", "responses": {"200": _text("HTML")}}}
    paths["/v2/demo/config"] = {
        "get": {
            "summary": "The demo page's configuration",
            "responses": {
                "200": {"description": "protocols, avatars", "content": {"application/json": {}}}
            },
        },
    }
    paths["/v2/demo/avatars/{name}/thumbnail.png"] = {
        "get": {
            "summary": "An avatar's thumbnail (a key's own avatar: with its signed query)",
            "parameters": [
                {"name": "name", "in": "path", "required": True, "schema": _s("string")}
            ],
            "responses": {
                "200": {"description": "PNG", "content": {"image/png": {}}},
                "404": _text("no such avatar"),
            },
        }
    }
    paths[OPENAPI_PATH] = {
        "get": {
            "summary": "This description",
            "responses": {
                "200": {"description": "OpenAPI 3.1", "content": {"application/json": {}}}
            },
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "avatarcast (IVH-compatible session API)",
            "version": __version__,
            "description": (
                "Every IVH call answers HTTP 200 with Header.Code 0 or a wire error code "
                f"(docs/api.md#error-codes). The command channel is the WebSocket {CHANNEL_PATH} "
                "(signed query plus requestid = SessionId; docs/protocol.md). Static files of "
                "the demo page are under /web/."
            ),
        },
        "paths": paths,
        "components": {
            "schemas": {
                "ReqId": _s("string", "32 lowercase hex", pattern="^[0-9a-f]{32}$"),
                "Header": _obj(
                    {
                        "Code": _s("integer", "0 or a wire error code", enum=wire_codes()),
                        "Message": _s("string"),
                        "RequestID": _s("string", "the server's id of this call (logged)"),
                    },
                    ("Code", "Message", "RequestID"),
                ),
            },
            "responses": {
                "TransportError": {
                    "description": "not a request at all: 400 not JSON, 413 too large",
                    "content": {"application/json": {"schema": _obj({"error": _s("string")})}},
                }
            },
        },
    }


_DOCUMENT = build_openapi()


async def openapi_json(request: Request) -> Response:
    return JSONResponse(_DOCUMENT, headers={"Cache-Control": "max-age=300"})
