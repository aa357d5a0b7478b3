"""The stores, SQLite and PostgreSQL, by the same tests: keys, projects and usage survive a
reopen; revoke; usage windows; the shared session table (quota, replacement by UserId, ending
once, metering each second once), also with two connections racing."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from avatarcast.codes import SESSION_REPLACED
from avatarcast.errors import QuotaError, SettingsError
from avatarcast.sessions.store import SessionRecord, Store, open_store, redact_url
from avatarcast.sessions.store_sqlite import SqliteStore
from avatarcast.settings import Settings, load

HEX32 = re.compile(r"[0-9a-f]{32}")
HOUR = 1_700_000_000.0 - 1_700_000_000.0 % 3600  # the start of an hour
CLOSED, FAILED, READY, PREPARING = 2, 4, 1, 3


@dataclass
class Backend:
    """Opens connections to one fresh database (a reopen is a server restart)."""

    name: str
    open: Callable[[], Store]
    url: str = ""


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "sqlite":
        db = tmp_path / "data" / "avatarcast.db"  # the data dir does not exist yet
        return Backend("sqlite", lambda: SqliteStore(db))
    from avatarcast.sessions.store_pg import PgStore

    url = request.getfixturevalue("pg_server").new_database()
    return Backend("postgresql", lambda: PgStore(url), url)


@pytest.fixture
def store(backend: Backend) -> Iterator[Store]:
    s = backend.open()
    yield s
    s.close()


def _rec(session_id: str, appkey: str, user_id: str, created: float, **kw: Any) -> SessionRecord:
    return SessionRecord(
        session_id=session_id,
        appkey=appkey,
        user_id=user_id,
        asset_key="default",
        protocol="webrtc",
        driver_type=3,
        created_unix=created,
        last_activity_unix=created,
        **kw,
    )


def _seconds(store: Store, session_id: str) -> float:
    return sum(s.seconds for s in store.usage().sessions if s.session_id == session_id)


# ---- keys, projects, usage ---------------------------------------------------------------


def test_keys_persist_across_reopen_and_revoke(backend: Backend) -> None:
    store = backend.open()
    appkey, token = store.create_key("alice", 3, now_unix=100.0)
    other, other_token = store.create_key("bob", 1)
    assert HEX32.fullmatch(appkey) and HEX32.fullmatch(token)
    assert len({appkey, token, other, other_token}) == 4
    store.close()

    store = backend.open()
    assert store.accesstoken_of(appkey) == token
    assert store.max_sessions_of(appkey) == 3
    assert store.max_sessions_of("nope") == 0
    listed = {k.appkey: k for k in store.list_keys()}
    assert listed[appkey].name == "alice" and listed[appkey].created_unix == 100.0
    assert "accesstoken" not in listed[appkey].to_json()  # listing never shows the secret
    assert store.revoke_key(appkey) is True
    assert store.revoke_key("nope") is False
    assert store.accesstoken_of(appkey) is None  # revoked keys cannot sign
    assert store.accesstoken_of(other) == other_token
    store.close()

    store = backend.open()
    assert store.accesstoken_of(appkey) is None
    assert {k.appkey: k.revoked for k in store.list_keys()} == {appkey: True, other: False}
    store.close()


def test_create_key_rejects_zero_quota(store: Store) -> None:
    with pytest.raises(ValueError):
        store.create_key("x", 0)


def test_projects_persist(backend: Backend) -> None:
    store = backend.open()
    p = store.create_project("shop", "default", voice="cmn", now_unix=5.0)
    q = store.create_project("private", "default", appkey="k1", now_unix=6.0)
    store.close()
    store = backend.open()
    got = store.get_project(p.project_id)
    assert got is not None
    assert (got.name, got.asset_key, got.voice, got.appkey) == ("shop", "default", "cmn", None)
    assert store.get_project("missing") is None
    assert [x.project_id for x in store.list_projects()] == [p.project_id, q.project_id]
    assert store.list_projects()[1].appkey == "k1"
    store.close()


def test_usage_accrues_across_restart(backend: Backend) -> None:
    t0 = HOUR
    store = backend.open()
    store.add_usage("s1", "k1", "alice", 5.0, t0 + 10)
    store.add_usage("s1", "k1", "alice", 5.0, t0 + 15)
    store.add_usage("s2", "k2", "bob", 2.5, t0 + 20)
    store.add_usage("s2", "k2", "bob", 0.0, t0 + 21)  # nothing to add
    store.close()

    store = backend.open()  # a server restart keeps what was booked, and adds to it
    store.add_usage("s1", "k1", "alice", 4.0, t0 + 3600 + 1)  # the next hour
    report = store.usage()
    assert report.keys == {"k1": 14.0, "k2": 2.5}
    by_session = {s.session_id: s for s in report.sessions}
    assert by_session["s1"].seconds == 14.0
    assert by_session["s1"].user_id == "alice"
    assert by_session["s1"].started_unix == t0 + 5  # first booking minus its seconds

    only_k1 = store.usage("k1")
    assert only_k1.keys == {"k1": 14.0}
    assert [s.session_id for s in only_k1.sessions] == ["s1"]

    later = store.usage(since_unix=t0 + 3600 + 30)  # from the start of the second hour
    assert later.keys == {"k1": 4.0}
    assert store.usage("k3").sessions == []
    store.close()


def test_two_connections_see_each_other(backend: Backend) -> None:
    # The CLI creates keys while a server runs: both use the database at once.
    server, cli = backend.open(), backend.open()
    appkey, token = cli.create_key("late", 1)
    assert server.accesstoken_of(appkey) == token
    cli.revoke_key(appkey)
    assert server.accesstoken_of(appkey) is None
    server.close()
    cli.close()


# ---- the session table -------------------------------------------------------------------


def test_session_round_trip_and_listing(store: Store) -> None:
    k1, _ = store.create_key("a", 5)
    k2, _ = store.create_key("b", 5)
    full = _rec(
        "s-b",
        k1,
        "alice",
        HOUR + 2,
        project_id="p1",
        alpha=True,
        stream_max_interval_ms=500,
        voice="cmn",
        extra={"ProtocolOption": {"RoomId": 7}, "x": [1, "y"]},
        play_url="http://h/play/s-b",
        play_token="tok",
    )
    assert store.create_session(full) == []
    assert store.get_session("s-b") == full
    store.create_session(_rec("s-a", k1, "bob", HOUR + 1))
    store.create_session(_rec("s-c", k2, "carol", HOUR + 2))  # same time: by session_id
    assert store.get_session("missing") is None

    assert [s.session_id for s in store.list_sessions()] == ["s-a", "s-b", "s-c"]
    assert [s.session_id for s in store.list_sessions(k1)] == ["s-a", "s-b"]
    assert store.end_session("s-a", CLOSED, 0, "closed", HOUR + 3) is not None
    assert [s.session_id for s in store.list_sessions(k1)] == ["s-b"]
    assert [s.session_id for s in store.list_sessions(k1, open_only=False)] == ["s-a", "s-b"]
    assert store.list_sessions("nope", open_only=False) == []

    store.set_worker("s-b", "worker-2", "node-a")
    store.set_started("s-b")
    store.touch_session("s-b", HOUR + 9.5)
    got = store.get_session("s-b")
    assert got == replace(
        full, worker="worker-2", node="node-a", started=True, last_activity_unix=HOUR + 9.5
    )
    assert got.is_open and got.status == PREPARING


def test_quota_counts_other_users_and_replaces_the_same_user(store: Store) -> None:
    key, _ = store.create_key("k", 2)
    t = HOUR + 100
    store.create_session(_rec("s1", key, "alice", t))
    store.create_session(_rec("s2", key, "bob", t + 1))
    assert store.mark_ready("s1", t + 5)
    with pytest.raises(QuotaError, match=r"this key may have 2 open session\(s\); close one first"):
        store.create_session(_rec("s3", key, "carol", t + 2))
    assert store.get_session("s3") is None

    # alice again: a new stream for her UserId replaces her open one, within the quota.
    before = store.get_session("s1")
    replaced = store.create_session(_rec("s4", key, "alice", t + 30))
    assert replaced == [before]  # as it was: the caller stops its media
    old = store.get_session("s1")
    assert old is not None and not old.is_open
    assert (old.status, old.error_code) == (CLOSED, SESSION_REPLACED)
    assert old.error_message == "closed: a new stream was created for UserId 'alice'"
    assert old.ended_unix == t + 30 and old.metered_unix == t + 30
    assert _seconds(store, "s1") == 25.0  # ready at t+5, replaced at t+30
    assert {s.session_id for s in store.list_sessions(key)} == {"s2", "s4"}

    with pytest.raises(QuotaError):  # an unknown key may have none
        store.create_session(_rec("s5", "no-such-key", "dave", t))


def test_mark_ready_and_end_session_once(store: Store) -> None:
    key, _ = store.create_key("k", 3)
    t = HOUR + 10
    store.create_session(_rec("s1", key, "u1", t))
    store.create_session(_rec("s2", key, "u2", t))
    assert store.mark_ready("s1", t + 1) is True
    assert store.mark_ready("s1", t + 2) is False  # already ready: no change
    s1 = store.get_session("s1")
    assert s1 is not None and (s1.status, s1.metered_unix) == (READY, t + 1)

    # Usage up to the last frame sent (usage_until_unix), not to the time of the close.
    ended = store.end_session(
        "s1", CLOSED, 0, "closed by the client", t + 20, usage_until_unix=t + 11
    )
    assert ended == s1
    s1 = store.get_session("s1")
    assert s1 is not None
    assert (s1.status, s1.error_message, s1.ended_unix, s1.metered_unix) == (
        CLOSED,
        "closed by the client",
        t + 20,
        t + 11,
    )
    assert _seconds(store, "s1") == 10.0
    assert store.end_session("s1", CLOSED, 0, "again", t + 30) is None  # ended already
    assert store.get_session("s1") == s1
    assert _seconds(store, "s1") == 10.0
    assert store.mark_ready("s1", t + 31) is False

    # A session that never became ready books nothing; a failure keeps its code.
    failed = store.end_session("s2", FAILED, 100005, "no media", t + 3)
    assert failed is not None and failed.status == PREPARING
    s2 = store.get_session("s2")
    assert s2 is not None and (s2.status, s2.error_code, s2.metered_unix) == (FAILED, 100005, 0.0)
    assert _seconds(store, "s2") == 0.0
    assert store.end_session("missing", CLOSED, 0, "x", t) is None
    with pytest.raises(ValueError):
        store.end_session("s2", READY, 0, "x", t)


def test_meter_sessions_books_ready_ones_up_to_now(store: Store) -> None:
    key, _ = store.create_key("k", 5)
    t = HOUR + 100
    for sid in ("a", "b", "c"):
        store.create_session(_rec(sid, key, sid, t))
    store.mark_ready("a", t)
    store.mark_ready("b", t + 4)  # c stays preparing
    assert store.meter_sessions([], t + 10) == 0.0
    assert store.meter_sessions(["a", "b", "c", "missing"], t + 10) == 16.0
    assert store.meter_sessions(["a", "b"], t + 10) == 0.0  # nothing new
    assert store.meter_sessions(["a"], t + 8) == 0.0  # an older clock books nothing
    assert store.meter_sessions(["a", "a"], t + 12) == 2.0  # each id once
    assert (_seconds(store, "a"), _seconds(store, "b"), _seconds(store, "c")) == (12.0, 6.0, 0.0)
    a = store.get_session("a")
    assert a is not None and a.metered_unix == t + 12
    # Ending books only what metering has not: 3 more seconds.
    store.end_session("a", CLOSED, 0, "closed", t + 15)
    assert _seconds(store, "a") == 15.0
    assert store.meter_sessions(["a"], t + 20) == 0.0  # closed: no longer metered
    # Usage is booked to the hour of the time it reaches.
    store.meter_sessions(["b"], HOUR + 3600 + 5)
    assert store.usage(since_unix=HOUR + 3600).keys == {key: HOUR + 3600 + 5 - (t + 10)}


def test_forget_sessions_deletes_ended_rows_only(store: Store) -> None:
    key, _ = store.create_key("k", 5)
    for i, sid in enumerate(("old", "newer", "open")):
        store.create_session(_rec(sid, key, sid, HOUR + i))
    store.end_session("old", CLOSED, 0, "x", HOUR + 10)
    store.end_session("newer", FAILED, 1, "x", HOUR + 50)
    assert store.forget_sessions(HOUR + 20) == 1
    assert store.get_session("old") is None
    assert store.forget_sessions(HOUR + 1000) == 1
    assert [s.session_id for s in store.list_sessions(open_only=False)] == ["open"]


# ---- several connections at once (API processes of a cluster) ---------------------------


def _together(n: int, fn: Callable[[int], Any]) -> list[Any]:
    """Run fn(0..n-1) in n threads released at once; their results (or exceptions)."""
    barrier = threading.Barrier(n)
    results: list[Any] = [None] * n

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = fn(i)
        except Exception as exc:  # returned to the test
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    return results


def test_quota_holds_when_processes_create_at_once(backend: Backend) -> None:
    stores = [backend.open() for _ in range(4)]  # four connections, like four API processes
    key, _ = stores[0].create_key("k", 2)
    try:
        for rnd in range(15):
            t = HOUR + rnd * 10
            results = _together(
                4,
                lambda i, rnd=rnd, t=t: stores[i].create_session(
                    _rec(f"r{rnd}-{i}", key, f"user{i}", t)
                ),
            )
            created = [r for r in results if isinstance(r, list)]
            refused = [r for r in results if isinstance(r, QuotaError)]
            assert len(created) == 2 and len(refused) == 2, results
            assert len(stores[0].list_sessions(key)) == 2
            for s in stores[0].list_sessions(key):
                stores[0].end_session(s.session_id, CLOSED, 0, "next round", t + 5)
    finally:
        for s in stores:
            s.close()


def test_one_user_racing_itself_keeps_one_stream(backend: Backend) -> None:
    stores = [backend.open() for _ in range(3)]
    key, _ = stores[0].create_key("k", 1)
    try:
        for rnd in range(10):
            t = HOUR + rnd
            results = _together(
                3,
                lambda i, rnd=rnd, t=t: stores[i].create_session(
                    _rec(f"r{rnd}-{i}", key, "alice", t)
                ),
            )
            assert all(isinstance(r, list) for r in results), results
            assert len(stores[1].list_sessions(key)) == 1
            # Each replaced session was replaced by exactly one creator.
            ids = [s.session_id for r in results for s in r]
            assert len(ids) == len(set(ids))
    finally:
        for s in stores:
            s.close()


def test_end_session_races_end_it_once(backend: Backend) -> None:
    stores = [backend.open() for _ in range(3)]
    key, _ = stores[0].create_key("k", 50)
    try:
        for rnd in range(10):
            sid = f"s{rnd}"
            stores[0].create_session(_rec(sid, key, sid, HOUR))
            stores[0].mark_ready(sid, HOUR + 1)
            results = _together(
                3,
                lambda i, sid=sid: stores[i].end_session(sid, CLOSED, 0, f"by {i}", HOUR + 10 + i),
            )
            assert sum(r is not None for r in results) == 1, results
            winner = next(i for i, r in enumerate(results) if r is not None)
            assert _seconds(stores[0], sid) == 9.0 + winner  # booked once, by the winner
    finally:
        for s in stores:
            s.close()


def test_metering_from_two_processes_counts_each_second_once(backend: Backend) -> None:
    a, b = backend.open(), backend.open()
    key, _ = a.create_key("k", 10)
    ids = [f"s{i}" for i in range(4)]
    for sid in ids:
        a.create_session(_rec(sid, key, sid, HOUR))
        a.mark_ready(sid, HOUR)
    ticks = 40
    try:
        # Both meter every session with interleaved clocks (a: odd seconds, b: even), in
        # whatever order the threads run: a later tick books only what an earlier one left.
        def meter(i: int) -> float:
            store = (a, b)[i]
            return sum(
                store.meter_sessions(list(reversed(ids)) if i else ids, HOUR + n)
                for n in range(1 + i, ticks + 1, 2)
            )

        booked = _together(2, meter)
        assert sum(booked) == len(ids) * ticks  # every session up to the last tick, once
        assert a.usage().keys == {key: len(ids) * ticks}
        assert all(s.metered_unix == HOUR + ticks for s in b.list_sessions(key))
    finally:
        a.close()
        b.close()


# ---- PostgreSQL only: a lost connection --------------------------------------------------


def test_pg_reconnects_after_the_connection_is_cut(backend: Backend, request: Any) -> None:
    if backend.name != "postgresql":
        pytest.skip("PostgreSQL only")
    server = request.getfixturevalue("pg_server")
    store = backend.open()
    key, token = store.create_key("k", 1)
    assert server.terminate_connections(backend.url.rsplit("/", 1)[1]) >= 1
    assert store.accesstoken_of(key) == token  # reopened once, transparently
    assert server.terminate_connections(backend.url.rsplit("/", 1)[1]) >= 1
    store.create_session(_rec("s1", key, "u", HOUR))  # a write, too
    assert store.get_session("s1") is not None
    store.close()
    with pytest.raises(Exception, match="closed"):  # closed means closed: no reconnection
        store.list_keys()


# ---- choosing a store ---------------------------------------------------------------------


def test_open_store_by_settings(tmp_path: Path, request: Any) -> None:
    sqlite = open_store(Settings(data_dir=tmp_path))
    assert isinstance(sqlite, SqliteStore) and sqlite.path == tmp_path / "avatarcast.db"
    sqlite.close()
    with pytest.raises(ValueError, match="postgresql://") as exc:
        open_store(Settings(data_dir=tmp_path, store_url="mysql://u:hunter2@h/db"))
    assert "hunter2" not in str(exc.value)


def test_open_store_postgresql(pg_server: Any) -> None:
    from avatarcast.sessions.store_pg import PgStore

    url = pg_server.new_database()
    store = open_store(Settings(store_url=url.replace("postgresql://", "postgres://")))
    assert isinstance(store, PgStore)
    assert store.list_keys() == []
    store.close()


def test_store_url_setting() -> None:
    env = {"AVATARCAST_STORE_URL": "postgresql://u:hunter2@db.internal:5432/avatarcast"}
    assert load(environ=env).store_url == env["AVATARCAST_STORE_URL"]
    assert load(environ={}).store_url == ""
    with pytest.raises(SettingsError, match="store_url") as exc:
        load(environ={"AVATARCAST_STORE_URL": "sqlite:///tmp/hunter2.db"})
    assert "hunter2" not in str(exc.value)


def test_redact_url_hides_the_password() -> None:
    assert redact_url("postgresql://u:hunter2@db:5432/x?sslmode=require") == (
        "postgresql://u:***@db:5432/x?sslmode=require"
    )
    assert redact_url("postgresql://u@db/x") == "postgresql://u@db/x"
    assert redact_url("postgresql:///x") == "postgresql:///x"
