"""The photo avatar's background: the person's matte, a kept/keyed/removed background.

The person moves (sway, breathing) over a still background, as with the built-in avatar: a
still background costs the video encoder almost nothing, a whole moving picture costs ~25 %
more per frame. So the build keeps two layers: the portrait (the person) and a background
plate. With `keep`, the plate is the photo with the person painted out (filled from the
surrounding background; only a few-pixel sliver beside the silhouette is ever uncovered).
With `green`/`white`/`remove` the plate is a plain neutral grey.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Iterator
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

BG_COLOR = np.array([232, 234, 238], np.float32)  # replaces a keyed/removed background
_mp_lock = threading.Lock()  # mediapipe graphs are not re-entrant


@contextlib.contextmanager
def mediapipe_quiet() -> Iterator[Any]:
    """mediapipe, used under a lock with file descriptor 2 silenced: its C++ logging (and
    a harmless protobuf message at import) write a dozen lines to stderr on every run,
    which would bury the one-line CLI error. Builds run one at a time, so muting the
    process's stderr for these ~100 ms is acceptable."""
    with _mp_lock:
        sys.stderr.flush()
        saved = os.dup(2)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        try:
            import mediapipe as mp

            yield mp
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            os.close(devnull)


def person_matte(canvas: NDArray[np.uint8], mode: str) -> NDArray[np.uint8]:
    """The person's alpha (255 person): keyed for green/white, else person segmentation."""
    img = canvas.astype(np.float32)
    if mode == "green":
        score = img[..., 1] - np.maximum(img[..., 0], img[..., 2])
        alpha = 1.0 - np.clip((score - 25.0) / 40.0, 0.0, 1.0)
    else:
        with (
            mediapipe_quiet() as mp,
            mp.solutions.selfie_segmentation.SelfieSegmentation(model_selection=0) as seg,
        ):
            mask = seg.process(np.ascontiguousarray(canvas)).segmentation_mask
        alpha = np.clip((mask.astype(np.float32) - 0.3) / 0.4, 0.0, 1.0)
        if mode == "white":
            sat = img.max(-1) - img.min(-1)
            white = np.clip((img.min(-1) - 205.0) / 25.0, 0, 1) * (sat < 30)
            # white background goes even where segmentation hesitates (hair edges), but a
            # white shirt inside a confident person mask stays
            alpha = np.where(alpha > 0.95, 1.0, alpha * (1.0 - white))
    alpha = cv2.GaussianBlur(alpha.astype(np.float32), (0, 0), 0.8)
    return np.clip(alpha * 255 + 0.5, 0, 255).astype(np.uint8)


def apply_background(
    canvas: NDArray[np.uint8], matte: NDArray[np.uint8], mode: str
) -> NDArray[np.uint8]:
    """Put the person (in place) over the neutral grey; despill green. Returns the plate."""
    img = canvas.astype(np.float32)
    if mode == "green":  # green light bounced onto hair and shoulders
        img[..., 1] = np.minimum(img[..., 1], np.maximum(img[..., 0], img[..., 2]))
    a = matte.astype(np.float32)[..., None] / 255.0
    canvas[:] = np.clip(img * a + BG_COLOR * (1 - a) + 0.5, 0, 255).astype(np.uint8)
    plate = np.empty_like(canvas)
    plate[:] = np.round(BG_COLOR).astype(np.uint8)
    return plate


def fill_background(
    canvas: NDArray[np.uint8], matte: NDArray[np.uint8], margin: int
) -> NDArray[np.uint8]:
    """The photo with the person painted out: a background plate for `keep`.

    Everything the person may uncover (their silhouette grown by the motion margin) is
    filled by inpainting at 1/8 scale (smooth, ~20 ms; the fill is only ever seen as a
    sliver of a few pixels beside the moving silhouette)."""
    h, w = matte.shape
    grow = 2 * margin + 5
    unknown = cv2.dilate((matte > 8).astype(np.uint8), np.ones((grow, grow), np.uint8))
    sw, sh = max(1, w // 8), max(1, h // 8)
    small = cv2.resize(canvas, (sw, sh), interpolation=cv2.INTER_AREA)
    small_mask = cv2.dilate(
        cv2.resize(unknown, (sw, sh), interpolation=cv2.INTER_NEAREST), np.ones((3, 3), np.uint8)
    )
    filled = cv2.inpaint(small, small_mask, 3, cv2.INPAINT_TELEA)
    up = cv2.resize(filled, (w, h), interpolation=cv2.INTER_LINEAR)
    # only what the person covers gets the fill: background visible at rest stays the
    # photo's own pixels (sprites cut from the photo then match the plate at their edges)
    under = cv2.dilate((matte > 8).astype(np.uint8), np.ones((3, 3), np.uint8))
    return np.where(under[..., None] > 0, up, canvas).astype(np.uint8)
