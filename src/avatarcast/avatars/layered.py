"""`LayeredAvatar`: the rendering the built-in and the custom (photo, video) avatars share.

An avatar of this kind is a `PoseCache` of YUV420 pieces: a base frame per pose key (head
offset, body lift), the person's matte per pose key, and small opaque sprites of the eye band
(one per blink level) and the mouth box (one per shape and openness level). A frame is the
pose's base frame with one eye and one mouth sprite pasted: `render()` only copies arrays.

A subclass draws the pieces (`_draw_base`, `_draw_matte`, `_draw_sprite`, `_draw_thumbnail`)
and says where its head sits at a pose (`_head_offset`); everything else is here.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Hashable

import numpy as np
from numpy.typing import NDArray

from avatarcast.render.compose import Box, PoseCache, PoseKey
from avatarcast.render.frame import FrameState, YuvFrame
from avatarcast.speech.visemes import SHAPES, Shape


class LayeredAvatar(ABC):
    """Pose keys, cached layers, eye and mouth sprites. Thread-safe; build once and share."""

    name: str

    def __init__(
        self,
        width: int,
        height: int,
        *,
        eye_box: Box,
        mouth_box: Box,
        blink_levels: int,
        mouth_levels: int,
        lift_step: int,
        max_shift: int,
        cache_bytes: tuple[int, int, int],
    ) -> None:
        """eye_box, mouth_box: the sprites' boxes at pose 0 (see `PoseCache.sprite`);
        blink_levels, mouth_levels: eyelid positions k / blink_levels and mouth openness
        k / mouth_levels are drawn; lift_step: the body lift at full breath, in output pixels;
        max_shift: the head offset limit; cache_bytes: (base frames, mattes, sprites) budgets.
        """
        self.width, self.height = width, height
        self.max_shift = max_shift
        self._eye_box, self._mouth_box = eye_box, mouth_box
        self._blink_levels, self._mouth_levels = blink_levels, mouth_levels
        self._lift_step = lift_step
        self._cache = PoseCache(
            width,
            height,
            self._draw_base,
            self._draw_matte,
            self._draw_sprite,
            max_bytes=cache_bytes,
        )
        self._thumb: NDArray[np.uint8] | None = None
        self._thumb_lock = threading.Lock()

    def pose_key(self, state: FrameState) -> PoseKey:
        """(head dx, head dy, body lift) in whole output pixels, the head within ±max_shift.

        Head tilt is not drawn (a rotated head would need per-angle bases and sprites)."""
        m = self.max_shift
        dx = min(max(round(state.head_dx), -m), m)
        dy = min(max(round(state.head_dy), -m), m)
        lift = -self._lift_step * round(min(max(state.breath, -1.0), 1.0))
        return dx, dy, lift

    def render(self, state: FrameState) -> YuvFrame:
        key = self.pose_key(state)
        head = self._head_offset(key)  # the sprites move with the head
        blink = round(min(max(state.blink, 0.0), 1.0) * self._blink_levels)
        level = round(min(max(state.mouth.open, 0.0), 1.0) * self._mouth_levels)
        # every shape is the same closed mouth at openness 0: share those sprites
        shape = state.mouth.shape if level else Shape.X
        eye = self._cache.sprite(("eye", blink), self._eye_box, head)
        mouth = self._cache.sprite((shape, level), self._mouth_box, head)
        return self._cache.frame(key, [eye, mouth])

    def alpha(self, state: FrameState) -> NDArray[np.uint8]:
        return self._cache.matte(self.pose_key(state))

    def thumbnail(self) -> NDArray[np.uint8]:
        with self._thumb_lock:
            if self._thumb is None:
                self._thumb = self._draw_thumbnail()
            return self._thumb

    def warm_up(self, shifts: tuple[int, int] = (3, 2)) -> None:
        """Prebuild every sprite at every parity and the base frames of the poses idle motion
        visits most (head within ±shifts output pixels, as `IdleMotion` produces; every body
        lift)."""
        sx, sy = shifts
        step = self._lift_step
        for dy in range(-sy, sy + 1):
            for dx in range(-sx, sx + 1):
                for lift in (-step, 0, step):
                    self._cache.base((dx, dy, lift))
        whats: list[tuple[str, int]] = [("eye", b) for b in range(self._blink_levels + 1)]
        whats += [(Shape.X, 0)]
        whats += [(s, k) for s in SHAPES for k in range(1, self._mouth_levels + 1)]
        for px in (0, 1):
            for py in (0, 1):
                for what in whats:
                    box = self._eye_box if what[0] == "eye" else self._mouth_box
                    self._cache.sprite(what, box, (px - box[0] % 2, py - box[1] % 2, 0))

    @property
    def cache_bytes(self) -> int:
        return self._cache.nbytes

    @abstractmethod
    def _head_offset(self, key: PoseKey) -> PoseKey:
        """Where the head (and so the eye and mouth sprites) sits at pose `key`, as a pose
        key for `PoseCache.sprite` (which reads its dx and dy)."""

    @abstractmethod
    def _draw_base(self, rgba: NDArray[np.uint8], key: PoseKey) -> None:
        """The whole opaque frame at `key` (eyes open, mouth at rest) into `rgba`."""

    @abstractmethod
    def _draw_matte(self, rgba: NDArray[np.uint8], key: PoseKey) -> None:
        """The person's alpha at `key` into `rgba[..., 3]`."""

    @abstractmethod
    def _draw_sprite(self, rgba: NDArray[np.uint8], what: Hashable, ox: int, oy: int) -> None:
        """`what` (("eye", level) or (shape, level)) with the head translated by (ox, oy)."""

    @abstractmethod
    def _draw_thumbnail(self) -> NDArray[np.uint8]:
        """A small RGB portrait (made once, on first use)."""
