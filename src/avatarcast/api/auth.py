"""Request signatures (spec section 1).

Every URL carries `appkey`, `timestamp` (Unix seconds) and `signature`; the WebSocket URL also
carries `requestid`. The signature is Base64(HMAC-SHA256(accesstoken, "k=v&k=v...")) over every
query parameter except `signature`, sorted by key, with raw (not URL-encoded) values. The body
is not signed. Secrets (the accesstoken, the signature) are never logged or put in messages.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections import deque
from collections.abc import Callable, Mapping

from avatarcast.errors import AuthError, RateLimitError, RequestError
from avatarcast.validate import ascii_int

MAX_SKEW_S = 300.0
REQUIRED = ("appkey", "timestamp", "signature")
MAX_TIMESTAMP_DIGITS = 12  # Unix seconds have 10 until the year 2286
MAX_PARAM_CHARS = 128  # appkeys and accesstokens are 32 hex; a signature is 44 Base64


def string_to_sign(params: Mapping[str, str]) -> str:
    """`k=v&k=v` of every parameter except `signature`, sorted by key, raw values."""
    return "&".join(f"{k}={params[k]}" for k in sorted(params) if k != "signature")


def sign(params: Mapping[str, str], accesstoken: str) -> str:
    """The Base64 signature (before URL-encoding) of `params` under `accesstoken`."""
    digest = hmac.new(
        accesstoken.encode("utf-8"), string_to_sign(params).encode("utf-8"), hashlib.sha256
    ).digest()
    return base64.b64encode(digest).decode("ascii")


def verify(
    params: Mapping[str, str],
    token_of: Callable[[str], str | None],
    now_unix: float,
    max_skew_s: float = MAX_SKEW_S,
) -> str:
    """Check a request's query parameters; return its appkey or raise AuthError (100005).

    `params` are URL-decoded (as Starlette gives them). `token_of(appkey)` returns the key's
    accesstoken, or None when the key is unknown or revoked.
    """
    missing = [name for name in REQUIRED if not params.get(name)]
    if missing:
        raise AuthError(f"missing query parameter(s): {', '.join(missing)}")
    too_long = [n for n in ("appkey", "signature") if len(params[n]) > MAX_PARAM_CHARS]
    if too_long:
        raise AuthError(f"{' and '.join(too_long)} longer than {MAX_PARAM_CHARS} characters")
    appkey = params["appkey"]
    try:  # ASCII digits only: int() would also take 400 digits, full-width digits, "_"
        timestamp = ascii_int(params["timestamp"], "timestamp", MAX_TIMESTAMP_DIGITS)
    except RequestError:
        raise AuthError(
            f"timestamp must be integer Unix seconds (1 to {MAX_TIMESTAMP_DIGITS} ASCII digits)"
        ) from None
    if abs(now_unix - timestamp) > max_skew_s:
        raise AuthError(
            f"timestamp is {now_unix - timestamp:+.0f} s away from server time "
            f"(at most {max_skew_s:.0f} s allowed)"
        )
    token = token_of(appkey)
    if token is None:
        raise AuthError("unknown or revoked appkey")
    given = params["signature"]
    expected = sign(params, token)
    # A client that forgot to URL-encode the signature sends '+' raw, which the query decoder
    # turns into a space; Base64 never contains spaces, so mapping them back is unambiguous.
    candidates = (given, given.replace(" ", "+"))
    if not any(
        hmac.compare_digest(c.encode("utf-8"), expected.encode("ascii")) for c in candidates
    ):
        raise AuthError("signature does not match")
    return appkey


# ---- replay protection (ours, off by default) -------------------------------------------------
NONCE = re.compile(r"[0-9A-Za-z_-]{16,64}")
MAX_NONCES = 1_000_000  # ~100 MB at worst; 3,300 signed requests a second for 300 s


class NonceBook:
    """Each signed URL may be used once: its `nonce` is remembered until its timestamp expires.

    The cloud's signature covers only the query (appkey, timestamp, …), so a URL seen once
    (in a log, a proxy, a browser history) is a credential for any endpoint of its key for
    300 s. With the setting `replay_nonce` a request must also carry `nonce` (16–64 of
    `[0-9A-Za-z_-]`, signed like every parameter); a nonce seen before within the window is
    refused (100005). After the window the timestamp check refuses the URL by itself, so
    nothing older needs to be remembered.
    """

    def __init__(self, max_skew_s: float = MAX_SKEW_S, max_entries: int = MAX_NONCES) -> None:
        self.max_skew_s = max_skew_s
        self.max_entries = max_entries
        self._expires: dict[tuple[str, str], float] = {}  # (appkey, nonce) → unix time
        self._order: deque[tuple[float, tuple[str, str]]] = deque()

    def use(self, appkey: str, params: Mapping[str, str], now_unix: float) -> None:
        """Accept `params["nonce"]` once (after `verify` succeeded); AuthError otherwise."""
        nonce = params.get("nonce", "")
        if not nonce:
            raise AuthError("missing query parameter: nonce (replay protection is on)")
        if not NONCE.fullmatch(nonce):
            raise AuthError("nonce must be 16 to 64 characters of 0-9 A-Z a-z _ -")
        self._forget_expired(now_unix)
        key = (appkey, nonce)
        if key in self._expires:
            raise AuthError("nonce already used: every signed URL may be used once")
        if len(self._expires) >= self.max_entries:
            raise RateLimitError("too many signed requests within the signature window")
        expires = int(params["timestamp"]) + self.max_skew_s
        self._expires[key] = expires
        self._order.append((expires, key))

    def _forget_expired(self, now_unix: float) -> None:
        # Expiry times arrive roughly in order (timestamps within ±300 s of now); an entry
        # that expires later than the ones after it is dropped a little late, never early.
        while self._order and self._order[0][0] < now_unix:
            _, key = self._order.popleft()
            if self._expires.get(key, now_unix + 1) < now_unix:
                del self._expires[key]
