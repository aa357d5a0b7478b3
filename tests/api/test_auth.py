"""Signatures: the spec's known-answer vectors, clock skew, tampering, unknown/revoked keys."""

from __future__ import annotations

from urllib.parse import quote, urlencode

import pytest
from starlette.datastructures import QueryParams

from avatarcast.api.auth import sign, string_to_sign, verify
from avatarcast.errors import AuthError

VECTORS = [
    (
        "e38267c0e86411ebb02aed82acb0ed99",
        "f68f2d10ae9e4604b76fb05cf46bccec",
        "1646636485",
        "appkey=e38267c0e86411ebb02aed82acb0ed99&timestamp=1646636485",
        "BfWuaC9kmaicCggXc693uK+sZQ8qe88O4HVQNTdwZuo=",
    ),
    (
        "example_appkey",
        "example_accesstoken",
        "1717639699",
        "appkey=example_appkey&timestamp=1717639699",
        "aCNWYzZdplxWVo+JsqzZc9+J9XrwWWITfX3eQpsLVno=",
    ),
]


@pytest.mark.parametrize(("appkey", "token", "ts", "to_sign", "signature"), VECTORS)
def test_known_answer_vectors(
    appkey: str, token: str, ts: str, to_sign: str, signature: str
) -> None:
    params = {"timestamp": ts, "appkey": appkey}  # unsorted on purpose
    assert string_to_sign(params) == to_sign
    assert sign(params, token) == signature
    # and verify accepts it, through the URL-encoding a real request goes through
    query = QueryParams(urlencode({**params, "signature": signature}))
    assert query["signature"] == signature
    assert verify(query, {appkey: token}.get, float(ts)) == appkey


def _signed(token: str = "secret", **extra: str) -> dict[str, str]:
    params = {"appkey": "k1", "timestamp": "1000000", **extra}
    params["signature"] = sign(params, token)
    return params


def _tokens(appkey: str) -> str | None:
    return {"k1": "secret"}.get(appkey)


def test_every_parameter_but_signature_is_signed() -> None:
    params = _signed(requestid="abc")
    assert string_to_sign(params) == "appkey=k1&requestid=abc&timestamp=1000000"
    assert verify(params, _tokens, 1_000_000) == "k1"
    with pytest.raises(AuthError, match="signature"):
        verify({**params, "requestid": "abd"}, _tokens, 1_000_000)  # tampered extra parameter


def test_skew_limit_is_300_s_either_way() -> None:
    params = _signed()
    assert verify(params, _tokens, 1_000_300) == "k1"
    assert verify(params, _tokens, 999_700) == "k1"
    for now in (1_000_301, 999_699):
        with pytest.raises(AuthError, match="timestamp"):
            verify(params, _tokens, now)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"signature": "AAAA"}, "signature"),
        ({"timestamp": "1000001"}, "signature"),  # re-dated without re-signing
        ({"timestamp": "1e6"}, "timestamp"),
        ({"timestamp": "now"}, "timestamp"),
        ({"appkey": "k2"}, "unknown or revoked"),
        ({"signature": ""}, "missing"),
    ],
)
def test_tampered_or_malformed(change: dict[str, str], message: str) -> None:
    with pytest.raises(AuthError, match=message):
        verify({**_signed(), **change}, _tokens, 1_000_000)


@pytest.mark.parametrize("missing", ["appkey", "timestamp", "signature"])
def test_missing_parameter_is_named(missing: str) -> None:
    params = _signed()
    del params[missing]
    with pytest.raises(AuthError, match=missing):
        verify(params, _tokens, 1_000_000)


def test_wrong_token_fails_and_secret_is_not_in_the_message() -> None:
    params = _signed(token="other-secret")
    with pytest.raises(AuthError) as info:
        verify(params, _tokens, 1_000_000)
    assert "secret" not in str(info.value)
    assert params["signature"] not in str(info.value)


def test_unencoded_plus_in_signature_is_accepted() -> None:
    # '+' sent raw in a query decodes to ' '; the server maps it back (Base64 has no spaces).
    params = VECTORS[0]
    appkey, token, ts, _, signature = params
    raw = f"appkey={appkey}&timestamp={ts}&signature={signature}"
    query = QueryParams(raw)
    assert " " in query["signature"]
    assert verify(query, {appkey: token}.get, float(ts)) == appkey
    # the properly encoded form, of course, too
    encoded = QueryParams(f"appkey={appkey}&timestamp={ts}&signature={quote(signature, safe='')}")
    assert verify(encoded, {appkey: token}.get, float(ts)) == appkey
