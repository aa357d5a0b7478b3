"""The session endpoints against a real server on a loopback port, driven with the Client.

Media: the real `attach_media`. A gate per UserId holds a session in status 3 until the test
opens it, so "not ready yet" is deterministic.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from avatarcast.client import SESSION_BASE, ApiError, Client, new_req_id
from avatarcast.errors import AvatarLoadError
from avatarcast.sessions.media import attach_media
from avatarcast.sessions.session import Session
from avatarcast.sessions.store_sqlite import SqliteStore
from avatarcast.settings import Settings
from avatarcast.stream.clock import MonotonicClock
from server_harness import LiveServer


class GatedMedia:
    """A media factory with per-UserId gates and failures."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.gates: dict[str, threading.Event] = {}
        self.broken: set[str] = set()

    async def __call__(self, session: Session) -> None:
        gate = self.gates.get(session.user_id)
        while gate is not None and not gate.is_set():
            await asyncio.sleep(0.01)  # polled, so closing the session cancels it at once
        if session.user_id in self.broken:
            raise AvatarLoadError("test: the avatar files are broken")
        await attach_media(session, self.settings, MonotonicClock())


class Server(LiveServer):
    def __init__(self, data_dir: Path, **overrides: object) -> None:
        settings = Settings(data_dir=data_dir, **overrides)  # type: ignore[arg-type]
        self.media = GatedMedia(settings)
        super().__init__(settings, media_factory=self.media)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = Server(tmp_path_factory.mktemp("data"))
    yield srv
    srv.stop()


@pytest.fixture
def client(server: Server) -> Iterator[Client]:
    with server.client() as c:
        yield c


def _code(call: Callable[[], object]) -> ApiError:
    with pytest.raises(ApiError) as info:
        call()
    return info.value


def test_create_stat_start_list_close(server: Server, client: Client) -> None:
    made = client.create_session_by_asset("default", "alice", driver_type=3, alpha=True)
    sid = made["SessionId"]
    assert re.fullmatch(r"[0-9a-f]{32}", sid)
    assert made["SessionStatus"] in (1, 3)
    assert re.fullmatch(
        rf"{re.escape(server.url)}/v2/whep/{sid}\?token=[0-9a-f]{{32}}", made["PlayStreamAddr"]
    )
    assert re.fullmatch(r"[0-9a-f]{32}", made["ReqId"])

    stat = client.wait_ready(sid)
    assert stat["SessionStatus"] == 1
    assert stat["IsSessionStarted"] is False
    assert (stat["ErrorCode"], stat["ErrorMessage"]) == (0, "")
    assert stat["PlayStreamAddr"] == made["PlayStreamAddr"]
    assert isinstance(stat["SpeakStatus"], str)

    client.start_session(sid)
    client.start_session(sid)  # starting twice is harmless
    assert client.stat_session(sid)["IsSessionStarted"] is True

    expected = {
        "UserId": "alice",
        "SessionId": sid,
        "SessionStatus": 1,
        "PlayStreamAddr": made["PlayStreamAddr"],
        "DriverType": 3,
        "IsSessionStarted": True,
    }
    assert client.list_sessions() == [expected]
    assert client.list_sessions(asset_key="default") == [expected]
    assert client.list_sessions(asset_key="someone-else") == []

    client.close_session(sid)
    stat = client.stat_session(sid)
    assert stat["SessionStatus"] == 2
    assert stat["IsSessionStarted"] is True  # stays true
    assert client.list_sessions() == []
    assert _code(lambda: client.close_session(sid)).code == 110013
    assert _code(lambda: client.start_session(sid)).code == 110013

    usage = server.store.usage(client.appkey)  # closing books the streamed seconds
    assert [s.session_id for s in usage.sessions] == [sid]
    assert usage.sessions[0].user_id == "alice" and usage.sessions[0].seconds > 0


def test_start_before_ready_is_110014(server: Server, client: Client) -> None:
    gate = server.media.gates["slow"] = threading.Event()
    sid = client.create_session_by_asset("default", "slow")["SessionId"]
    assert client.stat_session(sid)["SessionStatus"] == 3
    err = _code(lambda: client.start_session(sid))
    assert err.code == 110014 and "preparing" in err.message
    gate.set()
    assert client.wait_ready(sid)["SessionStatus"] == 1
    client.start_session(sid)
    client.close_session(sid)


def test_close_while_preparing(server: Server, client: Client) -> None:
    server.media.gates["never"] = threading.Event()
    sid = client.create_session_by_asset("default", "never")["SessionId"]
    client.close_session(sid)
    assert client.stat_session(sid)["SessionStatus"] == 2
    assert client.list_sessions() == []


def test_media_failure_is_status_4_with_code(server: Server, client: Client) -> None:
    server.media.broken.add("unlucky")
    sid = client.create_session_by_asset("default", "unlucky")["SessionId"]
    err = _code(lambda: client.wait_ready(sid))
    assert err.code == -111003 and "broken" in err.message
    stat = client.stat_session(sid)
    assert (stat["SessionStatus"], stat["ErrorCode"]) == (4, -111003)
    assert _code(lambda: client.start_session(sid)).code == 110014
    assert client.list_sessions() == []  # failed sessions hold no quota


def test_one_stream_per_user_id(client: Client) -> None:
    first = client.create_session_by_asset("default", "bob")["SessionId"]
    client.wait_ready(first)
    second = client.create_session_by_asset("default", "bob")["SessionId"]
    old = client.stat_session(first)
    assert old["SessionStatus"] == 2
    assert old["ErrorCode"] == 110022 and "bob" in old["ErrorMessage"]
    assert [s["SessionId"] for s in client.list_sessions()] == [second]
    client.close_session(second)


def test_quota_per_key(server: Server) -> None:
    with server.client(max_sessions=2) as c:
        a = c.create_session_by_asset("default", "u1")["SessionId"]
        c.create_session_by_asset("default", "u2")
        err = _code(lambda: c.create_session_by_asset("default", "u3"))
        assert err.code == 100008 and "2" in err.message
        # replacing a user's own stream is allowed at the limit: the old one is closed
        c.create_session_by_asset("default", "u2")
        c.close_session(a)
        c.create_session_by_asset("default", "u3")
        assert sorted(s["UserId"] for s in c.list_sessions()) == ["u2", "u3"]
        for s in c.list_sessions():
            c.close_session(s["SessionId"])


def test_keys_cannot_see_each_other(server: Server, client: Client) -> None:
    sid = client.create_session_by_asset("default", "carol")["SessionId"]
    with server.client() as other:
        for call in (other.stat_session, other.start_session, other.close_session):
            err = _code(lambda call=call: call(sid))  # type: ignore[misc]
            assert err.code == 110018
        assert other.list_sessions() == []
        assert other.list_sessions(asset_key="default") == []
        # the same UserId under another key is another user: nothing is replaced
        mine = other.create_session_by_asset("default", "carol")["SessionId"]
        assert client.stat_session(sid)["ErrorCode"] == 0
        other.close_session(mine)
    assert client.stat_session(sid)["SessionStatus"] in (1, 3)
    assert _code(lambda: client.stat_session("f" * 32)).code == 110018
    client.close_session(sid)


@pytest.mark.parametrize(
    ("payload", "code", "named"),
    [
        ({"ReqId": "ABC"}, 100001, "ReqId"),
        ({"ReqId": new_req_id().upper()}, 100001, "ReqId"),
        ({"ReqId": None}, 100001, "ReqId"),
        ({"ReqId": 12}, 100001, "ReqId"),
        ({"UserId": None}, 100001, "UserId"),
        ({"UserId": 5}, 100001, "UserId"),
        ({"DriverType": "1"}, 100001, "DriverType"),
        ({"DriverType": 2}, 100001, "DriverType"),
        ({"DriverType": True}, 100001, "DriverType"),
        ({"Protocol": None}, 100001, "Protocol"),
        ({"Protocol": "sip"}, 100001, "Protocol"),
        ({"StreamMaxInterval": 1999}, 100001, "StreamMaxInterval"),
        ({"StreamMaxInterval": 6001}, 100001, "StreamMaxInterval"),
        ({"ExtraInfo": {"AlphaChannelEnable": "yes"}}, 100001, "ExtraInfo.AlphaChannelEnable"),
        ({"ProtocolOption": []}, 100001, "ProtocolOption"),
        ({"AssetVirtualmanKey": None}, 100001, "AssetVirtualmanKey"),
        ({"AssetVirtualmanKey": "nobody"}, 100015, "nobody"),
    ],
)
def test_bad_create_fields(
    client: Client, payload: dict[str, object], code: int, named: str
) -> None:
    good = {
        "AssetVirtualmanKey": "default",
        "UserId": "dave",
        "Protocol": "webrtc",
        "DriverType": 1,
    }
    body = {k: v for k, v in {**good, **payload}.items() if v is not None}
    if "ReqId" in payload:  # call() adds a fresh one; send this one instead
        body["ReqId"] = payload["ReqId"]
        if payload["ReqId"] is None:
            del body["ReqId"]
            resp = httpx.post(
                client.signed_url(SESSION_BASE + "createsessionbyasset"),
                json={"Header": {}, "Payload": body},
            )
            assert resp.json()["Header"]["Code"] == 100001
            assert "ReqId" in resp.json()["Header"]["Message"]
            return
    err = _code(lambda: client.call(SESSION_BASE + "createsessionbyasset", body))
    assert err.code == code
    assert named in err.message
    assert re.fullmatch(r"[0-9a-f]{32}", err.request_id)
    assert client.list_sessions() == []


@pytest.mark.parametrize(
    ("protocol", "named"),
    [("rtmp", "rtmp_ingest_url"), ("trtc", "LiveKit is not configured")],
)
def test_unconfigured_outputs_are_refused_clearly(
    client: Client, protocol: str, named: str
) -> None:
    """This server has no RTMP ingest and no LiveKit: the answer says what is missing."""
    err = _code(lambda: client.create_session_by_asset("default", "erin", protocol=protocol))
    assert err.code == 100001
    assert named in err.message
    assert client.list_sessions() == []  # nothing half-created, no quota used


def test_missing_session_id(client: Client) -> None:
    for name in ("statsession", "startsession", "closesession"):
        err = _code(lambda name=name: client.call(SESSION_BASE + name, {}))  # type: ignore[misc]
        assert err.code == 100001 and "SessionId" in err.message
    err = _code(lambda: client.call(SESSION_BASE + "listsessionofprojectid", {}))
    assert err.code == 100001 and "VirtualmanProjectId" in err.message


def test_create_by_project(server: Server, client: Client) -> None:
    project = server.store.create_project("shop", "default", voice="en-us")
    private = server.store.create_project("theirs", "default", appkey="0" * 32)
    made = client.create_session(project.project_id, "frank")
    listed = client.list_sessions(project_id=project.project_id)
    assert [s["SessionId"] for s in listed] == [made["SessionId"]]
    assert client.list_sessions(project_id="other") == []
    for pid in ("missing", private.project_id):  # another key's project does not exist for us
        err = _code(lambda pid=pid: client.create_session(pid, "frank2"))  # type: ignore[misc]
        assert err.code == 100001 and "VirtualmanProjectId" in err.message
    client.close_session(made["SessionId"])


def _post(url: str, body: object) -> dict[str, object]:
    resp = httpx.post(url, json=body)
    assert resp.status_code == 200
    out: dict[str, object] = resp.json()
    return out


def test_auth_failures_are_100005(server: Server, client: Client) -> None:
    path = SESSION_BASE + "listsessionofuin"
    body = {"Header": {}, "Payload": {"ReqId": new_req_id()}}
    query = client.signed_query()
    cases = {
        "bad signature": {**query, "signature": "AAAA" + query["signature"][4:]},
        "old timestamp": Client(server.url, client.appkey, "unused").signed_query()
        | {"timestamp": str(int(time.time()) - 400)},
        "unknown key": Client(server.url, "1" * 32, "2" * 32).signed_query(),
        "no signature": {k: v for k, v in query.items() if k != "signature"},
        "no query": {},
    }
    for why, params in cases.items():
        resp = httpx.post(server.url + path, params=params, json=body)
        assert resp.status_code == 200, why
        header = resp.json()["Header"]
        assert header["Code"] == 100005, why
        assert resp.json()["Payload"]["ReqId"] == body["Payload"]["ReqId"]  # echoed anyway
    # an old timestamp, correctly signed, is still refused
    stale = {"appkey": client.appkey, "timestamp": str(int(time.time()) - 400)}
    from avatarcast.api.auth import sign

    stale["signature"] = sign(stale, client._accesstoken)
    resp = httpx.post(server.url + path, params=stale, json=body)
    assert (
        resp.json()["Header"]["Code"] == 100005 and "timestamp" in resp.json()["Header"]["Message"]
    )
    # a revoked key stops working at once
    with server.client() as doomed:
        assert doomed.list_sessions() == []
        server.store.revoke_key(doomed.appkey)
        assert _code(doomed.list_sessions).code == 100005


def test_payload_only_body_and_envelope(client: Client) -> None:
    req_id = new_req_id()
    out = _post(client.signed_url(SESSION_BASE + "listsessionofuin"), {"ReqId": req_id})
    assert out["Header"] == {"Code": 0, "Message": "", "RequestID": out["Header"]["RequestID"]}  # type: ignore[index]
    assert out["Payload"] == {"Sessions": [], "ReqId": req_id}
    wrapped = _post(
        client.signed_url(SESSION_BASE + "listsessionofuin"), {"Payload": {"ReqId": req_id}}
    )
    assert wrapped["Payload"] == {"Sessions": [], "ReqId": req_id}
    not_object = _post(client.signed_url(SESSION_BASE + "listsessionofuin"), [1, 2])
    assert not_object["Header"]["Code"] == 100001  # type: ignore[index]


def test_http_level_errors(server: Server, client: Client) -> None:
    url = client.signed_url(SESSION_BASE + "statsession")
    bad_json = httpx.post(url, content=b"{not json", headers={"content-type": "application/json"})
    assert bad_json.status_code == 400 and "JSON" in bad_json.json()["error"]
    deep = httpx.post(url, content=b"[" * 100_000)  # deeper than the JSON parser goes
    assert deep.status_code == 400
    big = httpx.post(url, content=b" " * ((1 << 20) + 1))
    assert big.status_code == 413
    assert httpx.get(url).status_code == 405
    assert httpx.post(client.signed_url(SESSION_BASE + "nosuchthing"), json={}).status_code == 404
    assert httpx.post(server.url + "/v2/nothing", json={}).status_code == 404
    health = httpx.get(server.url + "/healthz")
    assert health.status_code == 200 and health.json() == {"ok": True}
    assert client.list_sessions() == []  # and the server is still fine


def test_idle_sessions_close_themselves(tmp_path: Path) -> None:
    srv = Server(tmp_path, idle_timeout_s=1.5)
    try:
        with srv.client() as c:
            sid = c.create_session_by_asset("default", "sleepy")["SessionId"]
            c.wait_ready(sid)
            c.start_session(sid)  # starting renews the timer, once
            t0 = time.monotonic()
            while (stat := c.stat_session(sid))["SessionStatus"] != 2:
                assert time.monotonic() - t0 < 10, "the idle session did not close"
                time.sleep(0.1)
            assert time.monotonic() - t0 > 1.0  # not before its idle time
            assert stat["ErrorCode"] == 110013
            assert stat["ErrorMessage"].startswith("closed: idle for")
            assert c.list_sessions() == []
            assert _code(lambda: c.start_session(sid)).code == 110013
    finally:
        srv.stop()


def test_shutdown_closes_sessions_and_books_usage(tmp_path: Path) -> None:
    srv = Server(tmp_path)
    with srv.client() as c:
        sid = c.create_session_by_asset("default", "gina")["SessionId"]
        c.wait_ready(sid)
    store = SqliteStore(srv.settings.db_path)
    srv.stop()
    try:
        usage = store.usage()
        assert [s.session_id for s in usage.sessions] == [sid]
        assert usage.sessions[0].seconds > 0
    finally:
        store.close()
