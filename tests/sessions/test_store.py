"""The SQLite store: keys, projects and usage survive a reopen; revoke; usage windows."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from avatarcast.sessions.store import Store

HEX32 = re.compile(r"[0-9a-f]{32}")


def test_keys_persist_across_reopen_and_revoke(tmp_path: Path) -> None:
    db = tmp_path / "data" / "avatarcast.db"  # the data dir does not exist yet
    store = Store(db)
    appkey, token = store.create_key("alice", 3, now_unix=100.0)
    other, other_token = store.create_key("bob", 1)
    assert HEX32.fullmatch(appkey) and HEX32.fullmatch(token)
    assert len({appkey, token, other, other_token}) == 4
    store.close()

    store = Store(db)
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

    store = Store(db)
    assert store.accesstoken_of(appkey) is None
    assert {k.appkey: k.revoked for k in store.list_keys()} == {appkey: True, other: False}
    store.close()


def test_create_key_rejects_zero_quota(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        Store(tmp_path / "a.db").create_key("x", 0)


def test_projects_persist(tmp_path: Path) -> None:
    store = Store(tmp_path / "a.db")
    p = store.create_project("shop", "default", voice="cmn", now_unix=5.0)
    q = store.create_project("private", "default", appkey="k1", now_unix=6.0)
    store.close()
    store = Store(tmp_path / "a.db")
    got = store.get_project(p.project_id)
    assert got is not None
    assert (got.name, got.asset_key, got.voice, got.appkey) == ("shop", "default", "cmn", None)
    assert store.get_project("missing") is None
    assert [x.project_id for x in store.list_projects()] == [p.project_id, q.project_id]
    assert store.list_projects()[1].appkey == "k1"
    store.close()


def test_usage_accrues_across_restart(tmp_path: Path) -> None:
    db = tmp_path / "a.db"
    t0 = 1_700_000_000.0 - 1_700_000_000.0 % 3600  # the start of an hour
    store = Store(db)
    store.add_usage("s1", "k1", "alice", 5.0, t0 + 10)
    store.add_usage("s1", "k1", "alice", 5.0, t0 + 15)
    store.add_usage("s2", "k2", "bob", 2.5, t0 + 20)
    store.add_usage("s2", "k2", "bob", 0.0, t0 + 21)  # nothing to add
    store.close()

    store = Store(db)  # a server restart keeps what was booked, and adds to it
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


def test_two_connections_see_each_other(tmp_path: Path) -> None:
    # The CLI creates keys while a server runs: WAL lets both use the file at once.
    server, cli = Store(tmp_path / "a.db"), Store(tmp_path / "a.db")
    appkey, token = cli.create_key("late", 1)
    assert server.accesstoken_of(appkey) == token
    cli.revoke_key(appkey)
    assert server.accesstoken_of(appkey) is None
    server.close()
    cli.close()
