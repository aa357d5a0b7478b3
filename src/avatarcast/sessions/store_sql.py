"""What every SQL store does, written once: keys, projects, usage and the session table.

A backend (`store_sqlite.SqliteStore`, `store_pg.PgStore`) brings the connection and the
transactions: `_run(fn)` calls `fn` with a `Tx` inside one transaction (committed when `fn`
returns, rolled back when it raises), and `_locked(sql)` adds the row lock of its dialect to
a SELECT (`FOR UPDATE` on PostgreSQL; SQLite's `BEGIN IMMEDIATE` already serialises writers).
SQL here is written with `?` placeholders and portable types; `Tx` adapts them.

Usage is kept per session and per hour (`hour_unix`), added as it accrues: a crash loses at most
one ticker period, and `--since` filtering is exact to the hour, which is how it is billed.

The session table is what the API processes of a cluster share: the quota check and the
replacement of a UserId's stream happen in one transaction with the key serialised, and a
session's usage is booked under its row lock (`metered_unix` says how far), so two processes
that meter or end the same session at once count each second once.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Sequence
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

from avatarcast.codes import SESSION_REPLACED
from avatarcast.errors import QuotaError
from avatarcast.sessions.store_types import (
    OPEN_STATUSES,
    STATUS_CLOSED,
    STATUS_PREPARING,
    STATUS_READY,
    KeyInfo,
    Project,
    SessionRecord,
    SessionUsage,
    UsageReport,
)

T = TypeVar("T")
Row = tuple[Any, ...]

# {real}: a float column (SQLite REAL is 8 bytes; PostgreSQL's REAL is 4, so DOUBLE PRECISION);
# {bigint}: an integer that may pass 2^31 (Unix hours).
SCHEMA = """
CREATE TABLE IF NOT EXISTS keys (
    appkey TEXT PRIMARY KEY,
    accesstoken TEXT NOT NULL,
    name TEXT NOT NULL,
    max_sessions INTEGER NOT NULL,
    revoked INTEGER NOT NULL DEFAULT 0,
    created_unix {real} NOT NULL
);
CREATE TABLE IF NOT EXISTS projects (
    project_id TEXT PRIMARY KEY,
    appkey TEXT,                      -- NULL: usable by every key
    name TEXT NOT NULL,
    asset_key TEXT NOT NULL,
    defaults TEXT NOT NULL,           -- JSON object, e.g. {{"voice": "cmn"}}
    created_unix {real} NOT NULL
);
CREATE TABLE IF NOT EXISTS usage (
    session_id TEXT NOT NULL,
    hour_unix {bigint} NOT NULL,      -- start of the hour the seconds were streamed in
    appkey TEXT NOT NULL,
    user_id TEXT NOT NULL,
    started_unix {real} NOT NULL,
    seconds {real} NOT NULL,
    PRIMARY KEY (session_id, hour_unix)
);
CREATE INDEX IF NOT EXISTS usage_by_key ON usage (appkey, hour_unix);
CREATE TABLE IF NOT EXISTS sessions (
    session_id TEXT PRIMARY KEY,
    appkey TEXT NOT NULL,
    user_id TEXT NOT NULL,
    asset_key TEXT NOT NULL,
    protocol TEXT NOT NULL,
    driver_type INTEGER NOT NULL,
    project_id TEXT,
    status INTEGER NOT NULL,          -- 3 preparing, 1 ready, 2 closed, 4 failed
    started INTEGER NOT NULL,
    created_unix {real} NOT NULL,
    last_activity_unix {real} NOT NULL,
    error_code INTEGER NOT NULL,
    error_message TEXT NOT NULL,
    alpha INTEGER NOT NULL,
    stream_max_interval_ms INTEGER NOT NULL,
    voice TEXT,
    extra TEXT NOT NULL,              -- JSON object
    play_url TEXT NOT NULL,
    play_token TEXT NOT NULL,
    worker TEXT NOT NULL,             -- media worker holding its media, "" until placed
    node TEXT NOT NULL,
    metered_unix {real} NOT NULL,     -- usage booked up to here (0 until ready)
    ended_unix {real} NOT NULL        -- 0 while open
);
CREATE INDEX IF NOT EXISTS sessions_by_key ON sessions (appkey, status);
"""

_SESSION_COLUMNS = (
    "session_id, appkey, user_id, asset_key, protocol, driver_type, project_id, status, "
    "started, created_unix, last_activity_unix, error_code, error_message, alpha, "
    "stream_max_interval_ms, voice, extra, play_url, play_token, worker, node, metered_unix, "
    "ended_unix"
)
_IDS_PER_QUERY = 500  # SQLite allows 999 parameters in a statement (before 3.32)
_OPEN = f"status IN ({', '.join(str(s) for s in OPEN_STATUSES)})"


def _hex32() -> str:
    return secrets.token_hex(16)


def _hour(unix: float) -> int:
    return int(unix // 3600 * 3600)


def redact_url(url: str) -> str:
    """`url` without its password (`postgresql://user:***@host/db`), for logs and errors."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        host = parts.netloc.rpartition("@")[2]
        return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))
    except ValueError:  # not a URL we can take apart: show only its scheme
        return url.partition("://")[0] + "://***"


class Tx:
    """Statements inside one transaction; a backend implements `_execute`."""

    def _execute(self, sql: str, args: Sequence[Any]) -> Any:  # a DB-API cursor
        raise NotImplementedError

    def rows(self, sql: str, args: Sequence[Any] = ()) -> list[Row]:
        return [tuple(r) for r in self._execute(sql, args).fetchall()]

    def one(self, sql: str, args: Sequence[Any] = ()) -> Row | None:
        row = self._execute(sql, args).fetchone()
        return tuple(row) if row is not None else None

    def run(self, sql: str, args: Sequence[Any] = ()) -> int:
        """Execute a statement; the number of rows it changed."""
        return int(self._execute(sql, args).rowcount)


def session_from_row(r: Row) -> SessionRecord:
    return SessionRecord(
        session_id=r[0],
        appkey=r[1],
        user_id=r[2],
        asset_key=r[3],
        protocol=r[4],
        driver_type=int(r[5]),
        project_id=r[6],
        status=int(r[7]),
        started=bool(r[8]),
        created_unix=float(r[9]),
        last_activity_unix=float(r[10]),
        error_code=int(r[11]),
        error_message=r[12],
        alpha=bool(r[13]),
        stream_max_interval_ms=int(r[14]),
        voice=r[15],
        extra=json.loads(r[16]),
        play_url=r[17],
        play_token=r[18],
        worker=r[19],
        node=r[20],
        metered_unix=float(r[21]),
        ended_unix=float(r[22]),
    )


def _session_values(s: SessionRecord) -> tuple[Any, ...]:
    return (
        s.session_id,
        s.appkey,
        s.user_id,
        s.asset_key,
        s.protocol,
        int(s.driver_type),
        s.project_id,
        int(s.status),
        int(s.started),
        float(s.created_unix),
        float(s.last_activity_unix),
        int(s.error_code),
        s.error_message,
        int(s.alpha),
        int(s.stream_max_interval_ms),
        s.voice,
        json.dumps(s.extra),
        s.play_url,
        s.play_token,
        s.worker,
        s.node,
        float(s.metered_unix),
        float(s.ended_unix),
    )


class SqlStore:
    """The `Store` methods over a backend's `_run`; see the module docstring."""

    def _run(self, fn: Callable[[Tx], T], *, write: bool = True) -> T:
        raise NotImplementedError

    def _locked(self, select: str) -> str:
        """`select` with the row lock of this dialect (none where transactions serialise)."""
        return select

    def close(self) -> None:
        raise NotImplementedError

    # ---- keys ---------------------------------------------------------------------------
    def create_key(self, name: str, max_sessions: int, now_unix: float = 0.0) -> tuple[str, str]:
        """A new (appkey, accesstoken) pair, 32 hex characters each."""
        if max_sessions < 1:
            raise ValueError("max_sessions must be at least 1")
        appkey, token = _hex32(), _hex32()
        self._run(
            lambda tx: tx.run(
                "INSERT INTO keys (appkey, accesstoken, name, max_sessions, revoked, created_unix)"
                " VALUES (?, ?, ?, ?, 0, ?)",
                (appkey, token, name, max_sessions, float(now_unix)),
            )
        )
        return appkey, token

    def list_keys(self) -> list[KeyInfo]:
        rows = self._run(
            lambda tx: tx.rows(
                "SELECT appkey, name, max_sessions, revoked, created_unix FROM keys "
                "ORDER BY created_unix, appkey"
            ),
            write=False,
        )
        return [KeyInfo(r[0], r[1], int(r[2]), bool(r[3]), float(r[4])) for r in rows]

    def revoke_key(self, appkey: str) -> bool:
        """Revoke a key; False when there is no such key."""
        changed = self._run(
            lambda tx: tx.run("UPDATE keys SET revoked = 1 WHERE appkey = ?", (appkey,))
        )
        return changed > 0

    def accesstoken_of(self, appkey: str) -> str | None:
        """The secret of a live key; None when unknown or revoked."""
        row = self._run(
            lambda tx: tx.one(
                "SELECT accesstoken FROM keys WHERE appkey = ? AND revoked = 0", (appkey,)
            ),
            write=False,
        )
        return str(row[0]) if row else None

    def max_sessions_of(self, appkey: str) -> int:
        row = self._run(
            lambda tx: tx.one("SELECT max_sessions FROM keys WHERE appkey = ?", (appkey,)),
            write=False,
        )
        return int(row[0]) if row else 0

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
        self._run(
            lambda tx: tx.run(
                "INSERT INTO projects (project_id, appkey, name, asset_key, defaults, created_unix)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (project.project_id, appkey, name, asset_key, json.dumps(merged), float(now_unix)),
            )
        )
        return project

    @staticmethod
    def _project(row: Row) -> Project:
        return Project(row[0], row[2], row[3], row[1], json.loads(row[4]), float(row[5]))

    def get_project(self, project_id: str) -> Project | None:
        row = self._run(
            lambda tx: tx.one(
                "SELECT project_id, appkey, name, asset_key, defaults, created_unix FROM projects "
                "WHERE project_id = ?",
                (project_id,),
            ),
            write=False,
        )
        return self._project(row) if row else None

    def list_projects(self) -> list[Project]:
        rows = self._run(
            lambda tx: tx.rows(
                "SELECT project_id, appkey, name, asset_key, defaults, created_unix FROM projects "
                "ORDER BY created_unix, project_id"
            ),
            write=False,
        )
        return [self._project(r) for r in rows]

    # ---- usage --------------------------------------------------------------------------
    def add_usage(
        self, session_id: str, appkey: str, user_id: str, seconds: float, now_unix: float
    ) -> None:
        """Add `seconds` streamed by a session, booked to the hour containing `now_unix`."""
        if seconds <= 0:
            return
        self._run(lambda tx: self._book(tx, session_id, appkey, user_id, seconds, now_unix))

    @staticmethod
    def _book(
        tx: Tx, session_id: str, appkey: str, user_id: str, seconds: float, now_unix: float
    ) -> None:
        # A session's first booking sets its start (now - seconds); later rows, of later
        # hours, copy it.
        tx.run(
            "INSERT INTO usage (session_id, hour_unix, appkey, user_id, started_unix, seconds)"
            " VALUES (?, ?, ?, ?,"
            " COALESCE((SELECT MIN(started_unix) FROM usage WHERE session_id = ?), ?), ?)"
            " ON CONFLICT (session_id, hour_unix)"
            " DO UPDATE SET seconds = usage.seconds + excluded.seconds",
            (
                session_id,
                _hour(now_unix),
                appkey,
                user_id,
                session_id,
                float(now_unix - seconds),
                float(seconds),
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
            args.append(_hour(since_unix))
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        # appkey and user_id are the same on every row of a session: grouping by them too
        # changes nothing, and PostgreSQL wants every selected column grouped.
        rows = self._run(
            lambda tx: tx.rows(
                "SELECT appkey, session_id, user_id, MIN(started_unix), SUM(seconds) FROM usage "
                f"{clause} GROUP BY session_id, appkey, user_id "
                "ORDER BY MIN(started_unix), session_id",
                tuple(args),
            ),
            write=False,
        )
        sessions = [SessionUsage(r[0], r[1], r[2], float(r[3]), float(r[4])) for r in rows]
        keys: dict[str, float] = {}
        for s in sessions:
            keys[s.appkey] = keys.get(s.appkey, 0.0) + s.seconds
        return UsageReport(keys, sessions)

    # ---- sessions -----------------------------------------------------------------------
    def create_session(self, rec: SessionRecord) -> list[SessionRecord]:
        """Insert a new session within its key's quota, ending the open ones of its UserId.

        One transaction with the key serialised: open sessions of other UserIds count against
        `max_sessions` (QuotaError when full); those of the same UserId are closed with
        SESSION_REPLACED, their usage booked up to `rec.created_unix`. Returns them as they
        were before (the caller stops their media).
        """

        def create(tx: Tx) -> list[SessionRecord]:
            key = tx.one(
                self._locked("SELECT max_sessions FROM keys WHERE appkey = ?"), (rec.appkey,)
            )
            limit = int(key[0]) if key else 0
            mine = [
                session_from_row(r)
                for r in tx.rows(
                    self._locked(
                        f"SELECT {_SESSION_COLUMNS} FROM sessions WHERE appkey = ? AND {_OPEN} "
                        "ORDER BY session_id"
                    ),
                    (rec.appkey,),
                )
            ]
            replaced = [s for s in mine if s.user_id == rec.user_id]
            if len(mine) - len(replaced) >= limit:
                raise QuotaError(f"this key may have {limit} open session(s); close one first")
            message = f"closed: a new stream was created for UserId {rec.user_id!r}"
            for old in replaced:
                self._end_locked(
                    tx, old, STATUS_CLOSED, SESSION_REPLACED, message, rec.created_unix, None
                )
            tx.run(
                f"INSERT INTO sessions ({_SESSION_COLUMNS}) VALUES "
                f"({', '.join('?' * len(_SESSION_COLUMNS.split(',')))})",
                _session_values(rec),
            )
            return replaced

        return self._run(create)

    def get_session(self, session_id: str) -> SessionRecord | None:
        row = self._run(
            lambda tx: tx.one(
                f"SELECT {_SESSION_COLUMNS} FROM sessions WHERE session_id = ?", (session_id,)
            ),
            write=False,
        )
        return session_from_row(row) if row else None

    def list_sessions(
        self, appkey: str | None = None, *, open_only: bool = True
    ) -> list[SessionRecord]:
        """Sessions, oldest first: of one key or all, open ones only unless `open_only=False`."""
        where: list[str] = [_OPEN] if open_only else []
        args: list[str] = []
        if appkey is not None:
            where.append("appkey = ?")
            args.append(appkey)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        rows = self._run(
            lambda tx: tx.rows(
                f"SELECT {_SESSION_COLUMNS} FROM sessions {clause} "
                "ORDER BY created_unix, session_id",
                tuple(args),
            ),
            write=False,
        )
        return [session_from_row(r) for r in rows]

    def mark_ready(self, session_id: str, now_unix: float) -> bool:
        """Preparing → ready, usage metered from `now_unix`; False (no change) if not preparing."""
        changed = self._run(
            lambda tx: tx.run(
                "UPDATE sessions SET status = ?, metered_unix = ? "
                "WHERE session_id = ? AND status = ?",
                (STATUS_READY, float(now_unix), session_id, STATUS_PREPARING),
            )
        )
        return changed > 0

    def set_worker(self, session_id: str, worker: str, node: str) -> None:
        self._run(
            lambda tx: tx.run(
                "UPDATE sessions SET worker = ?, node = ? WHERE session_id = ?",
                (worker, node, session_id),
            )
        )

    def set_started(self, session_id: str) -> None:
        self._run(
            lambda tx: tx.run("UPDATE sessions SET started = 1 WHERE session_id = ?", (session_id,))
        )

    def touch_session(self, session_id: str, now_unix: float) -> None:
        self._run(
            lambda tx: tx.run(
                "UPDATE sessions SET last_activity_unix = ? WHERE session_id = ?",
                (float(now_unix), session_id),
            )
        )

    def end_session(
        self,
        session_id: str,
        status: int,
        code: int,
        message: str,
        now_unix: float,
        *,
        usage_until_unix: float | None = None,
    ) -> SessionRecord | None:
        """End an open session (status 2 closed or 4 failed), booking its unmetered usage up
        to `usage_until_unix` (default `now_unix`) if it was ready. The record as it was
        before; None when it was not open (another process ended it first) or is unknown."""
        if status in OPEN_STATUSES:
            raise ValueError(f"a session ends as closed (2) or failed (4), not {status}")

        def end(tx: Tx) -> SessionRecord | None:
            row = tx.one(
                self._locked(f"SELECT {_SESSION_COLUMNS} FROM sessions WHERE session_id = ?"),
                (session_id,),
            )
            if row is None:
                return None
            old = session_from_row(row)
            if not old.is_open:
                return None
            self._end_locked(tx, old, status, code, message, now_unix, usage_until_unix)
            return old

        return self._run(end)

    def _end_locked(
        self,
        tx: Tx,
        old: SessionRecord,
        status: int,
        code: int,
        message: str,
        now_unix: float,
        usage_until_unix: float | None,
    ) -> None:
        """End `old` (an open session whose row this transaction holds)."""
        metered = old.metered_unix
        if old.status == STATUS_READY:
            until = now_unix if usage_until_unix is None else usage_until_unix
            seconds = until - old.metered_unix
            if seconds > 0:
                self._book(tx, old.session_id, old.appkey, old.user_id, seconds, until)
                metered = until
        tx.run(
            "UPDATE sessions SET status = ?, error_code = ?, error_message = ?, ended_unix = ?, "
            "metered_unix = ? WHERE session_id = ?",
            (int(status), int(code), message, float(now_unix), float(metered), old.session_id),
        )

    def meter_sessions(self, session_ids: list[str], now_unix: float) -> float:
        """Book the usage of the ready ones among `session_ids` up to `now_unix`; the seconds
        booked in all. Each row is locked while booked, so processes metering the same session
        at once count each second once (one that comes later books only what is left)."""
        ids = sorted(set(session_ids))  # one lock order for every process: no deadlock
        if not ids:
            return 0.0

        def meter(tx: Tx) -> float:
            total = 0.0
            for first in range(0, len(ids), _IDS_PER_QUERY):
                chunk = ids[first : first + _IDS_PER_QUERY]
                rows = tx.rows(
                    self._locked(
                        "SELECT session_id, appkey, user_id, metered_unix FROM sessions "
                        f"WHERE session_id IN ({', '.join('?' * len(chunk))}) AND status = ? "
                        "ORDER BY session_id"
                    ),
                    (*chunk, STATUS_READY),
                )
                for sid, appkey, user_id, metered in rows:
                    seconds = now_unix - float(metered)
                    if seconds <= 0:
                        continue
                    self._book(tx, sid, appkey, user_id, seconds, now_unix)
                    tx.run(
                        "UPDATE sessions SET metered_unix = ? WHERE session_id = ?",
                        (float(now_unix), sid),
                    )
                    total += seconds
            return total

        return self._run(meter)

    def forget_sessions(self, ended_before_unix: float) -> int:
        """Delete the rows of sessions that ended before `ended_before_unix`; how many."""
        return self._run(
            lambda tx: tx.run(
                f"DELETE FROM sessions WHERE NOT ({_OPEN}) AND ended_unix < ?",
                (float(ended_before_unix),),
            )
        )
