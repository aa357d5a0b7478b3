"""`avatarcast keys|projects|usage` through `python -m avatarcast`: JSON out, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from avatarcast.sessions.store_sqlite import SqliteStore


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "avatarcast", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_keys_create_list_revoke(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    created = _run("keys", "create", "--name", "acme", "--max-sessions", "2", "--data-dir", data)
    assert created.returncode == 0, created.stderr
    key = json.loads(created.stdout)
    assert len(key["appkey"]) == 32 and len(key["accesstoken"]) == 32
    assert key["max_sessions"] == 2 and key["name"] == "acme"

    default = json.loads(_run("keys", "create", "--name", "b", "--data-dir", data).stdout)
    assert default["max_sessions"] == 4  # the default_max_sessions setting

    listed = _run("keys", "list", "--data-dir", data)
    assert listed.returncode == 0
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [r["appkey"] for r in rows] == [key["appkey"], default["appkey"]]
    assert key["accesstoken"] not in listed.stdout  # never the secret
    assert rows[0] == {**rows[0], "name": "acme", "max_sessions": 2, "revoked": False}

    revoked = _run("keys", "revoke", key["appkey"], "--data-dir", data)
    assert revoked.returncode == 0
    assert json.loads(revoked.stdout) == {"appkey": key["appkey"], "revoked": True}
    store = SqliteStore(Path(data) / "avatarcast.db")  # the server would now refuse this key
    assert store.accesstoken_of(key["appkey"]) is None
    assert store.accesstoken_of(default["appkey"]) == default["accesstoken"]
    store.close()


def test_keys_errors_exit_2_with_one_line(tmp_path: Path) -> None:
    data = str(tmp_path)
    unknown = _run("keys", "revoke", "0" * 32, "--data-dir", data)
    assert unknown.returncode == 2
    assert unknown.stderr.strip() == f"avatarcast: error: no key '{'0' * 32}'"
    zero = _run("keys", "create", "--name", "x", "--max-sessions", "0", "--data-dir", data)
    assert zero.returncode == 2 and "max-sessions" in zero.stderr
    no_name = _run("keys", "create", "--data-dir", data)
    assert no_name.returncode == 2 and "--name" in no_name.stderr


def test_projects_and_usage(tmp_path: Path) -> None:
    data = str(tmp_path)
    made = _run(
        "projects",
        "create",
        "--name",
        "shop",
        "--avatar",
        "default",
        "--voice",
        "cmn",
        "--data-dir",
        data,
    )
    assert made.returncode == 0, made.stderr
    project = json.loads(made.stdout)
    assert project["avatar"] == "default" and project["defaults"] == {"voice": "cmn"}
    listed = [
        json.loads(x) for x in _run("projects", "list", "--data-dir", data).stdout.split("\n") if x
    ]
    assert [p["project_id"] for p in listed] == [project["project_id"]]
    bad = _run("projects", "create", "--name", "x", "--avatar", "nobody", "--data-dir", data)
    assert bad.returncode == 2 and "nobody" in bad.stderr

    store = SqliteStore(tmp_path / "avatarcast.db")
    store.add_usage("s1", "k1", "alice", 12.5, 1_800_000_000.0)
    store.close()
    usage = _run("usage", "--data-dir", data, "--since", "2020-01-01")
    lines = [json.loads(x) for x in usage.stdout.splitlines()]
    assert lines[0]["session_id"] == "s1" and lines[0]["seconds"] == 12.5
    assert lines[-1] == {"appkey": "k1", "total_s": 12.5}
    assert _run("usage", "--data-dir", data, "--since", "2030-01-01").stdout == ""
    assert _run("usage", "--data-dir", data, "--since", "yesterday").returncode == 2
    table = _run("usage", "--data-dir", data, "--table", "--key", "k1").stdout
    assert "(total)" in table and "12.5" in table
