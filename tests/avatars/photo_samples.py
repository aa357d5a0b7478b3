"""Test photos made from scikit-image's public-domain astronaut portrait (one face, 512 px).

Each helper returns an RGB array or writes a file; the damaged variants exercise one quality
check each.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray
from skimage import data

# Where the astronaut's face is in the 512×512 photo (face mesh box: x 179..271, y 71..177)
FACE_REGION = (150, 40, 310, 210)  # x0, y0, x1, y1


def astronaut() -> NDArray[np.uint8]:
    return np.ascontiguousarray(data.astronaut())


def save(path: Path, rgb: NDArray[np.uint8], quality: int = 95) -> Path:
    params = [cv2.IMWRITE_JPEG_QUALITY, quality] if path.suffix == ".jpg" else []
    assert cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), params)
    return path


def blank() -> NDArray[np.uint8]:
    return np.full((512, 512, 3), 128, np.uint8)


def two_faces() -> NDArray[np.uint8]:
    a = astronaut()
    return np.ascontiguousarray(np.concatenate([a, a[:, ::-1]], axis=1))


def tiny_face() -> NDArray[np.uint8]:
    """The photo shrunk to 300 px inside a 1024 px grey canvas: a ~53 px face."""
    canvas = np.full((1024, 1024, 3), 120, np.uint8)
    canvas[300:600, 300:600] = cv2.resize(astronaut(), (300, 300), interpolation=cv2.INTER_AREA)
    return canvas


def blurred(sigma: float = 5.0) -> NDArray[np.uint8]:
    return np.ascontiguousarray(cv2.GaussianBlur(astronaut(), (0, 0), sigma))


def dark(gain: float = 0.15) -> NDArray[np.uint8]:
    return (astronaut().astype(np.float32) * gain).astype(np.uint8)


def rotated(deg: float = 30.0) -> NDArray[np.uint8]:
    m = cv2.getRotationMatrix2D((256, 256), deg, 1.0)
    return np.ascontiguousarray(
        cv2.warpAffine(astronaut(), m, (512, 512), borderMode=cv2.BORDER_REFLECT)
    )


def green_screen() -> NDArray[np.uint8]:
    """The astronaut (person segmented by mediapipe) over pure green."""
    return screen((0, 255, 0))


def screen(color: tuple[int, int, int]) -> NDArray[np.uint8]:
    """The astronaut (person segmented by mediapipe) over a plain colour."""
    import mediapipe as mp

    rgb = astronaut()
    with mp.solutions.selfie_segmentation.SelfieSegmentation(model_selection=0) as seg:
        mask = seg.process(rgb).segmentation_mask
    a = np.clip((mask - 0.3) / 0.4, 0, 1)[..., None]
    plain = np.empty_like(rgb)
    plain[:] = color
    return (rgb * a + plain * (1 - a) + 0.5).astype(np.uint8)


def truncated_jpeg(path: Path) -> Path:
    save(path, astronaut(), 90)
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    return path


def cut_off() -> NDArray[np.uint8]:
    """The photo cut just above the chin (the chin is at y ≈ 177)."""
    return np.ascontiguousarray(astronaut()[:160])


def turned(squeeze: float = 0.35) -> NDArray[np.uint8]:
    """A head turned to one side, imitated by squeezing the face's left half (at 2x size so
    the face stays large enough to reach the turn check)."""
    big = cv2.resize(astronaut(), (1024, 1024), interpolation=cv2.INTER_CUBIC)
    xs = np.arange(1024, dtype=np.float32)
    centre = 450.0
    src_x = np.clip(np.where(xs < centre, centre - (centre - xs) / squeeze, xs), 0, 1023)
    mx = np.tile(src_x, (1024, 1)).astype(np.float32)
    my = np.tile(np.arange(1024, dtype=np.float32)[:, None], (1, 1024))
    return np.ascontiguousarray(cv2.remap(big, mx, my, cv2.INTER_LINEAR)[:, 150:850])
