"""Input validated at the edge: what a careless or hostile client sends gets its wire code.

A real server on loopback with real media. Every case below once answered -101000 (internal
error, with a traceback in the log), dropped the socket without a word, or - for a UserId
that is valid JSON but not text (a lone surrogate) - streamed a session whose usage could
never be booked while the key's list calls failed.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from avatarcast.api.auth import sign
from avatarcast.api.server import run_server_in_thread
from avatarcast.client import CHANNEL_PATH, CUSTOM_BASE, SESSION_BASE, Client, new_req_id
from avatarcast.sessions.store_sqlite import SqliteStore
from avatarcast.settings import Settings

SURROGATE = "\ud800"  # valid in a JSON string ("\ud800"), but not text: no UTF-8 for it


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info or record.levelno >= logging.ERROR:
            self.records.append(record)


class Srv:
    def __init__(self, data_dir: Path) -> None:
        self.settings = Settings(data_dir=data_dir, log_level="warning").validate()
        self.store = SqliteStore(self.settings.db_path)
        self.appkey, self.token = self.store.create_key("edge", 4)
        self.url, self._stop = run_server_in_thread(self.settings)
        self.client = Client(self.url, self.appkey, self.token)
        # Tracebacks and errors of the server (ours, and uvicorn's "Exception in ASGI
        # application", whose logger does not propagate to the root); after uvicorn set its
        # logging up, which would drop a handler added before.
        self.log = _Collect()
        for name in ("", "uvicorn"):
            logging.getLogger(name).addHandler(self.log)

    def post(self, path: str, body: bytes | str, query: dict[str, str] | None = None) -> Any:
        """POST raw bytes (json.dumps escapes a surrogate as \\ud800, as a client's JSON would)."""
        params = query if query is not None else self.client.signed_query()
        resp = httpx.post(self.url + path, params=params, content=body, timeout=10)
        return resp

    def call(self, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        body = json.dumps({"Header": {}, "Payload": {"ReqId": new_req_id(), **payload}})
        resp = self.post(path, body)
        assert resp.status_code == 200, resp.text
        out: dict[str, Any] = resp.json()
        return out

    def ws(self, session_id: str, query: dict[str, str] | None = None) -> ClientConnection:
        params = query or self.client.signed_query({"requestid": session_id})
        url = "ws" + self.url[4:] + CHANNEL_PATH + "?" + httpx.QueryParams(params).__str__()
        return connect(url, open_timeout=10)

    def stop(self) -> None:
        for name in ("", "uvicorn"):
            logging.getLogger(name).removeHandler(self.log)
        self.client.close()
        self._stop()
        self.store.close()


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Srv]:
    s = Srv(tmp_path_factory.mktemp("data"))
    yield s
    s.stop()


@pytest.fixture(scope="module")
def started(srv: Srv) -> Iterator[str]:
    """One started, streaming session shared by the command-channel cases."""
    sid: str = srv.client.create_session_by_asset("default", "edge-ws")["SessionId"]
    srv.client.wait_ready(sid, timeout_s=30)
    srv.client.start_session(sid)
    yield sid
    srv.client.close_session(sid)


def _code(answer: dict[str, Any]) -> int:
    code: int = answer["Header"]["Code"]
    return code


CREATE = {"AssetVirtualmanKey": "default", "Protocol": "webrtc", "DriverType": 1}


@pytest.mark.parametrize(
    ("path", "payload", "field"),
    [
        ("createsessionbyasset", {**CREATE, "UserId": SURROGATE}, "UserId"),
        ("createsessionbyasset", {**CREATE, "UserId": "a", "AssetVirtualmanKey": SURROGATE}, None),
        ("createsession", {**CREATE, "UserId": "a", "VirtualmanProjectId": SURROGATE}, None),
        ("statsession", {"SessionId": "x" + SURROGATE}, "SessionId"),
        ("listsessionofassetvk", {"AssetVirtualmanKey": SURROGATE}, "AssetVirtualmanKey"),
        ("createsessionbyasset", {**CREATE, "UserId": "bell\x07"}, "UserId"),
        ("createsessionbyasset", {**CREATE, "UserId": "a", "Extra": {SURROGATE: 1}}, None),
    ],
)
def test_strings_that_are_not_text_are_100001(
    srv: Srv, path: str, payload: dict[str, Any], field: str | None
) -> None:
    answer = srv.call(SESSION_BASE + path, payload)
    assert _code(answer) == 100001, answer
    if field is not None:
        assert field in answer["Header"]["Message"]
    # Nothing was created, and the key's lists keep working.
    listed = srv.call(SESSION_BASE + "listsessionofuin", {})
    assert _code(listed) == 0
    assert all(s["UserId"] != SURROGATE for s in listed["Payload"]["Sessions"])


def test_task_id_that_is_not_text_is_100001(srv: Srv) -> None:
    answer = srv.call(CUSTOM_BASE + "getprogress", {"TaskId": SURROGATE})
    assert _code(answer) == 100001, answer


def test_integer_of_5000_digits_is_100001_over_http(srv: Srv) -> None:
    huge = "9" * 5000
    body = json.dumps({"Payload": {"ReqId": new_req_id(), "UserId": "a", "DriverType": 7}})
    body = body.replace("7}", huge + "}")
    resp = srv.post(SESSION_BASE + "createsessionbyasset", body)
    assert resp.status_code == 200
    assert _code(resp.json()) == 100001
    assert "integer" in resp.json()["Header"]["Message"]


def test_timestamp_of_400_digits_is_100005_over_http(srv: Srv) -> None:
    query = {"appkey": srv.appkey, "timestamp": "1" * 400}
    query["signature"] = sign(query, srv.token)
    body = json.dumps({"Payload": {"ReqId": new_req_id()}})
    resp = srv.post(SESSION_BASE + "listsessionofuin", body, query)
    assert resp.status_code == 200
    assert _code(resp.json()) == 100005
    assert "timestamp" in resp.json()["Header"]["Message"]


def _now_as(form: str) -> str:
    now = str(int(time.time()))
    if form == "fullwidth":
        return now.translate({ord(d): 0xFF10 + int(d) for d in "0123456789"})
    if form == "underscores":
        return now[:4] + "_" + now[4:]
    return " " + now


@pytest.mark.parametrize("form", ["fullwidth", "underscores", "space"])
def test_timestamps_not_in_ascii_digits_are_100005(srv: Srv, form: str) -> None:
    """Only ASCII digits are a timestamp (int() would take full-width digits, '_', blanks)."""
    query = {"appkey": srv.appkey, "timestamp": _now_as(form)}
    query["signature"] = sign(query, srv.token)
    resp = srv.post(SESSION_BASE + "listsessionofuin", json.dumps({"Payload": {}}), query)
    assert _code(resp.json()) == 100005
    assert "timestamp" in resp.json()["Header"]["Message"]


def _recv(ws: ClientConnection, timeout_s: float = 10) -> dict[str, Any]:
    msg: dict[str, Any] = json.loads(ws.recv(timeout=timeout_s))
    return msg


def test_timestamp_of_400_digits_on_the_socket_is_type9_and_close(srv: Srv, started: str) -> None:
    query = {"appkey": srv.appkey, "requestid": started, "timestamp": "1" * 400}
    query["signature"] = sign(query, srv.token)
    with srv.ws(started, query) as ws:
        msg = _recv(ws)
        assert (msg["Type"], msg["ErrorCode"]) == (9, 100005)
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=10)
        assert ws.close_code == 1008


def _frame(sid: str, command: str, data: dict[str, Any]) -> dict[str, Any]:
    return {
        "Header": {},
        "Payload": {"ReqId": new_req_id(), "SessionId": sid, "Command": command, "Data": data},
    }


def test_bad_values_on_the_socket_are_type9_100001(srv: Srv, started: str) -> None:
    heartbeat = json.dumps(_frame(started, "SEND_HEARTBEAT", {"Text": "PING"}))
    cases = [
        heartbeat.replace('"PING"', "9" * 5000),  # an integer Python's int() refuses
        heartbeat.replace('"PING"', "1e400"),  # a float that is infinite
        heartbeat.replace('"PING"', '"' + "\\ud800" + '"'),  # a lone surrogate
        heartbeat.replace('"Header": {}', '"\\udfff": 1'),  # ... as a key
        json.dumps(_frame(started, "SEND_TEXT", {"Text": "Hi", "Voice": "en\x00us"})),
    ]
    with srv.ws(started) as ws:
        for raw in cases:
            ws.send(raw)
            msg = _recv(ws)
            assert (msg["Type"], msg["ErrorCode"]) == (9, 100001), (raw[:80], msg)
        # The channel and the session live on.
        ws.send(heartbeat.replace(json.loads(heartbeat)["Payload"]["ReqId"], new_req_id()))
        ws.send(json.dumps(_frame(started, "SEND_TEXT", {"Text": "Still here."})))
        got = [_recv(ws) for _ in range(2)]
        assert [m["Type"] for m in got] == [3, 3], got
    stat = srv.client.stat_session(started)
    assert stat["SessionStatus"] == 1


def test_requestid_is_bounded(srv: Srv) -> None:
    sid = "a" * 2000
    with srv.ws(sid) as ws:
        msg = _recv(ws)
        assert msg["Type"] == 9 and msg["ErrorCode"] == 100001, msg
        assert len(json.dumps(msg)) < 1000


@pytest.mark.parametrize("voice", ["no-such-voice", "en-us+nosuchvariant", "bell\x07"])
def test_an_unknown_timbre_key_is_100001_at_create(srv: Srv, voice: str) -> None:
    """Not accepted at create only to fail at the first SEND_TEXT (-111005)."""
    answer = srv.call(
        SESSION_BASE + "createsessionbyasset",
        {**CREATE, "UserId": "voice", "SpeechParam": {"TimbreKey": voice}},
    )
    assert _code(answer) == 100001, answer
    assert "SpeechParam.TimbreKey" in answer["Header"]["Message"]


def test_a_known_timbre_key_in_any_spelling_is_accepted(srv: Srv) -> None:
    for voice in ("EN_US", "cmn", "en-gb+f3"):
        made = srv.client.create_session_by_asset("default", "voice", voice=voice)
        srv.client.close_session(made["SessionId"])


def test_a_push_url_to_a_host_not_allowed_is_100001(srv: Srv) -> None:
    """This server has no RTMP ingest and no rtmp_push_hosts: it pushes nowhere a client names."""
    option = {"CssCustomPushUrl": "rtmp://10.0.0.5:1935/live/x"}
    answer = srv.call(
        SESSION_BASE + "createsessionbyasset",
        {**CREATE, "UserId": "push", "Protocol": "rtmp", "ProtocolOption": option},
    )
    assert _code(answer) == 100001, answer
    assert "rtmp_push_hosts" in answer["Header"]["Message"]


def test_a_url_over_8_kib_is_refused_at_the_handshake(srv: Srv) -> None:
    """Not a hang until the client gives up: HTTP 414 and the socket closed."""
    with pytest.raises(InvalidStatus) as info:
        srv.ws("a" * 10_000).close()
    assert info.value.response.status_code == 414


def test_usage_of_a_non_ascii_user_is_booked(srv: Srv) -> None:
    user = "ünï-用户-😀"
    sid: str = srv.client.create_session_by_asset("default", user)["SessionId"]
    srv.client.wait_ready(sid, timeout_s=30)
    time.sleep(0.5)
    listed = srv.client.list_sessions()
    assert user in [s["UserId"] for s in listed]
    srv.client.close_session(sid)
    booked = [s for s in srv.store.usage(srv.appkey).sessions if s.session_id == sid]
    assert booked and booked[0].user_id == user and booked[0].seconds > 0


def test_zz_no_traceback_was_logged(srv: Srv) -> None:
    """Every case above is a caller's mistake (runs last in this module): no error logged."""
    assert [r.getMessage() for r in srv.log.records] == []
