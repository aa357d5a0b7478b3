"""Background avatar builds for the API (`customservice`): a job queue persisted in SQLite.

    queue = BuildQueue(data_dir, db_path, workers=1)
    job = queue.submit(appkey, "alice", photo_bytes, "keep")   # → Job (SUBMIT, MAKING)
    queue.get(appkey, job.task_id)                              # → Job (stage, progress, ...)
    queue.confirm(appkey, job.task_id)                          # CONFIRM → END: registered

Stages (`StageV2`, spec section 4) on the photo builder's phases:

    SUBMIT   queued, waiting for a worker                       progress 0
    PROCESS  decoding the photo, quality checks, framing        progress of the builder's steps
    TRAIN    rigging, mouth shapes, blinks, saving              progress of the builder's steps
    CONFIRM  built, waiting for `customerconfirm`; not listed    100, Status SUCCESS
    END      confirmed: `<data_dir>/avatars/<AssetVirtualmanKey>/`, usable by createsessionbyasset

`Status` is MAKING until CONFIRM, then SUCCESS; FAIL (with `FailMessage`, the quality check's
plain-language reason) at the stage where the build stopped. A failed build leaves nothing:
its work directory `<data_dir>/avatar-jobs/<TaskId>/` is removed, and only `customerconfirm`
moves a finished asset into `avatars/`.

Scoping (**ours**): `AssetVirtualmanKey` is the asset name `<VirtualmanName>-<8 hex>`, the hex
being the first 8 of sha256(appkey), so two keys' avatars never collide by name. An avatar made
through the API belongs to the key that made it: only that key sees its task, and
`check_asset_access` (called by createsessionbyasset) answers "no avatar" to every other key.
Avatars without an owner (the built-in one, those built with the CLI) are usable by every key.

Builds run in `workers` (setting `avatar_build_workers`, default 1) spawned worker processes,
each at the lowest CPU priority (`os.nice(19)`) with OpenCV and BLAS limited to one thread, so
running sessions keep their frame rate. The processes start with the first queued build (about
a second) and exit when no build is left. The worker writes the job's progress straight into the
database (WAL mode); a job left MAKING by a stopped server is marked FAIL at the next start.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import multiprocessing
import os
import shutil
import sqlite3
import threading
import time
import traceback
import uuid
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from avatarcast.errors import AvatarcastError, InputError, UnknownAvatarError

log = logging.getLogger(__name__)

MAKING, SUCCESS, FAIL = "MAKING", "SUCCESS", "FAIL"
STAGES = ("SUBMIT", "PROCESS", "TRAIN", "CONFIRM", "END")
PROCESS_LABELS = ("checking the photo", "framing")  # photo.build_photo_avatar's first steps
MAX_NAME_LEN = 40  # + "-" + 8 hex stays within the asset name limit (63)
JOBS_DIR = "avatar-jobs"

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
    updated_unix REAL NOT NULL
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
        }
        if self.status == SUCCESS:
            out["AssetVirtualmanKey"] = self.asset_key
        return out


_COLUMNS = (
    "task_id, appkey, name, asset_key, background, status, stage, progress, fail_reason, "
    "fail_message, created_unix, updated_unix"
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
            f"INSERT INTO avatar_jobs ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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


def asset_key_for(appkey: str, name: str) -> str:
    """`<VirtualmanName>-<first 8 hex of sha256(appkey)>` (see the module's scoping rule)."""
    return f"{name}-{hashlib.sha256(appkey.encode()).hexdigest()[:8]}"


# ---- access check for createsessionbyasset ----------------------------------------------------
_stores: dict[str, JobStore] = {}
_stores_lock = threading.Lock()


def _store_for(db_path: Path) -> JobStore:
    key = str(Path(db_path).resolve())
    with _stores_lock:
        store = _stores.get(key)
        if store is None:
            store = _stores[key] = JobStore(key)
        return store


def asset_owner(db_path: Path, asset_key: str) -> str | None:
    """The key that made `asset_key` through the API, or None (built-in, CLI-built)."""
    return _store_for(db_path).owner_of(asset_key)


def check_asset_access(db_path: Path, appkey: str, asset_key: str) -> None:
    """UnknownAvatarError if `asset_key` was made through the API by another key."""
    owner = _store_for(db_path).owner_of(asset_key)
    if owner is not None and owner != appkey:
        raise UnknownAvatarError(f"AssetVirtualmanKey: no avatar {asset_key!r}")


# ---- the worker process -----------------------------------------------------------------------
def _worker_init() -> None:
    """Lowest priority, one thread for OpenCV and BLAS: running sessions come first."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"
    with contextlib.suppress(OSError):  # not permitted: the threads are still bounded
        os.nice(19)
    import cv2

    cv2.setNumThreads(1)
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
    except ImportError:  # pragma: no cover
        pass


def run_job(
    db_path: str, task_id: str, photo: str, name: str, work_dir: str, background: str
) -> str:
    """Build one avatar in the worker; record progress/result in the database. Returns status."""
    from avatarcast.avatars.photo import AvatarQualityError, build_photo_avatar

    store = JobStore(db_path)
    last = (-1, "")

    def progress(done: int, total: int, label: str) -> None:
        nonlocal last
        stage = "PROCESS" if label in PROCESS_LABELS else "TRAIN"
        pct = min(99, int(100 * done / max(total, 1)))
        if (pct, stage) != last:
            last = (pct, stage)
            store.update(task_id, stage=stage, progress=pct)

    try:
        store.update(task_id, stage="PROCESS", progress=0)
        build_photo_avatar(Path(photo), name, Path(work_dir), background, progress)
        store.update(task_id, status=SUCCESS, stage="CONFIRM", progress=100)
        return SUCCESS
    except AvatarQualityError as exc:
        store.update(task_id, status=FAIL, fail_reason=exc.reason, fail_message=exc.message)
    except AvatarcastError as exc:
        store.update(task_id, status=FAIL, fail_reason=exc.code, fail_message=exc.message)
    except Exception:
        traceback.print_exc()
        store.update(
            task_id,
            status=FAIL,
            fail_reason="internal",
            fail_message=f"internal error while building (TaskId {task_id})",
        )
    finally:
        Path(photo).unlink(missing_ok=True)
        store.close()
    return FAIL


# ---- the queue ----------------------------------------------------------------------------
class BuildQueue:
    """Jobs of one server: submit, look up, confirm. Thread-safe; calls return at once."""

    def __init__(self, data_dir: Path, db_path: Path, workers: int = 1) -> None:
        if workers < 1:
            raise ValueError("avatar_build_workers must be at least 1")
        self.data_dir = Path(data_dir)
        self.db_path = Path(db_path)
        self.workers = workers
        self.store = _store_for(self.db_path)
        self._lock = threading.Lock()
        self._pool: ProcessPoolExecutor | None = None  # while builds are queued or running
        self._pending = 0
        n = self.store.fail_unfinished("the server stopped during the build; make it again")
        if n:
            log.warning("%d avatar build(s) interrupted by a restart were marked FAIL", n)
        for work in (self.data_dir / JOBS_DIR).glob("*"):  # what failed builds left behind
            job = self.store.get(work.name)
            if job is None or job.status == FAIL or job.stage == "END":
                shutil.rmtree(work, ignore_errors=True)

    def job_dir(self, task_id: str) -> Path:
        return self.data_dir / JOBS_DIR / task_id

    def submit(self, appkey: str, name: str, photo: bytes, background: str) -> Job:
        from avatarcast.avatars.asset import NAME_RE, avatars_dir
        from avatarcast.avatars.photo import BACKGROUNDS

        if len(name) > MAX_NAME_LEN or not NAME_RE.match(name) or name == "default":
            raise InputError(
                f"VirtualmanName must be 1-{MAX_NAME_LEN} lowercase letters, digits, '-' or '_' "
                "(starting with a letter or digit), and not 'default'"
            )
        if background not in BACKGROUNDS:
            raise InputError(f"Background must be one of {', '.join(BACKGROUNDS)}")
        asset_key = asset_key_for(appkey, name)
        now = time.time()
        job = Job(
            uuid.uuid4().hex, appkey, name, asset_key, background, MAKING, "SUBMIT", 0, "", "",
            now, now,
        )  # fmt: skip
        with self._lock:
            if (avatars_dir(self.data_dir) / asset_key).exists() or self.store.active_for_asset(
                asset_key
            ):
                raise InputError(
                    f"VirtualmanName {name!r} is already used by this key (AssetVirtualmanKey "
                    f"{asset_key!r}); choose another name"
                )
            work = self.job_dir(job.task_id)
            work.mkdir(parents=True)
            photo_path = work / "photo"
            photo_path.write_bytes(photo)
            self.store.insert(job)
            if self._pool is None:
                # spawn, not fork: the server has threads (event loop, encoders)
                self._pool = ProcessPoolExecutor(
                    max_workers=self.workers,
                    mp_context=multiprocessing.get_context("spawn"),
                    initializer=_worker_init,
                )
            self._pending += 1
            fut = self._pool.submit(
                run_job,
                str(self.db_path),
                job.task_id,
                str(photo_path),
                asset_key,
                str(work),
                background,
            )
        fut.add_done_callback(lambda f: self._finished(job.task_id, f))
        log.info("avatar build %s queued for key %s (%s)", job.task_id, appkey, asset_key)
        return job

    def _finished(self, task_id: str, fut: Future[str]) -> None:
        """After the worker: clean up a failure; a crashed worker's job becomes FAIL."""
        try:
            status = fut.result()
        except BaseException as exc:  # the worker died (killed, out of memory, ...)
            log.error("avatar build %s: worker failed: %r", task_id, exc)
            self.store.update(
                task_id,
                status=FAIL,
                fail_reason="internal",
                fail_message=f"internal error while building (TaskId {task_id})",
            )
            status = FAIL
        if status == FAIL:
            shutil.rmtree(self.job_dir(task_id), ignore_errors=True)
        log.info("avatar build %s: %s", task_id, status)
        with self._lock:  # no build left: let the worker processes (and their memory) go
            self._pending -= 1
            pool = self._pool if self._pending == 0 else None
            if pool is not None:
                self._pool = None
        if pool is not None:
            pool.shutdown(wait=False)

    def get(self, appkey: str, task_id: str) -> Job:
        job = self.store.get(task_id)
        if job is None or job.appkey != appkey:
            raise TaskNotFound(f"TaskId: no task {task_id!r}")
        return job

    def confirm(self, appkey: str, task_id: str) -> Job:
        """CONFIRM → END: move the built asset into `avatars/` (registered, usable)."""
        from avatarcast.avatars.asset import avatars_dir

        with self._lock:
            job = self.get(appkey, task_id)
            if job.stage == "END":
                return job  # confirming twice changes nothing
            if job.status != SUCCESS or job.stage != "CONFIRM":
                what = "failed" if job.status == FAIL else "is still being built"
                raise InputError(f"TaskId {task_id!r} {what}; only a built avatar is confirmed")
            built = self.job_dir(task_id) / "avatars" / job.asset_key
            final = avatars_dir(self.data_dir) / job.asset_key
            if not (built / "manifest.json").is_file():
                raise InputError(f"TaskId {task_id!r}: the built avatar is gone; make it again")
            if final.exists():
                raise InputError(f"AssetVirtualmanKey {job.asset_key!r} already exists")
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(built, final)  # the one step that registers it
            self.store.update(task_id, stage="END")
            shutil.rmtree(self.job_dir(task_id), ignore_errors=True)
            done = self.store.get(task_id)
        assert done is not None
        log.info("avatar %s confirmed by key %s", job.asset_key, appkey)
        return done

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
