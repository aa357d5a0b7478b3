"""A small synchronous Python client for the avatarcast (IVH-compatible) HTTP API.

Signing is built in: every call carries `appkey`, `timestamp` and `signature`.

Example::

    from avatarcast.client import Client

    c = Client("http://127.0.0.1:8080", appkey="...", accesstoken="...")
    s = c.create_session_by_asset("default", user_id="alice")
    c.wait_ready(s["SessionId"])              # polls statsession until SessionStatus 1
    c.start_session(s["SessionId"])
    c.command(s["SessionId"], "SEND_TEXT", {"Text": "Hello!"})
    print(s["PlayStreamAddr"])                # WHEP URL for a WebRTC player
    c.close_session(s["SessionId"])

A failed call (Header.Code != 0) raises `ApiError(code, message, request_id)`; transport
failures (HTTP 4xx/5xx, connection refused) raise httpx errors.
"""

from __future__ import annotations

import base64
import time
import uuid
from types import TracebackType
from typing import Any
from urllib.parse import urlencode

import httpx

from avatarcast.api.auth import sign

SESSION_BASE = "/v2/ivh/sessionmanager/sessionmanagerservice/"
COMMAND_PATH = "/v2/ivh/interactdriver/interactdriverservice/command"
CHANNEL_PATH = "/v2/ws/ivh/interactdriver/interactdriverservice/commandchannel"
CUSTOM_BASE = "/v2/ivh/assetmanager/customservice/"

READY, CLOSED, PREPARING, FAILED = 1, 2, 3, 4  # SessionStatus


class ApiError(Exception):
    """The server answered with a non-zero `Header.Code`."""

    def __init__(self, code: int, message: str, request_id: str = "") -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.request_id = request_id


def new_req_id() -> str:
    """A fresh `ReqId` (32 lowercase hex)."""
    return uuid.uuid4().hex


class Client:
    """Calls the HTTP API as one key. Use as a context manager or call `close()`."""

    def __init__(
        self,
        base_url: str,
        appkey: str,
        accesstoken: str,
        timeout_s: float = 10,
        *,
        nonce: bool = False,
    ) -> None:
        """`nonce`: add a fresh signed `nonce` to every URL, for a server with the setting
        `replay_nonce` (ours; the cloud has no such parameter)."""
        self.base_url = base_url.rstrip("/")
        self.appkey = appkey
        self.nonce = nonce
        self._accesstoken = accesstoken
        self._http = httpx.Client(timeout=timeout_s)

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # ---- signing ----------------------------------------------------------------------------
    def signed_query(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        """`appkey`, `timestamp` (now), any `extra` parameters, and their `signature`."""
        params = {"appkey": self.appkey, "timestamp": str(int(time.time())), **(extra or {})}
        if self.nonce:
            params["nonce"] = uuid.uuid4().hex
        params["signature"] = sign(params, self._accesstoken)
        return params

    def signed_url(self, path: str, extra: dict[str, str] | None = None) -> str:
        """`base_url + path` with a signed, URL-encoded query.

        >>> Client("http://h:1", "k", "t").signed_url("/healthz")  # doctest: +ELLIPSIS
        'http://h:1/healthz?appkey=k&timestamp=...&signature=...'
        """
        return f"{self.base_url}{path}?{urlencode(self.signed_query(extra))}"

    def command_channel_url(self, session_id: str) -> str:
        """The signed WebSocket URL of a session's command channel (`requestid` = SessionId).

        >>> Client("https://h", "k", "t").command_channel_url("abc")  # doctest: +ELLIPSIS
        'wss://h/v2/ws/ivh/interactdriver/interactdriverservice/commandchannel?appkey=k&...'
        """
        url = self.signed_url(CHANNEL_PATH, {"requestid": session_id})
        return "ws" + url[4:] if url.startswith("http") else url

    # ---- calls ------------------------------------------------------------------------------
    def call(self, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        """POST `{"Header": {}, "Payload": payload}` (a fresh ReqId unless given); return Payload.

        >>> c.call(SESSION_BASE + "listsessionofuin", {})  # doctest: +SKIP
        {'Sessions': [...], 'ReqId': '...'}
        """
        body = {"Header": {}, "Payload": {"ReqId": new_req_id(), **payload}}
        resp = self._http.post(self.signed_url(path), json=body)
        resp.raise_for_status()
        data = resp.json()
        header = data.get("Header", {})
        if header.get("Code", 0) != 0:
            raise ApiError(
                int(header["Code"]), header.get("Message", ""), header.get("RequestID", "")
            )
        out: dict[str, Any] = data.get("Payload", {})
        return out

    def _session_call(self, name: str, payload: dict[str, Any]) -> dict[str, Any]:
        return self.call(SESSION_BASE + name, payload)

    @staticmethod
    def _create_fields(
        user_id: str,
        protocol: str,
        driver_type: int,
        stream_max_interval_ms: int | None,
        alpha: bool | None,
        voice: str | None,
        extra: dict[str, Any] | None,
    ) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "UserId": user_id,
            "Protocol": protocol,
            "DriverType": driver_type,
        }
        if stream_max_interval_ms is not None:
            fields["StreamMaxInterval"] = stream_max_interval_ms
        if alpha is not None:
            fields["ExtraInfo"] = {"AlphaChannelEnable": alpha}
        if voice is not None:
            fields["SpeechParam"] = {"TimbreKey": voice}
        fields.update(extra or {})
        return fields

    def create_session_by_asset(
        self,
        asset_key: str,
        user_id: str,
        protocol: str = "webrtc",
        driver_type: int = 3,
        *,
        stream_max_interval_ms: int | None = None,
        alpha: bool | None = None,
        voice: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """createsessionbyasset → {SessionId, SessionStatus, PlayStreamAddr}.

        `extra` adds raw Payload fields (e.g. {"ProtocolOption": {...}}).

        >>> c.create_session_by_asset("default", "alice")  # doctest: +SKIP
        {'SessionId': '3f…', 'SessionStatus': 3, 'PlayStreamAddr': 'http://…/v2/whep/3f…?token=…'}
        """
        fields = self._create_fields(
            user_id, protocol, driver_type, stream_max_interval_ms, alpha, voice, extra
        )
        return self._session_call(
            "createsessionbyasset", {"AssetVirtualmanKey": asset_key, **fields}
        )

    def create_session(
        self,
        project_id: str,
        user_id: str,
        protocol: str = "webrtc",
        driver_type: int = 3,
        *,
        stream_max_interval_ms: int | None = None,
        alpha: bool | None = None,
        voice: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """createsession by `VirtualmanProjectId` (see `avatarcast projects create`)."""
        fields = self._create_fields(
            user_id, protocol, driver_type, stream_max_interval_ms, alpha, voice, extra
        )
        return self._session_call("createsession", {"VirtualmanProjectId": project_id, **fields})

    def stat_session(self, session_id: str) -> dict[str, Any]:
        """statsession → {SessionStatus, PlayStreamAddr, SpeakStatus, IsSessionStarted,
        ErrorCode, ErrorMessage}."""
        return self._session_call("statsession", {"SessionId": session_id})

    def start_session(self, session_id: str) -> None:
        """startsession: the session must be ready (status 1)."""
        self._session_call("startsession", {"SessionId": session_id})

    def close_session(self, session_id: str) -> None:
        """closesession: stop streaming and release the key's quota."""
        self._session_call("closesession", {"SessionId": session_id})

    def list_sessions(
        self, *, project_id: str | None = None, asset_key: str | None = None
    ) -> list[dict[str, Any]]:
        """Open sessions of this key (optionally of one project or one avatar).

        >>> [s["SessionId"] for s in c.list_sessions(asset_key="default")]  # doctest: +SKIP
        """
        if project_id is not None:
            out = self._session_call("listsessionofprojectid", {"VirtualmanProjectId": project_id})
        elif asset_key is not None:
            out = self._session_call("listsessionofassetvk", {"AssetVirtualmanKey": asset_key})
        else:
            out = self._session_call("listsessionofuin", {})
        sessions: list[dict[str, Any]] = out.get("Sessions", [])
        return sessions

    def command(
        self, session_id: str, command: str, data: dict[str, Any], req_id: str | None = None
    ) -> dict[str, Any]:
        """A drive command over HTTP (e.g. SEND_TEXT); the session must be started.

        >>> c.command(sid, "SEND_TEXT", {"Text": "Hello", "Interrupt": True})  # doctest: +SKIP
        """
        payload = {"SessionId": session_id, "Command": command, "Data": data}
        if req_id is not None:
            payload["ReqId"] = req_id
        return self.call(COMMAND_PATH, payload)

    def wait_ready(
        self, session_id: str, timeout_s: float = 10.0, poll_s: float = 0.05
    ) -> dict[str, Any]:
        """Poll statsession until status 1 and return it; ApiError if it fails or closes.

        Raises TimeoutError when still preparing after `timeout_s`.
        """
        deadline = time.monotonic() + timeout_s
        while True:
            stat = self.stat_session(session_id)
            status = stat["SessionStatus"]
            if status == READY:
                return stat
            if status in (CLOSED, FAILED):
                raise ApiError(stat.get("ErrorCode") or -101000, stat.get("ErrorMessage", ""))
            if time.monotonic() > deadline:
                raise TimeoutError(f"session {session_id} still preparing after {timeout_s} s")
            time.sleep(poll_s)

    # ---- custom avatars (customservice) -------------------------------------------------------
    def make_avatar(self, photo_bytes: bytes, name: str, background: str = "keep") -> str:
        """make: start building avatar `name` from a photo (at most 10 MiB); return the TaskId.

        >>> task = c.make_avatar(Path("me.jpg").read_bytes(), "alice")  # doctest: +SKIP
        """
        payload = {
            "VirtualmanName": name,
            "Material": base64.b64encode(photo_bytes).decode("ascii"),
            "Background": background,
        }
        task_id: str = self.call(CUSTOM_BASE + "make", payload)["TaskId"]
        return task_id

    def get_progress(self, task_id: str) -> dict[str, Any]:
        """getprogress → {Status, StageV2, Progress, FailMessage, FailReason,
        AssetVirtualmanKey (once built)}."""
        return self.call(CUSTOM_BASE + "getprogress", {"TaskId": task_id})

    def confirm_avatar(self, task_id: str) -> str:
        """customerconfirm: register a built avatar; return its AssetVirtualmanKey."""
        key: str = self.call(CUSTOM_BASE + "customerconfirm", {"TaskId": task_id})[
            "AssetVirtualmanKey"
        ]
        return key

    def wait_built(
        self, task_id: str, timeout_s: float = 120.0, poll_s: float = 0.5
    ) -> dict[str, Any]:
        """Poll getprogress until the build ends; return the progress at StageV2 CONFIRM.

        Raises AvatarBuildError (with `.progress`) when it fails, TimeoutError after `timeout_s`.
        """
        deadline = time.monotonic() + timeout_s
        while True:
            prog = self.get_progress(task_id)
            if prog["Status"] == "SUCCESS":
                return prog
            if prog["Status"] == "FAIL":
                raise AvatarBuildError(prog)
            if time.monotonic() > deadline:
                raise TimeoutError(f"avatar task {task_id} still building after {timeout_s} s")
            time.sleep(poll_s)


class AvatarBuildError(Exception):
    """An avatar build ended in FAIL; `progress` is the last getprogress Payload."""

    def __init__(self, progress: dict[str, Any]) -> None:
        super().__init__(f"{progress.get('FailReason', '')}: {progress.get('FailMessage', '')}")
        self.progress = progress
        self.reason = str(progress.get("FailReason", ""))
        self.message = str(progress.get("FailMessage", ""))
