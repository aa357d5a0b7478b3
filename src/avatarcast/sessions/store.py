"""What outlives a restart: API keys, projects and usage records, in one SQLite file.

Sessions themselves live in memory (`SessionManager`). The file sits in the data directory
(`Settings.db_path`, `<data_dir>/avatarcast.db`) and is opened in WAL mode so the CLI can read
and write keys while a server runs. One connection guarded by a lock: every statement is short,
and the server calls these methods from its event loop thread as well as from helpers.

Usage is kept per session and per hour (`hour_unix`), added as it accrues: a crash loses at most
one ticker period, and `--since` filtering is exact to the hour, which is how it is billed.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_SCHEMA = """
CREATE TABLE IF NOT EXISTS keys (
    appkey TEXT PRIMARY KEY,
    accesstoken TEXT NOT NULL,
    name TEXT NOT NULL,
    max_sessions INTEGER NOT NULL,
    revoked INTEGER NOT NULL DEFAULT 0,
    created_unix REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS projects (
    project_id TEXT PRIMARY KEY,
    appkey TEXT,                      -- NULL: usable by every key
    name TEXT NOT NULL,
    asset_key TEXT NOT NULL,
    defaults TEXT NOT NULL,           -- JSON object, e.g. {"voice": "cmn"}
    created_unix REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS usage (
    session_id TEXT NOT NULL,
    hour_unix INTEGER NOT NULL,       -- start of the hour the seconds were streamed in
    appkey TEXT NOT NULL,
    user_id TEXT NOT NULL,
    started_unix REAL NOT NULL,
    seconds REAL NOT NULL,
    PRIMARY KEY (session_id, hour_unix)
);
CREATE INDEX IF NOT EXISTS usage_by_key ON usage (appkey, hour_unix);
"""


@dataclass(frozen=True)
class KeyInfo:
    """A key as listed: everything but the secret."""

    appkey: str
    name: str
    max_sessions: int
    revoked: bool
    created_unix: float

    def to_json(self) -> dict[str, Any]:
        return {
            "appkey": self.appkey,
            "name": self.name,
            "max_sessions": self.max_sessions,
            "revoked": self.revoked,
            "created_unix": self.created_unix,
        }


@dataclass(frozen=True)
class Project:
    """`VirtualmanProjectId` → an avatar and defaults (ours: the cloud documents nothing)."""

    project_id: str
    name: str
    asset_key: str
    appkey: str | None = None
    defaults: dict[str, Any] = field(default_factory=dict)
    created_unix: float = 0.0

    @property
    def voice(self) -> str | None:
        v = self.defaults.get("voice")
        return v if isinstance(v, str) else None

    def to_json(self) -> dict[str, Any]:
        return {
            "project_id": self.project_id,
            "name": self.name,
            "avatar": self.asset_key,
            "appkey": self.appkey,
            "defaults": self.defaults,
            "created_unix": self.created_unix,
        }


@dataclass(frozen=True)
class SessionUsage:
    appkey: str
    session_id: str
    user_id: str
    started_unix: float
    seconds: float


@dataclass(frozen=True)
class UsageReport:
    """Seconds streamed per key (totals) and per session, within the asked window."""

    keys: dict[str, float]
    sessions: list[SessionUsage]


def _hex32() -> str:
    return secrets.token_hex(16)


class Store:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        # check_same_thread=False: the lock, not the thread, serialises access.
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA busy_timeout=5000")  # the CLI may write while a server runs
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _query(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return list(self._db.execute(sql, args).fetchall())

    # ---- keys ---------------------------------------------------------------------------
    def create_key(self, name: str, max_sessions: int, now_unix: float = 0.0) -> tuple[str, str]:
        """A new (appkey, accesstoken) pair, 32 hex characters each."""
        if max_sessions < 1:
            raise ValueError("max_sessions must be at least 1")
        appkey, token = _hex32(), _hex32()
        with self._tx() as db:
            db.execute(
                "INSERT INTO keys (appkey, accesstoken, name, max_sessions, revoked, created_unix)"
                " VALUES (?, ?, ?, ?, 0, ?)",
                (appkey, token, name, max_sessions, now_unix),
            )
        return appkey, token

    def list_keys(self) -> list[KeyInfo]:
        rows = self._query(
            "SELECT appkey, name, max_sessions, revoked, created_unix FROM keys "
            "ORDER BY created_unix, appkey"
        )
        return [KeyInfo(r[0], r[1], int(r[2]), bool(r[3]), float(r[4])) for r in rows]

    def revoke_key(self, appkey: str) -> bool:
        """Revoke a key; False when there is no such key."""
        with self._tx() as db:
            cur = db.execute("UPDATE keys SET revoked = 1 WHERE appkey = ?", (appkey,))
            return cur.rowcount > 0

    def accesstoken_of(self, appkey: str) -> str | None:
        """The secret of a live key; None when unknown or revoked."""
        rows = self._query(
            "SELECT accesstoken FROM keys WHERE appkey = ? AND revoked = 0", (appkey,)
        )
        return str(rows[0][0]) if rows else None

    def max_sessions_of(self, appkey: str) -> int:
        rows = self._query("SELECT max_sessions FROM keys WHERE appkey = ?", (appkey,))
        return int(rows[0][0]) if rows else 0

    # ---- projects -----------------------------------------------------------------------
    def create_project(
        self,
        name: str,
        asset_key: str,
        *,
        voice: str | None = None,
        appkey: str | None = None,
        defaults: dict[str, Any] | None = None,
        now_unix: float = 0.0,
    ) -> Project:
        merged = dict(defaults or {})
        if voice:
            merged["voice"] = voice
        project = Project(_hex32(), name, asset_key, appkey, merged, now_unix)
        with self._tx() as db:
            db.execute(
                "INSERT INTO projects (project_id, appkey, name, asset_key, defaults, created_unix)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (project.project_id, appkey, name, asset_key, json.dumps(merged), now_unix),
            )
        return project

    def _project(self, row: tuple[Any, ...]) -> Project:
        return Project(row[0], row[2], row[3], row[1], json.loads(row[4]), float(row[5]))

    def get_project(self, project_id: str) -> Project | None:
        rows = self._query(
            "SELECT project_id, appkey, name, asset_key, defaults, created_unix FROM projects "
            "WHERE project_id = ?",
            (project_id,),
        )
        return self._project(rows[0]) if rows else None

    def list_projects(self) -> list[Project]:
        rows = self._query(
            "SELECT project_id, appkey, name, asset_key, defaults, created_unix FROM projects "
            "ORDER BY created_unix, project_id"
        )
        return [self._project(r) for r in rows]

    # ---- usage --------------------------------------------------------------------------
    def add_usage(
        self, session_id: str, appkey: str, user_id: str, seconds: float, now_unix: float
    ) -> None:
        """Add `seconds` streamed by a session, booked to the hour containing `now_unix`."""
        if seconds <= 0:
            return
        hour = int(now_unix // 3600 * 3600)
        with self._tx() as db:
            started = db.execute(
                "SELECT MIN(started_unix) FROM usage WHERE session_id = ?", (session_id,)
            ).fetchone()[0]
            db.execute(
                "INSERT INTO usage (session_id, hour_unix, appkey, user_id, started_unix, seconds)"
                " VALUES (?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (session_id, hour_unix) DO UPDATE SET seconds = seconds + ?",
                (
                    session_id,
                    hour,
                    appkey,
                    user_id,
                    started if started is not None else now_unix - seconds,
                    seconds,
                    seconds,
                ),
            )

    def usage(self, appkey: str | None = None, since_unix: float | None = None) -> UsageReport:
        """Seconds per session and per key, optionally for one key and from an hour on."""
        where: list[str] = []
        args: list[str | int] = []
        if appkey is not None:
            where.append("appkey = ?")
            args.append(appkey)
        if since_unix is not None:
            where.append("hour_unix >= ?")
            args.append(int(since_unix // 3600 * 3600))
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        rows = self._query(
            "SELECT appkey, session_id, user_id, MIN(started_unix), SUM(seconds) FROM usage "
            f"{clause} GROUP BY session_id ORDER BY MIN(started_unix), session_id",
            tuple(args),
        )
        sessions = [SessionUsage(r[0], r[1], r[2], float(r[3]), float(r[4])) for r in rows]
        keys: dict[str, float] = {}
        for s in sessions:
            keys[s.appkey] = keys.get(s.appkey, 0.0) + s.seconds
        return UsageReport(keys, sessions)
