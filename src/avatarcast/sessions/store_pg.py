"""The store in PostgreSQL: what the API processes of a cluster share.

Same tables and semantics as `SqliteStore` (the SQL lives in `store_sql`). One connection
guarded by a lock, autocommit off: every method is one explicit transaction, committed at its
end. Where SQLite serialises writers with `BEGIN IMMEDIATE`, this one locks rows
(`SELECT ... FOR UPDATE`): the key's row while its quota is checked, a session's row while its
usage is booked or it is ended. The schema is created if missing, under an advisory lock so
processes starting together do not race.

A lost connection (the server restarted, an idle connection cut) is reopened once: the
transaction that found it lost is run again on the new one. A transaction whose COMMIT was
sent when the connection broke is not run again (it may have committed); that error is raised.
The URL's password never appears in a log line or an error of ours (`redact_url`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

import psycopg

from avatarcast.sessions.store_sql import SCHEMA, SqlStore, T, Tx, redact_url

log = logging.getLogger(__name__)

_SCHEMA_LOCK = 0x61766174  # pg_advisory_xact_lock key of the schema creation ("avat")
CONNECT_TIMEOUT_S = 10


class _PgTx(Tx):
    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self._conn = conn

    def _execute(self, sql: str, args: Sequence[Any]) -> Any:
        # store_sql writes `?` placeholders and never a literal `?` or `%`.
        return self._conn.execute(sql.replace("?", "%s"), tuple(args))


class PgStore(SqlStore):
    def __init__(self, url: str) -> None:
        self.url = url
        self.safe_url = redact_url(url)
        self._lock = threading.Lock()
        self._closed = False
        self._conn: psycopg.Connection[Any] | None = self._connect()
        self._run(self._create_schema)

    def __repr__(self) -> str:
        return f"PgStore({self.safe_url!r})"

    def _connect(self) -> psycopg.Connection[Any]:
        return psycopg.connect(self.url, autocommit=False, connect_timeout=CONNECT_TIMEOUT_S)

    @staticmethod
    def _create_schema(tx: Tx) -> None:
        tx.one("SELECT pg_advisory_xact_lock(?)", (_SCHEMA_LOCK,))
        for statement in SCHEMA.format(real="DOUBLE PRECISION", bigint="BIGINT").split(";"):
            if statement.strip():
                tx.run(statement)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def _locked(self, select: str) -> str:
        return select + " FOR UPDATE"

    def _run(self, fn: Callable[[Tx], T], *, write: bool = True) -> T:
        with self._lock:
            if self._closed:
                raise psycopg.InterfaceError(f"{self!r} is closed")
            for attempt in (1, 2):
                if self._conn is None or self._conn.closed or self._conn.broken:
                    if self._conn is not None:
                        self._conn.close()
                    self._conn = None  # a failed connect leaves none, the next call retries
                    self._conn = self._connect()
                conn = self._conn
                committing = False
                try:
                    result = fn(_PgTx(conn))
                    committing = True
                    conn.commit()
                    return result
                except psycopg.OperationalError:
                    lost = conn.closed or conn.broken
                    if not lost:
                        conn.rollback()
                    if lost and attempt == 1 and not committing:
                        log.warning("store: connection to %s lost; reconnecting", self.safe_url)
                        continue
                    raise
                except BaseException:
                    if not (conn.closed or conn.broken):
                        conn.rollback()
                    raise
            raise AssertionError("unreachable")
