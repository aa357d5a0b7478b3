"""The store in one SQLite file: the default, for a single server.

The file sits in the data directory (`Settings.db_path`, `<data_dir>/avatarcast.db`) and is
opened in WAL mode so the CLI can read and write keys while a server runs. One connection
guarded by a lock: every statement is short, and the server calls these methods from its event
loop thread as well as from helpers. Writes run in `BEGIN IMMEDIATE` transactions, which take
the file's write lock at once: that serialises writers across processes, the quota check of
`create_session` included.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from avatarcast.sessions.store_sql import SCHEMA, SqlStore, T, Tx


class _SqliteTx(Tx):
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def _execute(self, sql: str, args: Sequence[Any]) -> Any:
        return self._db.execute(sql, tuple(args))


class SqliteStore(SqlStore):
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        # check_same_thread=False: the lock, not the thread, serialises access.
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA busy_timeout=5000")  # the CLI may write while a server runs
        self._db.executescript(SCHEMA.format(real="REAL", bigint="INTEGER"))

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _run(self, fn: Callable[[Tx], T], *, write: bool = True) -> T:
        with self._lock:
            tx = _SqliteTx(self._db)
            if not write:  # autocommit: each statement reads a consistent snapshot
                return fn(tx)
            self._db.execute("BEGIN IMMEDIATE")
            try:
                result = fn(tx)
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
            return result
