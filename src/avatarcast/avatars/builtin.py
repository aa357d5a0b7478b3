"""The built-in avatar: an illustrated presenter drawn entirely by code (see `builtin_art`).

Drawing happens in a 540×960 design space scaled to the output size, so the avatar is crisp
at 270×480 or 1080×1920 alike. Rendering a frame never draws: the avatar is rasterised with
skia into cached YUV420 pieces, and `render()` only copies arrays:

- base frames: background + body + head (eyes open, mouth at rest), one per quantised pose
  key (head offset in whole pixels, body lift for breathing), built lazily, LRU-bounded;
- sprites: small opaque rectangles of the face (eye band, mouth box) drawn at one blink level
  or mouth (shape, openness) level, pre-composited over the face so pasting is a plain copy.
  The face moves rigidly with the head, so a sprite depends only on the pose's parity (chroma
  is 2×2 subsampled, so sprites sit on even coordinates and carry the odd pixel inside).
"""

from __future__ import annotations

import threading
from collections.abc import Hashable
from typing import cast

import numpy as np
import skia
from numpy.typing import NDArray

from avatarcast.avatars.builtin_art import (
    CLOSED,
    DESIGN_W,
    EYE_BOX,
    MOUTH_BOX,
    draw_background,
    draw_figure,
    draw_head,
    mouth_geo,
)
from avatarcast.render.compose import PoseCache, PoseKey, sprite_box
from avatarcast.render.frame import FrameState, YuvFrame
from avatarcast.speech.visemes import Shape

OPEN_LEVELS = 10  # mouth openness is drawn at k / OPEN_LEVELS, k = 0..OPEN_LEVELS
BLINK_LEVELS = 6  # eyelid positions k / BLINK_LEVELS; a blink lasts only 4–6 frames
BREATH_PX = 1.2  # body lift at full breath, in design pixels
# Base frames for the whole pose range idle motion visits (7 × 5 head offsets × 3 body lifts)
# take ~82 MB at 540×960; the budget grows with the frame area so 1080×1920 does not thrash.
BASE_CACHE_BYTES_540 = 100 << 20
BASE_CACHE_MAX_BYTES = 400 << 20


class BuiltinAvatar:
    """The default presenter. Thread-safe; build once and share (see the registry)."""

    name = "default"

    def __init__(self, width: int = 540, height: int = 960) -> None:
        if width % 2 or height % 2 or width < 90 or abs(width / height - 9 / 16) > 0.01:
            raise ValueError(f"the built-in avatar needs an even 9:16 size, got {width}x{height}")
        self.width, self.height = width, height
        self.scale = width / DESIGN_W
        self.max_shift = round(24 * self.scale)  # poses beyond this would leave the frame
        self._bg = np.empty((height, width, 4), np.uint8)
        canvas = skia.Surface(self._bg).getCanvas()
        canvas.scale(self.scale, self.scale)
        draw_background(canvas)
        self._eye_box = sprite_box(EYE_BOX, self.scale)
        self._mouth_box = sprite_box(MOUTH_BOX, self.scale)
        area = width * height / (540 * 960)
        base_bytes = min(BASE_CACHE_MAX_BYTES, int(BASE_CACHE_BYTES_540 * max(1.0, area)))
        self._cache = PoseCache(
            width,
            height,
            self._draw_base,
            self._draw_matte,
            self._draw_sprite,
            max_bytes=(base_bytes, 64 << 20, 24 << 20),
        )
        # breathing lifts the body by one step up or down: 3 levels keep the pose space small
        self._lift_step = max(1, round(BREATH_PX * self.scale))
        self._thumb: NDArray[np.uint8] | None = None
        self._thumb_lock = threading.Lock()

    def render(self, state: FrameState) -> YuvFrame:
        key = self.pose_key(state)
        blink = round(min(max(state.blink, 0.0), 1.0) * BLINK_LEVELS)
        level = round(state.mouth.open * OPEN_LEVELS)
        # every shape is the same closed mouth at openness 0: share those sprites
        shape = state.mouth.shape if level else Shape.X
        eye = self._cache.sprite(("eye", blink), self._eye_box, key)
        mouth = self._cache.sprite((shape, level), self._mouth_box, key)
        return self._cache.frame(key, [eye, mouth])

    def alpha(self, state: FrameState) -> NDArray[np.uint8]:
        return self._cache.matte(self.pose_key(state))

    def thumbnail(self) -> NDArray[np.uint8]:
        with self._thumb_lock:
            if self._thumb is None:
                self._thumb = draw_rgb(180, 320)
            return self._thumb

    def warm_up(self, shifts: tuple[int, int] = (3, 2)) -> None:
        """Prebuild every sprite and the base frames of the poses idle motion visits most
        (head within ±shifts output pixels, as `IdleMotion` produces; every body lift)."""
        sx, sy = shifts
        step = self._lift_step
        for dy in range(-sy, sy + 1):
            for dx in range(-sx, sx + 1):
                for b in (-step, 0, step):
                    self._cache.base((dx, dy, b))
        whats: list[tuple[str, int]] = [("eye", b) for b in range(BLINK_LEVELS + 1)]
        whats += [(Shape.X, 0)] + [(s, k) for s in Shape for k in range(1, OPEN_LEVELS + 1)]
        for px in (0, 1):
            for py in (0, 1):
                for what in whats:
                    box = self._eye_box if what[0] == "eye" else self._mouth_box
                    self._cache.sprite(what, box, (px - box[0] % 2, py - box[1] % 2, 0))

    @property
    def cache_bytes(self) -> int:
        return self._cache.nbytes

    def pose_key(self, state: FrameState) -> PoseKey:
        """(head dx, head dy, body lift) in whole output pixels.

        Head tilt is not drawn (a rotated head would need per-angle bases and sprites)."""
        m = self.max_shift
        dx = min(max(round(state.head_dx), -m), m)
        dy = min(max(round(state.head_dy), -m), m)
        lift = -self._lift_step * round(min(max(state.breath, -1.0), 1.0))
        return dx, dy, lift

    def _draw_base(self, rgba: NDArray[np.uint8], key: PoseKey) -> None:
        rgba[:] = self._bg
        draw_figure(skia.Surface(rgba).getCanvas(), key, self.scale, 0.0, CLOSED)

    def _draw_matte(self, rgba: NDArray[np.uint8], key: PoseKey) -> None:
        draw_figure(skia.Surface(rgba).getCanvas(), key, self.scale, 0.0, CLOSED)

    def _draw_sprite(self, rgba: NDArray[np.uint8], what: Hashable, ox: int, oy: int) -> None:
        kind, level = cast(tuple[str, int], what)
        canvas = skia.Surface(rgba).getCanvas()
        canvas.translate(ox, oy)
        canvas.scale(self.scale, self.scale)
        if kind == "eye":
            draw_head(canvas, level / BLINK_LEVELS, CLOSED)
        else:
            draw_head(canvas, 0.0, mouth_geo(Shape(kind), level / OPEN_LEVELS))


def draw_rgb(width: int, height: int, state: FrameState | None = None) -> NDArray[np.uint8]:
    """The avatar drawn directly (no caches) as RGB; for thumbnails, previews and tests."""
    st = state or FrameState()
    rgba = np.empty((height, width, 4), np.uint8)
    canvas = skia.Surface(rgba).getCanvas()
    scale = width / DESIGN_W
    canvas.save()
    canvas.scale(scale, scale)
    draw_background(canvas)
    canvas.restore()
    lift = -max(1, round(BREATH_PX * scale)) * round(min(max(st.breath, -1.0), 1.0))
    key = (round(st.head_dx), round(st.head_dy), lift)
    geo = mouth_geo(st.mouth.shape, st.mouth.open)
    draw_figure(canvas, key, scale, min(max(st.blink, 0.0), 1.0), geo)
    return np.ascontiguousarray(rgba[..., :3])
