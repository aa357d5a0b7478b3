"""The custom-avatar asset directory: `<data_dir>/avatars/<name>/` (format documented in
docs/avatars.md, "Custom avatars from a photo").

    manifest.json   format name + version, kind, source, sizes, landmarks, boxes, checks
    canvas.png      the framed portrait (RGB) with a motion margin, rest mouth baked in
    background.png  the background plate (RGB, same size): the person moves over it
    matte.png       the person's alpha (grey, same size)
    mouth.npy       (1 + 9 × levels, h+1, w+1, 3) uint8 mouth-box sprites (+1 px margin)
    eyes.npy        (blink levels + 1, h+1, w+1, 3) uint8 eye-box sprites
    loop.npy        video avatars: (frames, H + 2m, W + 2m, 3) uint8 idle loop
    mouth_alpha.npy video avatars: (h+1, w+1) uint8 weights the mouth sprites blend with
    loop_matte.npy  video avatars with a keyed/removed background: (frames, H+2m, W+2m)

Building writes into `<name>.partial-<pid>/` and renames it into place at the very end, so a
failed or interrupted build never leaves a half avatar that the registry would pick up.
Loading checks everything it relies on and raises `AssetError` (an `AvatarLoadError`) with
what is wrong, so a damaged or foreign directory is a clear error, never a crash.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from avatarcast.errors import AvatarLoadError, InputError
from avatarcast.speech.visemes import SHAPES

FORMAT = "avatarcast-avatar"
VERSION = 1
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
Box = tuple[int, int, int, int]


class AssetError(AvatarLoadError):
    """A damaged, incomplete or foreign avatar directory."""

    code = "avatar_asset_invalid"


class AvatarNameError(InputError):
    code = "bad_avatar_name"


def check_name(name: str) -> str:
    if name == "default" or not NAME_RE.match(name):
        raise AvatarNameError(
            f"avatar name {name!r} must be 1-63 lowercase letters, digits, '-' or '_' "
            "(starting with a letter or digit), and not 'default'"
        )
    return name


def avatars_dir(data_dir: Path) -> Path:
    return Path(data_dir) / "avatars"


def list_assets(data_dir: Path | None) -> list[str]:
    """Names of the finished asset directories (partial builds are skipped)."""
    if data_dir is None or not avatars_dir(data_dir).is_dir():
        return []
    return sorted(
        p.name
        for p in avatars_dir(data_dir).iterdir()
        if NAME_RE.match(p.name) and (p / "manifest.json").is_file()
    )


@dataclass
class PhotoAsset:
    """A loaded photo avatar; the arrays are read-only (mouth/eyes memory-mapped)."""

    path: Path
    manifest: dict[str, Any]
    canvas: NDArray[np.uint8]  # (H + 2m, W + 2m, 3)
    background: NDArray[np.uint8]  # (H + 2m, W + 2m, 3)
    matte: NDArray[np.uint8]  # (H + 2m, W + 2m)
    mouth: NDArray[np.uint8]  # (n, h + 1, w + 1, 3)
    eyes: NDArray[np.uint8]

    @property
    def width(self) -> int:
        return int(self.manifest["size"]["width"])

    @property
    def height(self) -> int:
        return int(self.manifest["size"]["height"])

    @property
    def margin(self) -> int:
        return int(self.manifest["margin"])

    @property
    def mouth_levels(self) -> int:
        return int(self.manifest["mouth_levels"])

    @property
    def blink_levels(self) -> int:
        return int(self.manifest["blink_levels"])

    @property
    def neck_rows(self) -> tuple[int, int]:
        """Canvas rows where head motion fades out (head above, still body below)."""
        n0, n1 = self.manifest["neck_rows"]
        return int(n0), int(n1)

    def box(self, which: str) -> Box:
        x, y, w, h = (int(v) for v in self.manifest[f"{which}_box"])
        return x, y, w, h


def mouth_index(shape_pos: int, level: int, levels: int) -> int:
    """Row of mouth.npy: 0 = rest (every shape at openness 0), then shape-major levels."""
    return 0 if level == 0 else 1 + shape_pos * levels + (level - 1)


def write_asset(
    data_dir: Path,
    name: str,
    manifest: dict[str, Any],
    canvas: NDArray[np.uint8],
    background: NDArray[np.uint8],
    matte: NDArray[np.uint8],
    mouth: NDArray[np.uint8],
    eyes: NDArray[np.uint8],
    extra: dict[str, NDArray[np.uint8]] | None = None,
) -> Path:
    """Write atomically; raises AvatarNameError if `name` exists (delete it first).
    `extra` arrays are saved as `<key>.npy` and listed in the manifest's files (a video
    avatar's "loop")."""
    root = avatars_dir(data_dir)
    root.mkdir(parents=True, exist_ok=True)
    final = root / name
    if final.exists():
        raise AvatarNameError(f"avatar {name!r} already exists; delete it first")
    _remove_stale(root, name)
    tmp = root / f"{name}.partial-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        files = {
            "canvas": "canvas.png",
            "background": "background.png",
            "matte": "matte.png",
            "mouth": "mouth.npy",
            "eyes": "eyes.npy",
        }
        for key, img in (("canvas", canvas), ("background", background)):
            if not cv2.imwrite(str(tmp / files[key]), cv2.cvtColor(img, cv2.COLOR_RGB2BGR)):
                raise OSError(f"cannot write {tmp / files[key]}")
        if not cv2.imwrite(str(tmp / files["matte"]), matte):
            raise OSError(f"cannot write {tmp / files['matte']}")
        np.save(tmp / "mouth.npy", np.ascontiguousarray(mouth))
        np.save(tmp / "eyes.npy", np.ascontiguousarray(eyes))
        for key, arr in (extra or {}).items():
            files[key] = f"{key}.npy"
            np.save(tmp / files[key], np.ascontiguousarray(arr))
        full = {"format": FORMAT, "version": VERSION, "name": name, **manifest, "files": files}
        (tmp / "manifest.json").write_text(json.dumps(full, indent=1), "utf-8")
        os.replace(tmp, final)  # the one step that makes the avatar exist
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def _remove_stale(root: Path, name: str) -> None:
    """Remove what killed builds/deletes of `name` left (their process no longer runs)."""
    for p in [*root.glob(f"{name}.partial-*"), *root.glob(f"{name}.deleting-*")]:
        try:
            pid = int(p.name.rsplit("-", 1)[1])
            os.kill(pid, 0)  # raises if no such process
            if pid != os.getpid():
                continue  # another build of the same name is running
        except (ValueError, ProcessLookupError):
            pass
        except PermissionError:
            continue  # a live process of another user
        shutil.rmtree(p, ignore_errors=True)


def delete_asset(data_dir: Path, name: str) -> bool:
    path = avatars_dir(data_dir) / check_name(name)
    if not path.is_dir():
        return False
    # rename first so a concurrent loader sees either the whole avatar or nothing
    trash = path.with_name(f"{name}.deleting-{os.getpid()}")
    os.replace(path, trash)
    shutil.rmtree(trash, ignore_errors=True)
    return True


def _need(cond: bool, path: Path, what: str) -> None:
    if not cond:
        raise AssetError(f"avatar asset {path} is damaged: {what}")


def load_asset(path: Path) -> PhotoAsset:
    """Load and validate an asset directory; AssetError on anything unexpected."""
    mf = path / "manifest.json"
    try:
        manifest = json.loads(mf.read_text("utf-8"))
    except OSError as exc:
        raise AssetError(f"avatar asset {path}: cannot read manifest.json ({exc})") from exc
    except ValueError as exc:
        raise AssetError(f"avatar asset {path}: manifest.json is not valid JSON ({exc})") from exc
    _need(isinstance(manifest, dict), path, "manifest is not an object")
    if manifest.get("format") != FORMAT:
        raise AssetError(f"{path} is not an avatarcast avatar (format {manifest.get('format')!r})")
    if manifest.get("version") != VERSION:
        raise AssetError(
            f"avatar asset {path} has format version {manifest.get('version')!r}; this "
            f"avatarcast reads version {VERSION} (rebuild the avatar)"
        )
    kind = manifest.get("kind")
    _need(kind in ("photo", "video"), path, f"unknown kind {kind!r}")
    try:
        w, h = int(manifest["size"]["width"]), int(manifest["size"]["height"])
        m = int(manifest["margin"])
        levels, blinks = int(manifest["mouth_levels"]), int(manifest["blink_levels"])
        boxes = {k: [int(v) for v in manifest[f"{k}_box"]] for k in ("mouth", "eye")}
        files = dict(manifest["files"])
        n0, n1 = (int(v) for v in manifest["neck_rows"])
        _need(len(manifest["landmarks"]) == 478, path, "landmarks must have 478 points")
    except (KeyError, TypeError, ValueError) as exc:
        raise AssetError(f"avatar asset {path} is damaged: manifest field {exc}") from exc
    _need(w > 0 and h > 0 and w % 2 == 0 and h % 2 == 0 and 0 <= m < 64, path, "bad size")
    _need(levels >= 1 and blinks >= 1, path, "bad level counts")
    full = (h + 2 * m, w + 2 * m)
    for k, (bx, by, bw, bh) in boxes.items():
        ok = bx >= 1 and by >= 1 and bw > 0 and bh > 0 and bx + bw <= full[1]
        _need(ok and by + bh <= full[0] and bx % 2 == 0 and by % 2 == 0, path, f"{k}_box")
    head_bottom = max(b[1] + b[3] for b in boxes.values())
    _need(head_bottom <= n0 < n1 <= full[0], path, "neck_rows must lie below the face boxes")
    for key in ("canvas", "background", "matte", "mouth", "eyes"):
        _need(key in files and (path / str(files[key])).is_file(), path, f"missing {key} file")
    images: dict[str, NDArray[np.uint8]] = {}
    for key in ("canvas", "background"):
        bgr = cv2.imread(str(path / files[key]), cv2.IMREAD_COLOR)
        _need(bgr is not None, path, f"{key} image unreadable")
        images[key] = np.asarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), np.uint8)
        _need(images[key].shape[:2] == full, path, f"{key} is not {full[1]}x{full[0]}")
        images[key].flags.writeable = False
    grey = cv2.imread(str(path / files["matte"]), cv2.IMREAD_GRAYSCALE)
    _need(grey is not None and grey.shape == full, path, "matte unreadable or wrong size")
    matte = np.asarray(grey, np.uint8)
    matte.flags.writeable = False
    try:
        mouth = np.load(path / files["mouth"], mmap_mode="r", allow_pickle=False)
        eyes = np.load(path / files["eyes"], mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise AssetError(f"avatar asset {path} is damaged: sprite arrays ({exc})") from exc
    mw, mh = boxes["mouth"][2:]
    ew, eh = boxes["eye"][2:]
    n_mouth = 1 + len(SHAPES) * levels
    _need(mouth.dtype == np.uint8 and mouth.shape == (n_mouth, mh + 1, mw + 1, 3), path, "mouth")
    _need(eyes.dtype == np.uint8 and eyes.shape == (blinks + 1, eh + 1, ew + 1, 3), path, "eyes")
    if kind == "video":
        return _load_video(path, manifest, images, matte, mouth, eyes)
    return PhotoAsset(path, manifest, images["canvas"], images["background"], matte, mouth, eyes)


@dataclass
class VideoAsset(PhotoAsset):
    """A loaded video avatar: a photo asset whose mouth sprites are the mouth bank (harvested
    from the video, or warped from the loop's first frame where the video has no such mouth),
    plus the idle loop, (frames, H + 2m, W + 2m, 3) uint8, memory-mapped, the weight map the
    mouth sprites are blended with ((h+1, w+1) uint8; None in avatars built before the bank:
    opaque), where each loop frame's mouth sits relative to the first's ((frames, 2)) and,
    for a keyed or removed background, the person's matte per loop frame."""

    loop: NDArray[np.uint8] = field(default_factory=lambda: np.zeros((0, 0, 0, 3), np.uint8))
    mouth_alpha: NDArray[np.uint8] | None = None
    mouth_offsets: NDArray[np.float64] = field(default_factory=lambda: np.zeros((0, 2)))
    loop_matte: NDArray[np.uint8] | None = None  # (frames, H + 2m, W + 2m); None: opaque

    @property
    def fps(self) -> float:
        return float(self.manifest["loop"]["fps"])


def _load_video(
    path: Path,
    manifest: dict[str, Any],
    images: dict[str, NDArray[np.uint8]],
    matte: NDArray[np.uint8],
    mouth: NDArray[np.uint8],
    eyes: NDArray[np.uint8],
) -> VideoAsset:
    files = manifest["files"]
    _need("loop" in files and (path / str(files["loop"])).is_file(), path, "missing loop file")
    try:
        loop = np.load(path / files["loop"], mmap_mode="r", allow_pickle=False)
        fps, frames = float(manifest["loop"]["fps"]), int(manifest["loop"]["frames"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise AssetError(f"avatar asset {path} is damaged: loop ({exc})") from exc
    want = (frames, *images["canvas"].shape)
    _need(loop.dtype == np.uint8 and loop.shape == want and frames >= 2, path, "loop shape")
    _need(fps > 0, path, "loop fps")
    alpha = None
    if "mouth_alpha" in files:
        try:
            alpha = np.load(path / files["mouth_alpha"], allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise AssetError(f"avatar asset {path} is damaged: mouth_alpha ({exc})") from exc
        _need(alpha.dtype == np.uint8 and alpha.shape == mouth.shape[1:3], path, "mouth_alpha")
    try:
        offsets = np.asarray(manifest["loop"].get("mouth_offsets", [[0, 0]] * frames), float)
    except (TypeError, ValueError) as exc:
        raise AssetError(f"avatar asset {path} is damaged: loop mouth_offsets ({exc})") from exc
    ok = offsets.shape == (frames, 2) and bool(np.isfinite(offsets).all())
    _need(ok and float(np.abs(offsets).max(initial=0)) < 64, path, "loop mouth_offsets")
    loop_matte = None
    if "loop_matte" in files:
        try:
            loop_matte = np.load(path / files["loop_matte"], mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise AssetError(f"avatar asset {path} is damaged: loop_matte ({exc})") from exc
        ok = loop_matte.dtype == np.uint8 and loop_matte.shape == loop.shape[:3]
        _need(ok, path, "loop_matte")
    canvas, bg = images["canvas"], images["background"]
    return VideoAsset(
        path, manifest, canvas, bg, matte, mouth, eyes, loop, alpha, offsets, loop_matte
    )
