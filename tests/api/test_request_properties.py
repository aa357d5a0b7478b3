"""Hypothesis over the request models: whatever a client sends, the edge answers with a
coded error of the input-error family or with checked values, never anything else.

- `validate.loads` on any text: JSON values whose every string is text and every number in
  range, or JsonSyntaxError / RequestError.
- The HTTP Payload getters (`Fields`), the command channel's parsers (`drive_messages`) and
  the signature check (`auth.verify`) on arbitrary JSON values and query strings: values of
  the declared types, or the one exception of their wire code (100001, 100005).
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from avatarcast.api.auth import sign, verify
from avatarcast.api.envelope import Fields, payload_of, req_id_of
from avatarcast.codes import wire_code
from avatarcast.errors import AuthError, RequestError
from avatarcast.sessions import drive_messages as dm
from avatarcast.validate import JsonSyntaxError, is_text, loads

# Text including lone surrogates and control characters: what "\\uXXXX" escapes can carry.
any_text = st.text(st.characters(codec=None, min_codepoint=0, max_codepoint=0x10FFFF), max_size=12)
numbers = (
    st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from([10**19, -(10**19), 2**63 - 1, 2**63])
)
json_values = st.recursive(
    st.none() | st.booleans() | numbers | any_text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(any_text, inner, max_size=4),
    max_leaves=12,
)
FIELD_NAMES = (
    "ReqId", "UserId", "AssetVirtualmanKey", "VirtualmanProjectId", "Protocol", "DriverType",
    "StreamMaxInterval", "SessionId", "ProtocolOption", "ExtraInfo", "SpeechParam",
    "Backgrounds", "Command", "Data", "Text", "Seq", "IsFinal", "Audio", "Interrupt",
    "VideoSeiInfo", "Voice", "TimbreKey", "CssCustomPushUrl", "AlphaChannelEnable",
)  # fmt: skip
payloads = st.dictionaries(st.sampled_from(FIELD_NAMES) | any_text, json_values, max_size=8)


def _all_text(value: Any) -> bool:
    if isinstance(value, str):
        return is_text(value)
    if isinstance(value, dict):
        return all(is_text(k) and _all_text(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_all_text(v) for v in value)
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return abs(value) < 2**63
    return True


@settings(max_examples=150, deadline=None)
@given(json_values)
def test_loads_gives_checked_values_or_a_coded_error(value: Any) -> None:
    raw = json.dumps(value)  # escapes surrogates as \\udxxx, as a client's JSON would
    try:
        parsed = loads(raw)
    except RequestError as exc:
        assert wire_code(exc) == 100001
        assert not _all_text(value)
        return
    assert _all_text(parsed)
    assert parsed == value or value != value  # equal (NaN never generated)


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=40) | st.binary(max_size=40).map(lambda b: b.decode("latin-1")))
def test_loads_on_any_text_raises_only_its_two_errors(raw: str) -> None:
    with contextlib.suppress(JsonSyntaxError, RequestError):
        loads(raw)


@settings(max_examples=150, deadline=None)
@given(json_values | payloads)
def test_payload_getters_give_typed_values_or_100001(body: Any) -> None:
    try:
        payload = payload_of(body)
        req_id_of(payload)
    except RequestError as exc:
        assert wire_code(exc) == 100001
        return
    f = Fields(payload)
    getters = [
        lambda: f.text("UserId", max_len=128),
        lambda: f.opt_text("Transcript", free=True),
        lambda: f.integer("DriverType"),
        lambda: f.opt_int("StreamMaxInterval"),
        lambda: f.sub("ExtraInfo").opt_bool("AlphaChannelEnable"),
        lambda: f.sub("SpeechParam").opt_text("TimbreKey", max_len=64),
        lambda: f.opt_list("Backgrounds"),
    ]
    for get in getters:
        try:
            value = get()
        except RequestError as exc:
            assert wire_code(exc) == 100001
            assert exc.message  # names the field
            continue
        assert value is None or isinstance(value, (str, int, bool, list))
        if isinstance(value, str):
            assert is_text(value) and not any(c < " " for c in value if c not in "\t\n\r")


@settings(max_examples=80, deadline=None)
@given(payloads, payloads)
def test_drive_parsers_give_typed_values_or_100001(payload: dict[str, Any], data: Any) -> None:
    payload = {**payload, "Data": data} if data else payload
    try:
        req = dm.parse_request(payload, "sid")
    except RequestError:
        req = dm.Request("0" * 32, dm.Command.SEND_TEXT, data if isinstance(data, dict) else {})
    for parse in (
        lambda: dm.parse_audio(req.data),
        lambda: dm.parse_text(req.data, 5000),
        lambda: dm.parse_fragment(req.data, 5000),
    ):
        try:
            parsed = parse()
        except RequestError as exc:
            assert wire_code(exc) == 100001
            continue
        for name in ("text", "sei", "voice"):
            value = getattr(parsed, name, None)
            assert value is None or is_text(value)


query_values = st.text(max_size=30) | st.sampled_from(
    ["1" * 400, "１７１７６３９６９９", "1_7", "-5", "", " 1", "nan", "9" * 20]
)


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.sampled_from(["appkey", "timestamp", "signature", "x"]), query_values))
def test_verify_answers_an_appkey_or_100005(params: dict[str, str]) -> None:
    try:
        appkey = verify(params, lambda k: "token" if k == "key" else None, time.time())
    except AuthError as exc:
        assert wire_code(exc) == 100005
        return
    assert appkey == "key"


@settings(max_examples=100, deadline=None)
@given(st.integers(min_value=-(10**6), max_value=10**6))
def test_verify_accepts_a_good_signature_within_the_window_only(skew_s: int) -> None:
    now = 1_717_639_699
    params = {"appkey": "key", "timestamp": str(now + skew_s)}
    params["signature"] = sign(params, "token")
    try:
        verify(params, lambda k: "token", float(now))
    except AuthError:
        assert abs(skew_s) > 300
    else:
        assert abs(skew_s) <= 300
