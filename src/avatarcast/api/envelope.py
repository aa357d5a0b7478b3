"""The IVH envelope: request bodies in, `{"Header": ..., "Payload": ...}` out (spec section 1).

Two kinds of failure, kept apart on purpose:
- transport-level (the body cannot be read as a JSON object, is over 1 MiB): HTTP 400 / 413
  with a small JSON body `{"error": "..."}` — there is no envelope to answer in;
- API-level (a field is missing, of the wrong type, out of range): HTTP 200 and a coded
  envelope, raised here as `RequestError` naming the field (wire code 100001).
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse

from avatarcast.errors import RequestError
from avatarcast.validate import JsonSyntaxError, check_free_text, check_name, loads

MAX_BODY_BYTES = 1 << 20  # 1 MiB: the largest request (a 4000-byte text) is far below
REQ_ID = re.compile(r"[0-9a-f]{32}")


class TransportError(HTTPException):
    """A body that is not a request at all (HTTP 400/413); not part of the wire-code table."""


async def read_json(request: Request, limit: int = MAX_BODY_BYTES) -> Any:
    """The request body parsed as JSON; TransportError 413 over `limit`, 400 if not JSON.

    JSON whose values are unusable (a lone surrogate, an integer beyond 64 bits) is a
    RequestError (100001): the body is JSON, one of its fields is bad (`validate.loads`).
    """
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise TransportError(413, f"body larger than {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():  # a chunked body has no length to check up front
        size += len(chunk)
        if size > limit:
            raise TransportError(413, f"body larger than {limit} bytes")
        chunks.append(chunk)
    try:
        return loads(b"".join(chunks))
    except JsonSyntaxError as exc:
        raise TransportError(400, f"body is not valid JSON: {exc}") from None


def payload_of(body: Any) -> dict[str, Any]:
    """`Payload` of `{"Header": {}, "Payload": {...}}`; a body without either is the Payload."""
    if not isinstance(body, dict):
        raise RequestError("the body must be a JSON object with a Payload object")
    if "Payload" in body:
        payload = body["Payload"]
    elif "Header" in body:
        raise RequestError("Payload is required")
    else:
        payload = body
    if not isinstance(payload, dict):
        raise RequestError("Payload must be a JSON object")
    return payload


def req_id_of(payload: dict[str, Any]) -> str:
    """The `ReqId`: 32 lowercase hex characters (a UUID without dashes)."""
    value = payload.get("ReqId")
    if value is None:
        raise RequestError("ReqId is required")
    if not isinstance(value, str) or not REQ_ID.fullmatch(value):
        raise RequestError("ReqId must be 32 lowercase hex characters (a UUID without dashes)")
    return value


class Fields:
    """Typed getters over a Payload; each failure is a RequestError naming the field."""

    def __init__(self, payload: dict[str, Any], prefix: str = "") -> None:
        self.payload = payload
        self.prefix = prefix  # "ExtraInfo." for a nested object, so messages name the path

    def _get(self, name: str, required: bool) -> Any:
        value = self.payload.get(name)
        if value is None and required:
            raise RequestError(f"{self.prefix}{name} is required")
        return value

    def _bad(self, name: str, what: str) -> RequestError:
        return RequestError(f"{self.prefix}{name} {what}")

    def text(self, name: str, *, max_len: int = 256) -> str:
        value = self.opt_text(name, max_len=max_len, required=True)
        assert value is not None
        return value

    def opt_text(
        self, name: str, *, max_len: int = 256, required: bool = False, free: bool = False
    ) -> str | None:
        """A string field: an identifier (no control characters) unless `free` (free text:
        tabs and line breaks allowed); never a lone surrogate; at most `max_len` characters."""
        value = self._get(name, required)
        if value is None:
            return None
        if not isinstance(value, str):
            raise self._bad(name, "must be a string")
        if required and not value:
            raise self._bad(name, "must not be empty")
        check = check_free_text if free else check_name
        return check(value, self.prefix + name, max_len)

    def integer(self, name: str) -> int:
        value = self.opt_int(name, required=True)
        assert value is not None
        return value

    def opt_int(self, name: str, *, required: bool = False) -> int | None:
        value = self._get(name, required)
        if value is None:
            return None
        # bool is an int in Python but not in JSON; "3" is a string: both are type errors.
        if isinstance(value, bool) or not isinstance(value, int):
            raise self._bad(name, "must be an integer")
        return value

    def opt_bool(self, name: str) -> bool | None:
        value = self._get(name, False)
        if value is None:
            return None
        if not isinstance(value, bool):
            raise self._bad(name, "must be true or false")
        return value

    def opt_object(self, name: str) -> dict[str, Any] | None:
        value = self._get(name, False)
        if value is None:
            return None
        if not isinstance(value, dict):
            raise self._bad(name, "must be a JSON object")
        return value

    def opt_list(self, name: str) -> list[Any] | None:
        value = self._get(name, False)
        if value is None:
            return None
        if not isinstance(value, list):
            raise self._bad(name, "must be a JSON array")
        return value

    def sub(self, name: str) -> Fields:
        """Getters over a nested object (missing → empty); messages name `Outer.Inner`."""
        return Fields(self.opt_object(name) or {}, f"{self.prefix}{name}.")


def new_request_id() -> str:
    """Header.RequestID: the server's id of one request (logged with failures)."""
    return uuid.uuid4().hex


def respond(
    payload: dict[str, Any] | None,
    *,
    req_id: str,
    request_id: str,
    code: int = 0,
    message: str = "",
) -> JSONResponse:
    """The envelope, HTTP 200 whatever the code (API-level errors are in `Header.Code`)."""
    body = {
        "Header": {"Code": code, "Message": message, "RequestID": request_id},
        "Payload": {**(payload or {}), "ReqId": req_id},
    }
    return JSONResponse(body)


def transport_error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)
