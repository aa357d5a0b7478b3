"""The avatar build worker: runs in a spawned process, one build at a time.

Each worker process runs at the lowest CPU priority (`os.nice(19)`) with OpenCV and BLAS
limited to one thread (`worker_init`), so running sessions keep their frame rate. `run_job`
builds one avatar (photo or video, by the material's first bytes) into the job's work
directory and writes its progress and result into the job's database row.
"""

from __future__ import annotations

import contextlib
import json
import os
import traceback
from pathlib import Path

from avatarcast.avatars.build_jobs import FAIL, SUCCESS, JobStore
from avatarcast.avatars.materials import PHOTO, VIDEO, file_kind
from avatarcast.errors import AvatarcastError

PROCESS_LABELS = ("checking the photo", "framing")  # photo.build_photo_avatar's first steps
VIDEO_PROCESS_LABELS = ("tracking the face",)  # video.build_video_avatar's first step


def worker_init() -> None:
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
