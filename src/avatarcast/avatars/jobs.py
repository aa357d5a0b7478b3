"""Background avatar builds for the API (`customservice`): a job queue persisted in SQLite.

    queue = BuildQueue(data_dir, db_path, workers=1)
    job = queue.submit(appkey, "alice", photo_bytes, "keep")   # → Job (SUBMIT, MAKING)
    queue.get(appkey, job.task_id)                              # → Job (stage, progress, ...)
    queue.confirm(appkey, job.task_id)                          # CONFIRM → END: registered
    queue.avatars(appkey)                                       # the key's confirmed avatars
    queue.delete(appkey, asset_key)                             # remove one of them

Material is a photo or a video, told apart by its first bytes (`material_kind`: MP4/MOV
`ftyp` at offset 4, Matroska/WebM, AVI are videos; everything else goes to the photo builder,
whose checks name unreadable files). It comes inline (`submit(..., bytes, ...)`) or as an
upload (**ours**): `new_upload` → a file under `<data_dir>/avatar-uploads/<key dir>/`, named
by its `MaterialId`; `take_upload` finds it only in the uploading key's directory, and `submit`
moves it into the job (consumed). Uploads not used within `UPLOAD_TTL_S` are removed.

Stages (`StageV2`, spec section 4) on the builders' phases:

    SUBMIT   queued, waiting for a worker                       progress 0
    PROCESS  photo: decoding, quality checks, framing;          progress of the builder's steps
             video: checks, face tracking
    TRAIN    photo: rigging, mouth shapes, blinks, saving;      progress of the builder's steps
             video: cutting the loop, rigging, mouth shapes, saving
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
import json
import logging
import multiprocessing
import os
import shutil
import sqlite3
import threading
import time
import traceback
import uuid
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from avatarcast.errors import AvatarcastError, InputError, UnknownAvatarError

log = logging.getLogger(__name__)

MAKING, SUCCESS, FAIL = "MAKING", "SUCCESS", "FAIL"
STAGES = ("SUBMIT", "PROCESS", "TRAIN", "CONFIRM", "END")
PROCESS_LABELS = ("checking the photo", "framing")  # photo.build_photo_avatar's first steps
VIDEO_PROCESS_LABELS = ("tracking the face",)  # video.build_video_avatar's first step
MAX_NAME_LEN = 40  # + "-" + 8 hex stays within the asset name limit (63)
JOBS_DIR = "avatar-jobs"
UPLOADS_DIR = "avatar-uploads"
UPLOAD_TTL_S = 3600.0  # an upload not used by `make` within this is removed
MAX_PENDING_UPLOADS = 8  # per key, not yet used by `make`
PHOTO, VIDEO = "photo", "video"
# ISO-BMFF brands of still images (HEIF/AVIF): `ftyp` but not a video
_IMAGE_BRANDS = (b"heic", b"heix", b"heim", b"heis", b"mif1", b"msf1", b"avif", b"avis")

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


class MaterialNotFound(InputError):
    """No such MaterialId for this key (used, expired, or another key's)."""

    code = "avatar_material_not_found"


def material_kind(head: bytes) -> str:
    """`VIDEO` for an MP4/MOV (`ftyp` box at offset 4), Matroska/WebM or AVI; else `PHOTO`.

    >>> material_kind(b"\\x00\\x00\\x00\\x20ftypisom"), material_kind(b"\\xff\\xd8\\xff\\xe0")
    ('video', 'photo')
    """
    if head[4:8] == b"ftyp":
        return PHOTO if head[8:12] in _IMAGE_BRANDS else VIDEO
    if head[:4] == b"\x1a\x45\xdf\xa3" or (head[:4] == b"RIFF" and head[8:11] == b"AVI"):
        return VIDEO
    return PHOTO


def file_kind(path: Path) -> str:
    with open(path, "rb") as fh:
        return material_kind(fh.read(16))


def key_dir_name(appkey: str) -> str:
    """The directory of a key's uploads: not the key itself (keys never appear in paths)."""
    return hashlib.sha256(b"upload:" + appkey.encode()).hexdigest()[:32]


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

    from avatarcast.avatars import video

    cv2.setNumThreads(1)
    video.DECODE_THREADS = 1
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
    except ImportError:  # pragma: no cover
        pass


def run_job(
    db_path: str,
    task_id: str,
    material: str,
    name: str,
    work_dir: str,
    background: str,
    size: tuple[int, int] | None = None,
    transcript: str | None = None,
) -> str:
    """Build one avatar in the worker; record progress/result in the database. Returns status.

    `material` is a photo or a video file (`file_kind`); a video goes to the video builder
    (with `size` and `transcript` if given).
    """
    from avatarcast.avatars.photo import AvatarQualityError, build_photo_avatar

    store = JobStore(db_path)
    last = (-1, "")
    kind = PHOTO
    process_labels: tuple[str, ...] = PROCESS_LABELS

    def progress(done: int, total: int, label: str) -> None:
        nonlocal last
        stage = "PROCESS" if label in process_labels else "TRAIN"
        pct = min(99, int(100 * done / max(total, 1)))
        if (pct, stage) != last:
            last = (pct, stage)
            store.update(task_id, stage=stage, progress=pct)

    try:
        store.update(task_id, stage="PROCESS", progress=0)
        kind = file_kind(Path(material))
        if kind == VIDEO:
            from avatarcast.avatars.video import build_video_avatar

            process_labels = VIDEO_PROCESS_LABELS
            summary = build_video_avatar(
                Path(material),
                name,
                Path(work_dir),
                progress=progress,
                size=size,
                transcript=transcript,
                background=background,
            )
        else:
            summary = build_photo_avatar(Path(material), name, Path(work_dir), background, progress)
        warnings = json.dumps(summary.get("warnings", []))
        store.update(task_id, status=SUCCESS, stage="CONFIRM", progress=100, warnings=warnings)
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
            fail_message=f"internal error while building the {kind} avatar (TaskId {task_id})",
        )
    finally:
        Path(material).unlink(missing_ok=True)
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
        self.remove_stale_uploads(max_age_s=UPLOAD_TTL_S)

    def job_dir(self, task_id: str) -> Path:
        return self.data_dir / JOBS_DIR / task_id

    # ---- uploads (ours) ---------------------------------------------------------------------
    def uploads_dir(self, appkey: str) -> Path:
        return self.data_dir / UPLOADS_DIR / key_dir_name(appkey)

    def _uploads(self) -> Iterator[Path]:
        root = self.data_dir / UPLOADS_DIR
        if root.is_dir():
            for key_dir in root.iterdir():
                if key_dir.is_dir():
                    yield from key_dir.iterdir()

    def remove_stale_uploads(self, max_age_s: float = UPLOAD_TTL_S) -> int:
        """Remove uploads (and interrupted `.part` files) older than `max_age_s`."""
        cutoff, n = time.time() - max_age_s, 0
        for path in list(self._uploads()):
            with contextlib.suppress(OSError):  # raced with another upload's clean-up or make
                if path.stat().st_mtime < cutoff:
                    path.unlink()
                    n += 1
        if n:
            log.info("removed %d unused avatar upload(s)", n)
        return n

    def new_upload(self, appkey: str) -> tuple[str, Path]:
        """A fresh MaterialId and the `.part` file to stream it into (renamed by `finish_upload`).

        Removes stale uploads first; InputError when the key already has
        `MAX_PENDING_UPLOADS` unused uploads.
        """
        self.remove_stale_uploads()
        folder = self.uploads_dir(appkey)
        folder.mkdir(parents=True, exist_ok=True)
        if sum(1 for _ in folder.iterdir()) >= MAX_PENDING_UPLOADS:
            raise InputError(
                f"this key already has {MAX_PENDING_UPLOADS} uploads not used by make; use them "
                f"or wait until they expire ({UPLOAD_TTL_S / 60:.0f} min after the upload)"
            )
        material_id = uuid.uuid4().hex
        return material_id, folder / f"{material_id}.part"

    def finish_upload(self, part: Path) -> None:
        os.replace(part, part.with_suffix(""))

    def take_upload(self, appkey: str, material_id: str) -> Path:
        """The file of the key's upload `material_id`; MaterialNotFound for any other id."""
        path = self.uploads_dir(appkey) / material_id
        if len(material_id) != 32 or not all(c in "0123456789abcdef" for c in material_id):
            path = self.uploads_dir(appkey) / "-"  # not an id we hand out: never found
        if not path.is_file():
            raise MaterialNotFound(
                f"MaterialId: no upload {material_id!r} (used by make already, expired after "
                f"{UPLOAD_TTL_S / 60:.0f} min, or never uploaded with this key)"
            )
        return path

    # ---- builds -------------------------------------------------------------------------------
    def submit(
        self,
        appkey: str,
        name: str,
        material: bytes | Path,
        background: str,
        size: tuple[int, int] | None = None,
        transcript: str | None = None,
    ) -> Job:
        """Queue a build of `material`: the bytes, or an upload's file (moved into the job).

        The material's kind (`material_kind`) decides the builder; a video may ask for an
        output `size` (`video.SIZES`; the build fails if it does not suit the video's
        orientation) and bring the `transcript` of what is said. Nothing is consumed when
        the request is refused.
        """
        from avatarcast.avatars.asset import NAME_RE, avatars_dir
        from avatarcast.avatars.photo import BACKGROUNDS

        if len(name) > MAX_NAME_LEN or not NAME_RE.match(name) or name == "default":
            raise InputError(
                f"VirtualmanName must be 1-{MAX_NAME_LEN} lowercase letters, digits, '-' or '_' "
                "(starting with a letter or digit), and not 'default'"
            )
        if background not in BACKGROUNDS:
            raise InputError(f"Background must be one of {', '.join(BACKGROUNDS)}")
        if isinstance(material, Path):
            try:
                kind = file_kind(material)
            except OSError:
                raise MaterialNotFound("MaterialId: the upload is gone; upload again") from None
        else:
            kind = material_kind(material[:16])
        if size is not None:
            from avatarcast.avatars.video import SIZES

            if kind != VIDEO:
                raise InputError("Size applies to video material only (a photo makes 540x960)")
            if size not in SIZES:
                names = ", ".join(f"{w}x{h}" for w, h in SIZES)
                raise InputError(f"Size must be one of {names}")
        if transcript and kind != VIDEO:
            raise InputError("Transcript applies to video material only")
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
            material_path = work / kind
            try:
                if isinstance(material, Path):
                    os.replace(material, material_path)  # consumed: the id is spent
                else:
                    material_path.write_bytes(material)
            except OSError:
                shutil.rmtree(work, ignore_errors=True)
                if isinstance(material, Path):  # taken by a concurrent make of the same id
                    raise MaterialNotFound("MaterialId: the upload is gone") from None
                raise
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
                str(material_path),
                asset_key,
                str(work),
                background,
                size,
                transcript or None,
            )
        fut.add_done_callback(lambda f: self._finished(job.task_id, f))
        log.info(
            "avatar build %s (%s) queued for key %s (%s)", job.task_id, kind, appkey, asset_key
        )
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

    # ---- the key's avatars (ours) ---------------------------------------------------------
    def avatars(self, appkey: str) -> list[dict[str, Any]]:
        """The key's confirmed avatars that still exist, newest first (the `list` Payload)."""
        from avatarcast.avatars.asset import avatars_dir

        out, seen = [], set()
        for job in self.store.confirmed(appkey):
            path = avatars_dir(self.data_dir) / job.asset_key
            if job.asset_key in seen or not (path / "manifest.json").is_file():
                continue
            seen.add(job.asset_key)
            try:
                manifest = json.loads((path / "manifest.json").read_text("utf-8"))
            except (OSError, ValueError):
                manifest = {}
            if not isinstance(manifest, dict):
                manifest = {}
            created = manifest.get("created_unix")
            out.append(
                {
                    "AssetVirtualmanKey": job.asset_key,
                    "VirtualmanName": job.name,
                    "Kind": VIDEO if manifest.get("kind") == VIDEO else PHOTO,
                    "CreatedUnix": int(created if isinstance(created, int | float) else 0)
                    or int(job.updated_unix),
                    "SizeBytes": _tree_size(path),
                }
            )
        return out

    def owns(self, appkey: str, asset_key: str) -> bool:
        """Whether `asset_key` exists and was made and confirmed by `appkey`."""
        from avatarcast.avatars.asset import NAME_RE, avatars_dir

        if not NAME_RE.match(asset_key):
            return False
        return (
            self.store.owner_of(asset_key) == appkey
            and (avatars_dir(self.data_dir) / asset_key / "manifest.json").is_file()
        )

    def delete(self, appkey: str, asset_key: str) -> None:
        """Remove the key's avatar `asset_key` (files and shared in-memory instances).

        UnknownAvatarError when it does not exist or belongs to no key or another key (built-in
        and CLI-built avatars are not deleted over the API). Sessions already streaming it keep
        the copy they loaded; the caller checks for them first (`customservice.delete`).
        """
        from avatarcast.avatars.asset import delete_asset
        from avatarcast.avatars.registry import forget_avatar

        with self._lock:
            if not self.owns(appkey, asset_key):
                raise UnknownAvatarError(f"AssetVirtualmanKey: no avatar {asset_key!r}")
            delete_asset(self.data_dir, asset_key)
            forget_avatar(asset_key)
        log.info("avatar %s deleted by key %s", asset_key, appkey)

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)


def _tree_size(path: Path) -> int:
    """Bytes of the files under `path` (0 for what vanished meanwhile)."""
    total = 0
    for f in path.rglob("*"):
        with contextlib.suppress(OSError):
            if f.is_file():
                total += f.stat().st_size
    return total
