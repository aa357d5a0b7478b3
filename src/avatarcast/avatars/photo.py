"""Build a streaming avatar from one photo: checks, framing, background, warped sprites.

    build_photo_avatar(photo, name, data_dir, background="keep", progress=None) -> summary

Every quality check runs on the photo before any long work and raises `AvatarQualityError`
with a stable `reason` code and a plain-language message (see `REASONS`). The result is an
asset directory (`avatars.asset`) that `CustomAvatar` streams.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from avatarcast import __version__
from avatarcast.avatars.asset import check_name, mouth_index, write_asset
from avatarcast.avatars.photo_background import (
    apply_background,
    fill_background,
    mediapipe_quiet,
    person_matte,
)
from avatarcast.avatars.photo_warp import EyeRig, MouthRig
from avatarcast.errors import InputError
from avatarcast.speech.visemes import SHAPES, Shape

WIDTH, HEIGHT = 540, 960
MARGIN = 10  # canvas border that whole-picture motion (sway, breathing) may reveal
MOUTH_LEVELS = 6
BLINK_LEVELS = 4
BACKGROUNDS = ("keep", "green", "white", "remove")
BUILDER = f"avatarcast {__version__} photo/1"

# Thresholds, chosen on the astronaut photo and its damaged variants (tests/avatars):
MIN_FACE_PX = 80  # between the temples; the astronaut's is 91 px (512 px photo)
MIN_FACE_FRAC = 0.15  # of the photo's width
MAX_ROLL_DEG = 15.0
MAX_YAW_ASYM = 0.3  # |left - right| / (left + right), nose tip to temples (~30° turn)
MIN_SHARPNESS = 60.0  # variance of the Laplacian on the face scaled to 128 px wide
MIN_FACE_LUMA = 55.0
REASONS = {
    "unsupported_file": "the file is not a PNG, JPEG, BMP, WebP or TIFF picture",
    "corrupt_file": "the picture is damaged or truncated",
    "no_face": "no face was found",
    "multiple_faces": "more than one face is in the picture; use a photo of one person",
    "face_too_small": "the face is too small; move closer or use a larger photo",
    "face_cut_off": "the face is cut off by the edge of the picture",
    "head_tilted": "the head is tilted; hold it upright",
    "head_turned": "the head is turned; face the camera",
    "too_dark": "the face is too dark; add light in front of the person",
    "too_blurry": "the face is blurry; hold the camera still and focus on the face",
}
ProgressFn = Callable[[int, int, str], None]


class AvatarQualityError(InputError):
    """The photo cannot make a good avatar; `reason` is one of `REASONS`."""

    code = "avatar_photo_rejected"

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(REASONS[reason] + (f" ({detail})" if detail else ""))
        self.reason = reason


_MAGIC = (b"\x89PNG", b"\xff\xd8\xff", b"BM", b"RIFF", b"II*\x00", b"MM\x00*")


def load_photo(path: Path) -> NDArray[np.uint8]:
    """Decode a photo to RGB; unsupported/corrupt files raise AvatarQualityError."""
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from exc
    if not raw.startswith(_MAGIC):
        raise AvatarQualityError("unsupported_file", Path(path).name)
    # OpenCV decodes truncated JPEG/PNG files without failing (grey bottom): check the ends
    body = raw.rstrip(b"\x00\r\n ")
    if raw.startswith(b"\xff\xd8") and not body.endswith(b"\xff\xd9"):
        raise AvatarQualityError("corrupt_file", "the JPEG ends early")
    if raw.startswith(b"\x89PNG") and b"IEND" not in raw[-64:]:
        raise AvatarQualityError("corrupt_file", "the PNG ends early")
    img = cv2.imdecode(np.frombuffer(raw, np.uint8), cv2.IMREAD_COLOR)
    if img is None or img.size == 0:
        raise AvatarQualityError("corrupt_file")
    return np.asarray(cv2.cvtColor(img, cv2.COLOR_BGR2RGB), np.uint8)


def _mesh(rgb: NDArray[np.uint8]) -> list[NDArray[np.float64]]:
    h, w = rgb.shape[:2]
    with (
        mediapipe_quiet() as mp,
        mp.solutions.face_mesh.FaceMesh(
            static_image_mode=True, max_num_faces=3, refine_landmarks=True
        ) as fm,
    ):
        res = fm.process(np.ascontiguousarray(rgb))
    return [
        np.array([[p.x * w, p.y * h] for p in f.landmark], np.float64)
        for f in (res.multi_face_landmarks or [])
    ]


def _detect(rgb: NDArray[np.uint8]) -> list[tuple[float, float, float, float]]:
    """Face boxes (x, y, w, h) in pixels from the full-range detector (finds small faces)."""
    h, w = rgb.shape[:2]
    with (
        mediapipe_quiet() as mp,
        mp.solutions.face_detection.FaceDetection(
            model_selection=1, min_detection_confidence=0.6
        ) as fd,
    ):
        res = fd.process(np.ascontiguousarray(rgb))
    out = []
    for d in res.detections or []:
        b = d.location_data.relative_bounding_box
        out.append((b.xmin * w, b.ymin * h, b.width * w, b.height * h))
    return out


@dataclass
class FaceCheck:
    landmarks: NDArray[np.float64]  # (478, 2) photo pixels
    passed: list[str] = field(default_factory=list)
    measures: dict[str, float] = field(default_factory=dict)


def check_photo(rgb: NDArray[np.uint8]) -> FaceCheck:
    """All photo checks, cheapest first; AvatarQualityError on the first that fails."""
    h, w = rgb.shape[:2]
    passed = ["file"]
    boxes = _detect(rgb)
    if len(boxes) > 1:
        raise AvatarQualityError("multiple_faces", f"{len(boxes)} faces")
    meshes = _mesh(rgb)
    if not meshes and len(boxes) == 1:
        # the mesh's own detector is short-range: in a large photo it misses a face the
        # full-range detector found, so look again in a crop around that face
        bx, by, bw, bh = boxes[0]
        x0, y0 = max(0, int(bx - bw)), max(0, int(by - bh))
        crop = rgb[y0 : int(by + 2 * bh), x0 : int(bx + 2 * bw)]
        meshes = [m + np.array([x0, y0]) for m in _mesh(crop)] if crop.size else []
    if len(meshes) > 1:
        raise AvatarQualityError("multiple_faces", f"{len(meshes)} faces")
    if not meshes:
        if boxes and (boxes[0][2] < MIN_FACE_PX or boxes[0][2] < MIN_FACE_FRAC * w):
            raise AvatarQualityError("face_too_small", f"about {boxes[0][2]:.0f} px wide")
        raise AvatarQualityError("no_face")
    passed.append("one_face")
    lm = meshes[0][:, :2]
    temple = float(np.linalg.norm(lm[454] - lm[234]))
    if temple < MIN_FACE_PX or temple < MIN_FACE_FRAC * w:
        raise AvatarQualityError(
            "face_too_small",
            f"{temple:.0f} px between the temples; needs {MIN_FACE_PX} px and "
            f"{MIN_FACE_FRAC:.0%} of the width",
        )
    passed.append("face_size")
    pad = 0.01 * max(w, h)
    if lm[:, 0].min() < pad or lm[:, 1].min() < pad or lm[:, 0].max() > w - pad:
        raise AvatarQualityError("face_cut_off")
    if lm[:, 1].max() > h - pad:
        raise AvatarQualityError("face_cut_off")
    passed.append("face_inside")
    eye = lm[263] - lm[33]
    roll = float(np.degrees(np.arctan2(eye[1], eye[0])))
    if abs(roll) > MAX_ROLL_DEG:
        raise AvatarQualityError("head_tilted", f"{abs(roll):.0f}°, at most {MAX_ROLL_DEG:.0f}°")
    passed.append("head_upright")
    dl, dr = np.linalg.norm(lm[1] - lm[234]), np.linalg.norm(lm[1] - lm[454])
    yaw = float(abs(dl - dr) / (dl + dr))
    if yaw > MAX_YAW_ASYM:
        raise AvatarQualityError("head_turned")
    passed.append("head_frontal")
    face = _face_patch(rgb, lm, temple)
    luma = float(face.mean())
    if luma < MIN_FACE_LUMA:
        raise AvatarQualityError("too_dark", f"mean brightness {luma:.0f}/255")
    passed.append("brightness")
    sharp = float(cv2.Laplacian(face, cv2.CV_32F).var())
    if sharp < MIN_SHARPNESS:
        raise AvatarQualityError("too_blurry", f"sharpness {sharp:.0f}, needs {MIN_SHARPNESS:.0f}")
    passed.append("sharpness")
    measures = {"temple_px": temple, "roll_deg": roll, "yaw_asym": yaw, "luma": luma}
    measures["sharpness"] = sharp
    return FaceCheck(lm, passed, {k: round(v, 2) for k, v in measures.items()})


def _face_patch(rgb: NDArray[np.uint8], lm: NDArray[np.float64], temple: float) -> NDArray[Any]:
    """The face's grey pixels at a fixed scale (128 px between temples): sharpness and
    brightness then mean the same for every photo size."""
    x0, y0 = np.maximum(lm.min(0), 0).astype(int)
    x1, y1 = lm.max(0).astype(int)
    grey = cv2.cvtColor(rgb[y0 : y1 + 1, x0 : x1 + 1], cv2.COLOR_RGB2GRAY)
    s = 128.0 / temple
    return cv2.resize(grey, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)


def frame_portrait(
    rgb: NDArray[np.uint8], lm: NDArray[np.float64]
) -> tuple[NDArray[np.uint8], NDArray[np.float64], float]:
    """Scale/crop to the canvas (540×960 + margin): head-and-shoulders like the built-in
    avatar (face ~36 % of the width, eyes at ~38 % of the height), never leaving the photo
    (the scale grows until the photo covers the canvas). Returns canvas, landmarks, scale."""
    cw, ch = WIDTH + 2 * MARGIN, HEIGHT + 2 * MARGIN
    h, w = rgb.shape[:2]
    temple = float(np.linalg.norm(lm[454] - lm[234]))
    s = max(0.36 * WIDTH / temple, cw / w, ch / h)
    centre = (lm[234] + lm[454]) / 2 * s
    eyes = (lm[33] + lm[263]) / 2 * s
    ox = float(np.clip(centre[0] - cw / 2, 0, w * s - cw))
    oy = float(np.clip(eyes[1] - (MARGIN + 0.38 * HEIGHT), 0, h * s - ch))
    mat = np.array([[s, 0, -ox], [0, s, -oy]], np.float64)
    interp = cv2.INTER_AREA if s < 1 else cv2.INTER_CUBIC
    if s < 1:  # area averaging needs resize (warpAffine would alias)
        small = cv2.resize(rgb, (round(w * s), round(h * s)), interpolation=interp)
        x, y = round(ox), round(oy)
        canvas = np.ascontiguousarray(small[y : y + ch, x : x + cw])
        mat[:, 2] = [-x, -y]
        if canvas.shape[:2] != (ch, cw):
            canvas = cv2.copyMakeBorder(
                canvas, 0, ch - canvas.shape[0], 0, cw - canvas.shape[1], cv2.BORDER_REPLICATE
            )
    else:
        canvas = cv2.warpAffine(rgb, mat, (cw, ch), flags=interp, borderMode=cv2.BORDER_REPLICATE)
    return canvas, lm * s + mat[:, 2], s


def cut_box(img: NDArray[np.uint8], box: tuple[int, int, int, int]) -> NDArray[np.uint8]:
    """The box plus one pixel above and left (odd poses need it; see CustomAvatar)."""
    x, y, w, h = box
    return img[y - 1 : y + h, x - 1 : x + w]


def pasted_sprite(
    base: NDArray[np.uint8], box: tuple[int, int, int, int], content: NDArray[np.uint8]
) -> NDArray[np.uint8]:
    """A sprite: `base` with `content` (box-sized) in `box`, cut like `cut_box` (a copy)."""
    work = cut_box(base, box).copy()
    work[1:, 1:] = content
    return work


def eye_sprites(
    base: NDArray[np.uint8], src: NDArray[np.uint8], eye_rig: EyeRig
) -> NDArray[np.uint8]:
    """(BLINK_LEVELS + 1, h + 1, w + 1, 3): `base` with the eyes of `src` closed by each
    blink level."""
    return np.stack(
        [
            pasted_sprite(base, eye_rig.box, eye_rig.warp(src, k / BLINK_LEVELS))
            for k in range(BLINK_LEVELS + 1)
        ]
    )


def file_sha256(path: Path) -> str:
    """Hash of a source file, read in pieces (videos can be large)."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def rig_manifest(
    lm: NDArray[np.float64],
    mouth_rig: MouthRig,
    eye_rig: EyeRig,
    height: int,
    background: str,
    size: tuple[int, int] = (WIDTH, HEIGHT),
) -> dict[str, Any]:
    """The manifest fields every warped-face asset has (photo and video alike)."""
    _, my, _, mh = mouth_rig.box
    face = lm[[10, 152, 234, 454]]
    # head motion fades out over the neck, below everything the sprites cover
    neck0 = my + mh + 2
    neck1 = min(height, neck0 + max(40, round(0.35 * float(lm[152, 1] - lm[10, 1]))))
    return {
        "size": {"width": size[0], "height": size[1]},
        "margin": MARGIN,
        "background": background,
        "mouth_levels": MOUTH_LEVELS,
        "blink_levels": BLINK_LEVELS,
        "shapes": [s.value for s in SHAPES],
        "mouth_box": list(mouth_rig.box),
        "eye_box": list(eye_rig.box),
        "neck_rows": [int(neck0), int(neck1)],
        "face_box": [round(float(v), 1) for v in (*face.min(0), *face.max(0))],
        "landmarks": np.round(lm, 2).tolist(),
    }


def build_photo_avatar(
    photo: Path,
    name: str,
    data_dir: Path,
    background: str = "keep",
    progress: ProgressFn | None = None,
) -> dict[str, Any]:
    """Check, build and register the avatar `name`; returns the summary the CLI prints."""
    t0 = time.perf_counter()
    check_name(name)
    if background not in BACKGROUNDS:
        raise InputError(f"--background must be one of {', '.join(BACKGROUNDS)}")
    if (Path(data_dir) / "avatars" / name).exists():
        raise InputError(f"avatar {name!r} already exists; delete it first")
    total = 5 + len(SHAPES) * MOUTH_LEVELS
    step = 0

    def tick(label: str) -> None:
        nonlocal step
        step += 1
        if progress is not None:
            progress(step, total, label)

    rgb = load_photo(photo)
    tick("checking the photo")
    check = check_photo(rgb)
    tick("framing")
    src, lm, scale = frame_portrait(rgb, check.landmarks)
    matte = person_matte(src, background)
    if background == "keep":
        plate = fill_background(src, matte, MARGIN)
    else:
        plate = apply_background(src, matte, background)
    tick("rigging the face")
    mouth_rig, eye_rig = MouthRig(lm), EyeRig(lm)
    mx, my, mw, mh = mouth_rig.box
    ex, ey, ew, eh = eye_rig.box
    if ey + eh > my or min(mx, ex, my, ey) < 1 or max(mx + mw, ex + ew) >= src.shape[1]:
        raise AvatarQualityError("face_cut_off", "the mouth or eyes reach the frame edge")
    if my + mh >= src.shape[0]:
        raise AvatarQualityError("face_cut_off", "the chin reaches the bottom of the frame")
    mouth = np.empty((1 + len(SHAPES) * MOUTH_LEVELS, mh + 1, mw + 1, 3), np.uint8)
    for si, shape in enumerate(SHAPES):
        for k in range(1, MOUTH_LEVELS + 1):
            warped = mouth_rig.warp(src, shape, k / MOUTH_LEVELS)
            mouth[mouth_index(si, k, MOUTH_LEVELS)] = pasted_sprite(src, mouth_rig.box, warped)
            tick(f"mouth {shape.value}")
    # the rest mouth (lips closed) is every shape at openness 0, and part of the base picture
    rest = mouth_rig.warp(src, Shape.X, 0.0)
    canvas = src.copy()
    canvas[my : my + mh, mx : mx + mw] = rest
    mouth[0] = cut_box(canvas, mouth_rig.box)
    eyes = eye_sprites(canvas, src, eye_rig)
    tick("blinks")
    tick("saving")
    manifest: dict[str, Any] = {
        "kind": "photo",
        "builder": BUILDER,
        "created_unix": round(time.time(), 3),
        "source": {
            "file": Path(photo).name,
            "sha256": file_sha256(Path(photo)),
            "width": int(rgb.shape[1]),
            "height": int(rgb.shape[0]),
            "scale": round(scale, 5),
        },
        **rig_manifest(lm, mouth_rig, eye_rig, src.shape[0], background),
        "checks": {"passed": check.passed, "measures": check.measures},
    }
    write_asset(Path(data_dir), name, manifest, canvas, plate, matte, mouth, eyes)
    return {
        "name": name,
        "kind": "photo",
        "width": WIDTH,
        "height": HEIGHT,
        "background": background,
        "seconds": round(time.perf_counter() - t0, 2),
        "checks_passed": check.passed,
        "path": str(Path(data_dir) / "avatars" / name),
    }
