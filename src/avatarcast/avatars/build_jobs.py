"""Avatar build jobs: the `Job` record and its `avatar_jobs` table in the server's SQLite file.

Stages (`StageV2`, spec section 4) on the builders' phases:

    SUBMIT   queued, waiting for a worker                       progress 0
    PROCESS  photo: decoding, quality checks, framing;          progress of the builder's steps
             video: checks, face tracking
    TRAIN    photo: rigging, mouth shapes, blinks, saving;      progress of the builder's steps
             video: cutting the loop, rigging, mouth shapes, saving
    CONFIRM  built, waiting for `customerconfirm`; not listed    100, Status SUCCESS
    END      confirmed: `<data_dir>/avatars/<AssetVirtualmanKey>/`, usable by createsessionbyasset

`Status` is MAKING until CONFIRM, then SUCCESS; FAIL (with `FailMessage`, the quality check's
plain-language reason) at the stage where the build stopped. The build worker writes a job's
progress straight into the database (WAL mode), on its own connection.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from avatarcast.errors import InputError

MAKING, SUCCESS, FAIL = "MAKING", "SUCCESS", "FAIL"
STAGES = ("SUBMIT", "PROCESS", "TRAIN", "CONFIRM", "END")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS avatar_jobs (
    task_id TEXT PRIMARY KEY,
    appkey TEXT NOT NULL,
    name TEXT NOT NULL,               -- VirtualmanName as given
    asset_key TEXT NOT NULL,          -- AssetVirtualmanKey: the asset directory's name
    background TEXT NOT NULL,
    status TEXT NOT NULL,             -- MAKING | SUCCESS | FAIL
    stage TEXT NOT NULL,              -- SUBMIT | PROCESS | TRAIN | CONFIRM | END
    progress INTEGER NOT NULL,        -- 0..100
    fail_reason TEXT NOT NULL DEFAULT '',
    fail_message TEXT NOT NULL DEFAULT '',
    created_unix REAL NOT NULL,
    updated_unix REAL NOT NULL,
    warnings TEXT NOT NULL DEFAULT ''  -- JSON list of {code, message}: quality warnings
);
CREATE INDEX IF NOT EXISTS avatar_jobs_by_asset ON avatar_jobs (asset_key);
"""


class TaskNotFound(InputError):
    """No such TaskId for this key (another key's tasks are not found either)."""

    code = "avatar_task_not_found"


@dataclass(frozen=True)
class Job:
    task_id: str
    appkey: str
    name: str
    asset_key: str
    background: str
    status: str
    stage: str
    progress: int
    fail_reason: str
    fail_message: str
    created_unix: float
    updated_unix: float
    warnings: str = ""  # JSON list of the build's quality warnings ({code, message})

    def to_payload(self) -> dict[str, Any]:
        """The getprogress Payload."""
        out: dict[str, Any] = {
            "TaskId": self.task_id,
            "Status": self.status,
            "StageV2": self.stage,
            "Progress": self.progress,
            "FailMessage": self.fail_message,
            "FailReason": self.fail_reason,  # ours: the quality check's stable code
            "VirtualmanName": self.name,
            # ours: what would make a better avatar (the build went on), with the fix
            "Warnings": [
                {"Code": w["code"], "Message": w["message"]}
                for w in (json.loads(self.warnings) if self.warnings else [])
            ],
        }
        if self.status == SUCCESS:
            out["AssetVirtualmanKey"] = self.asset_key
        return out


_COLUMNS = (
    "task_id, appkey, name, asset_key, background, status, stage, progress, fail_reason, "
    "fail_message, created_unix, updated_unix, warnings"
)


class JobStore:
    """The `avatar_jobs` table, on its own connection to the server's database file."""

    def __init__(self, path: str | Path) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), timeout=30, check_same_thread=False)
        self._lock = threading.Lock()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.executescript(_SCHEMA)
            names = {row[1] for row in self._db.execute("PRAGMA table_info(avatar_jobs)")}
            if "warnings" not in names:  # a database from before build warnings
                self._db.execute(
                    "ALTER TABLE avatar_jobs ADD COLUMN warnings TEXT NOT NULL DEFAULT ''"
                )
            self._db.commit()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _write(self, sql: str, args: tuple[Any, ...]) -> int:
        with self._lock:
            cur = self._db.execute(sql, args)
            self._db.commit()
            return cur.rowcount

    def _rows(self, sql: str, args: tuple[Any, ...]) -> list[Job]:
        with self._lock:
            rows = self._db.execute(sql, args).fetchall()
        return [Job(*r) for r in rows]

    def insert(self, job: Job) -> None:
        self._write(
            f"INSERT INTO avatar_jobs ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                job.task_id,
                job.appkey,
                job.name,
                job.asset_key,
                job.background,
                job.status,
                job.stage,
                job.progress,
                job.fail_reason,
                job.fail_message,
                job.created_unix,
                job.updated_unix,
                job.warnings,
            ),
        )

    def get(self, task_id: str) -> Job | None:
        rows = self._rows(f"SELECT {_COLUMNS} FROM avatar_jobs WHERE task_id = ?", (task_id,))
        return rows[0] if rows else None

    def active_for_asset(self, asset_key: str) -> list[Job]:
        """Jobs holding `asset_key`: building or waiting for confirmation."""
        return self._rows(
            f"SELECT {_COLUMNS} FROM avatar_jobs WHERE asset_key = ? "
            "AND (status = ? OR (status = ? AND stage = 'CONFIRM'))",
            (asset_key, MAKING, SUCCESS),
        )

    def confirmed(self, appkey: str) -> list[Job]:
        """The key's confirmed jobs (END), newest first."""
        return self._rows(
            f"SELECT {_COLUMNS} FROM avatar_jobs WHERE appkey = ? AND stage = 'END' "
            "ORDER BY updated_unix DESC",
            (appkey,),
        )

    def owner_of(self, asset_key: str) -> str | None:
        with self._lock:
            row = self._db.execute(
                "SELECT appkey FROM avatar_jobs WHERE asset_key = ? AND stage = 'END' "
                "ORDER BY updated_unix DESC LIMIT 1",
                (asset_key,),
            ).fetchone()
        return str(row[0]) if row else None

    def update(self, task_id: str, **fields: Any) -> None:
        names = ", ".join(f"{k} = ?" for k in fields)
        self._write(
            f"UPDATE avatar_jobs SET {names}, updated_unix = ? WHERE task_id = ?",
            (*fields.values(), time.time(), task_id),
        )

    def fail_unfinished(self, message: str) -> int:
        """Mark every job still MAKING as failed (the server that ran it has stopped)."""
        return self._write(
            "UPDATE avatar_jobs SET status = ?, fail_reason = 'interrupted', fail_message = ?, "
            "updated_unix = ? WHERE status = ?",
            (FAIL, message, time.time(), MAKING),
        )


_stores: dict[str, JobStore] = {}
_stores_lock = threading.Lock()


def shared_store(db_path: Path) -> JobStore:
    """The process's one `JobStore` on `db_path` (the build queue and the access checks)."""
    key = str(Path(db_path).resolve())
    with _stores_lock:
        store = _stores.get(key)
        if store is None:
            store = _stores[key] = JobStore(key)
        return store
