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
from avatarcast.avatars.layered import LayeredAvatar
from avatarcast.render.compose import PoseKey, sprite_box
from avatarcast.render.frame import FrameState
from avatarcast.speech.visemes import Shape

OPEN_LEVELS = 10  # mouth openness is drawn at k / OPEN_LEVELS, k = 0..OPEN_LEVELS
BLINK_LEVELS = 6  # eyelid positions k / BLINK_LEVELS; a blink lasts only 4–6 frames
BREATH_PX = 1.2  # body lift at full breath, in design pixels
# Base frames for the whole pose range idle motion visits (7 × 5 head offsets × 3 body lifts)
# take ~82 MB at 540×960; the budget grows with the frame area so 1080×1920 does not thrash.
BASE_CACHE_BYTES_540 = 100 << 20
BASE_CACHE_MAX_BYTES = 400 << 20


class BuiltinAvatar(LayeredAvatar):
    """The default presenter. Thread-safe; build once and share (see the registry)."""

    name = "default"

    def __init__(self, width: int = 540, height: int = 960) -> None:
        if width % 2 or height % 2 or width < 90 or abs(width / height - 9 / 16) > 0.01:
            raise ValueError(f"the built-in avatar needs an even 9:16 size, got {width}x{height}")
        self.scale = width / DESIGN_W
        self._bg = np.empty((height, width, 4), np.uint8)
        canvas = skia.Surface(self._bg).getCanvas()
        canvas.scale(self.scale, self.scale)
        draw_background(canvas)
        area = width * height / (540 * 960)
        base_bytes = min(BASE_CACHE_MAX_BYTES, int(BASE_CACHE_BYTES_540 * max(1.0, area)))
        super().__init__(
            width,
            height,
            eye_box=sprite_box(EYE_BOX, self.scale),
            mouth_box=sprite_box(MOUTH_BOX, self.scale),
            blink_levels=BLINK_LEVELS,
            mouth_levels=OPEN_LEVELS,
            # breathing lifts the body by one step up or down: 3 levels keep the pose space small
            lift_step=max(1, round(BREATH_PX * self.scale)),
            max_shift=round(24 * self.scale),  # poses beyond this would leave the frame
            cache_bytes=(base_bytes, 64 << 20, 24 << 20),
        )

    def _head_offset(self, key: PoseKey) -> PoseKey:
        return key[0], key[1], 0  # breathing lifts the body, not the head

    def _draw_thumbnail(self) -> NDArray[np.uint8]:
        return draw_rgb(180, 320)

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
