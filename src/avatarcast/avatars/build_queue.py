"""Background avatar builds for the API (`customservice`): a job queue persisted in SQLite.

    queue = BuildQueue(data_dir, db_path, workers=1)
    job = queue.submit(appkey, "alice", photo_bytes, "keep")   # → Job (SUBMIT, MAKING)
    queue.get(appkey, job.task_id)                              # → Job (stage, progress, ...)
    queue.confirm(appkey, job.task_id)                          # CONFIRM → END: registered
    queue.avatars(appkey)                                       # the key's confirmed avatars
    queue.delete(appkey, asset_key)                             # remove one of them

Material is a photo or a video (`avatars.materials`), inline (`submit(..., bytes, ...)`) or an
upload (`avatars.uploads`, **ours**). Jobs and their stages are `avatars.build_jobs`'s; who may
use a built avatar is `avatars.access`'s; the build itself runs in `avatars.build_worker`.

A failed build leaves nothing: its work directory `<data_dir>/avatar-jobs/<TaskId>/` is
removed, and only `customerconfirm` moves a finished asset into `avatars/`.

Builds run in `workers` (setting `avatar_build_workers`, default 1) spawned worker processes
(see `build_worker`). The processes start with the first queued build (about a second) and exit
when no build is left. A job left MAKING by a stopped server is marked FAIL at the next start.
"""

from __future__ import annotations

import contextlib
import json
import logging
import multiprocessing
import os
import shutil
import threading
import time
import uuid
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from typing import Any

from avatarcast.avatars.access import asset_key_for
from avatarcast.avatars.build_jobs import FAIL, MAKING, SUCCESS, Job, TaskNotFound, shared_store
from avatarcast.avatars.build_worker import run_job, worker_init
from avatarcast.avatars.materials import PHOTO, VIDEO, file_kind, material_kind
from avatarcast.avatars.uploads import UPLOAD_TTL_S, MaterialNotFound, UploadStore
from avatarcast.errors import InputError, UnknownAvatarError

log = logging.getLogger(__name__)

MAX_NAME_LEN = 40  # + "-" + 8 hex stays within the asset name limit (63)
JOBS_DIR = "avatar-jobs"


class BuildQueue:
    """Jobs of one server: submit, look up, confirm. Thread-safe; calls return at once."""

    def __init__(self, data_dir: Path, db_path: Path, workers: int = 1) -> None:
        if workers < 1:
            raise ValueError("avatar_build_workers must be at least 1")
        self.data_dir = Path(data_dir)
        self.db_path = Path(db_path)
        self.workers = workers
        self.store = shared_store(self.db_path)
        self.uploads = UploadStore(self.data_dir)
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
        self.uploads.remove_stale_uploads(max_age_s=UPLOAD_TTL_S)

    def job_dir(self, task_id: str) -> Path:
        return self.data_dir / JOBS_DIR / task_id

    # ---- uploads (ours): the API reaches them through the queue (see `avatars.uploads`) --
    def new_upload(self, appkey: str) -> tuple[str, Path]:
        return self.uploads.new_upload(appkey)

    def finish_upload(self, part: Path) -> None:
        self.uploads.finish_upload(part)

    def take_upload(self, appkey: str, material_id: str) -> Path:
        return self.uploads.take_upload(appkey, material_id)

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
                    initializer=worker_init,
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
