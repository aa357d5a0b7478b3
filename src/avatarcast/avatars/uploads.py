"""Uploaded avatar material (**ours**), waiting for `make`.

`new_upload` → a `.part` file under `<data_dir>/avatar-uploads/<key dir>/` named by its
`MaterialId` (renamed by `finish_upload` once complete); `take_upload` finds it only in the
uploading key's directory (the key itself never appears in a path), and the build queue's
`submit` moves it into the job (consumed). Uploads not used within `UPLOAD_TTL_S` are removed.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from avatarcast.errors import InputError

log = logging.getLogger(__name__)

UPLOADS_DIR = "avatar-uploads"
UPLOAD_TTL_S = 3600.0  # an upload not used by `make` within this is removed
MAX_PENDING_UPLOADS = 8  # per key, not yet used by `make`


class MaterialNotFound(InputError):
    """No such MaterialId for this key (used, expired, or another key's)."""

    code = "avatar_material_not_found"


def key_dir_name(appkey: str) -> str:
    """The directory of a key's uploads: not the key itself (keys never appear in paths)."""
    return hashlib.sha256(b"upload:" + appkey.encode()).hexdigest()[:32]


class UploadStore:
    """The uploads under `<data_dir>/avatar-uploads/`. Safe to call from several threads."""

    def __init__(self, data_dir: Path) -> None:
        self.root = Path(data_dir) / UPLOADS_DIR

    def uploads_dir(self, appkey: str) -> Path:
        return self.root / key_dir_name(appkey)

    def _uploads(self) -> Iterator[Path]:
        if self.root.is_dir():
            for key_dir in self.root.iterdir():
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
