"""`CustomAvatar`: a built asset (see `avatars.asset`) streamed like the built-in avatar.

Rendering never warps: the asset holds the framed photo (with a margin) and pre-warped RGB
sprites of the mouth box (9 shapes × levels) and the eye box (blink levels). Per frame,
`render()` copies a cached YUV420 base frame (the canvas shifted by the pose) and pastes one
eye and one mouth sprite, exactly the built-in avatar's cost.

Motion, like the built-in avatar's: breathing lifts the whole person by a pixel; head sway
moves the head (everything above the asset's neck rows) by whole pixels over a still body,
the neck rows blending from the head's offset to none. The person is composited over the
still background plate once per pose, when the base frame is built. Keeping the background
and body still is what keeps x264's cost near the built-in avatar's: moving the whole
picture cost ~30 % more per frame, moving the whole person ~22 %.

Other 9:16 output sizes than the built one are made at load time by `scale_asset`: the
pictures and every sprite are resampled with one and the same pixel mapping, so sprites
still match the base frame exactly at their borders.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Hashable
from typing import Any, cast

import cv2
import numpy as np
from numpy.typing import NDArray

from avatarcast import FRAME_RATE_HZ
from avatarcast.avatars.asset import PhotoAsset, VideoAsset, mouth_index
from avatarcast.avatars.layered import LayeredAvatar
from avatarcast.render.compose import PoseKey
from avatarcast.render.frame import FrameState, YuvFrame
from avatarcast.speech.visemes import SHAPES, Shape

_SHAPE_POS = {s: i for i, s in enumerate(SHAPES)}
BREATH_PX = 1  # whole-picture lift at full breath


class CustomAvatar(LayeredAvatar):
    """An avatar from a loaded `PhotoAsset`. Thread-safe; share one per (name, size).
    A `VideoAsset` makes a `VideoAvatar` (its idle loop replaces the synthetic motion)."""

    def __new__(cls, name: str, asset: PhotoAsset, *args: Any, **kwargs: Any) -> CustomAvatar:
        if cls is CustomAvatar and isinstance(asset, VideoAsset):
            cls = VideoAvatar
        return object.__new__(cls)

    def __init__(self, name: str, asset: PhotoAsset, width: int, height: int) -> None:
        if (width, height) != (asset.width, asset.height):
            asset = scale_asset(asset, width, height)
        self.name = name
        self.asset = asset
        m = asset.margin
        self._m = m
        mx, my, mw, mh = asset.box("mouth")
        ex, ey, ew, eh = asset.box("eye")
        n0, n1 = asset.neck_rows
        rows = np.arange(height, dtype=np.float32) + m  # canvas rows of the frame at rest
        self._head_w = np.clip((n1 - rows) / max(n1 - n0, 1), 0.0, 1.0)[:, None]
        self._cols = np.arange(width, dtype=np.float32)[None, :] + m
        super().__init__(
            width,
            height,
            # boxes relative to the output frame at pose 0 (PoseCache adds the pose offset)
            eye_box=(ex - m, ey - m, ew, eh),
            mouth_box=(mx - m, my - m, mw, mh),
            blink_levels=asset.blink_levels,
            mouth_levels=asset.mouth_levels,
            lift_step=BREATH_PX,
            max_shift=max(0, m - BREATH_PX - 1),
            cache_bytes=(
                self._base_cache_bytes(width, height),
                self._matte_cache_bytes(width, height),
                32 << 20,
            ),
        )

    def _base_cache_bytes(self, width: int, height: int) -> int:
        """Budget of cached whole frames (the poses idle motion visits fit easily)."""
        return 100 << 20

    def _matte_cache_bytes(self, width: int, height: int) -> int:
        return 48 << 20

    def _head_offset(self, key: PoseKey) -> PoseKey:
        """Breathing lifts the whole person, head included."""
        return key[0], key[1] + key[2], 0

    def _draw_thumbnail(self) -> NDArray[np.uint8]:
        m = self._m
        rgb = self.asset.canvas[m : m + self.height, m : m + self.width]
        if self.height == self.width:  # a square video avatar
            size = (240, 240)
        else:
            size = (180, 320) if self.height > self.width else (320, 180)
        thumb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
        return np.asarray(thumb, np.uint8)

    def _person(self, key: PoseKey, layer: NDArray[np.uint8]) -> NDArray[np.uint8]:
        """`layer` (canvas or matte) as the frame shows it at `key`: the head shifted by
        (dx, dy), the body not, the neck rows in between; all shifted by the lift."""
        dx, dy, lift = key
        m = self._m
        if dx == 0 and dy == 0:
            return layer[m - lift : m - lift + self.height, m : m + self.width]
        # rows fully in the head or the body map to whole pixels: exact copies there, so
        # sprites cut from the canvas still match the base frame at their borders
        map_x = np.broadcast_to(self._cols - dx * self._head_w, (self.height, self.width))
        map_y = np.broadcast_to(
            np.arange(self.height, dtype=np.float32)[:, None] + m - lift - dy * self._head_w,
            (self.height, self.width),
        )
        out = cv2.remap(
            np.asarray(layer),
            np.ascontiguousarray(map_x, np.float32),
            np.ascontiguousarray(map_y, np.float32),
            cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_REPLICATE,
        )
        return np.asarray(out, np.uint8)

    def _draw_base(self, rgba: NDArray[np.uint8], key: PoseKey) -> None:
        m = self._m
        bg = self.asset.background[m : m + self.height, m : m + self.width].astype(np.uint32)
        fg = self._person(key, self.asset.canvas).astype(np.uint32)
        a = self._person(key, self.asset.matte).astype(np.uint32)[..., None]
        rgba[..., :3] = (fg * a + bg * (255 - a) + 127) // 255
        rgba[..., 3] = 255

    def _draw_matte(self, rgba: NDArray[np.uint8], key: PoseKey) -> None:
        rgba[..., 3] = self._person(key, self.asset.matte)

    def _draw_sprite(self, rgba: NDArray[np.uint8], what: Hashable, ox: int, oy: int) -> None:
        # PoseCache asks for the box drawn shifted by the pose parity: pixel (c, r) shows
        # box-local (c - px, r - py); the stored sprite has one extra column/row before the
        # box for px, py = 1.
        kind, level = cast(tuple[str, int], what)
        if kind == "eye":
            src = self.asset.eyes[level]
            x0, y0 = self._eye_box[:2]
        else:
            src = self.asset.mouth[
                mouth_index(_SHAPE_POS[Shape(kind)], level, self.asset.mouth_levels)
            ]
            x0, y0 = self._mouth_box[:2]
        px, py = ox + x0, oy + y0
        h, w = rgba.shape[:2]
        rgba[..., :3] = src[1 - py : 1 - py + h, 1 - px : 1 - px + w]
        rgba[..., 3] = 255


def _resample(
    img: NDArray[np.uint8],
    s: float,
    origin_src: tuple[float, float],
    origin_dst: tuple[int, int],
    size: tuple[int, int],
    m: int,
    m2: int,
) -> NDArray[np.uint8]:
    """`size` (w, h) pixels of the scaled canvas whose top-left is canvas' pixel `origin_dst`,
    from `img`, a piece of the source canvas whose top-left is source pixel `origin_src`.
    Every call maps pixel centres the same way, so pieces agree with the whole exactly."""
    a = 1.0 / s
    b = (0.5 - m2) * a + m - 0.5  # source coordinate of scaled-canvas pixel 0
    mat = np.array(
        [
            [a, 0.0, a * origin_dst[0] + b - origin_src[0]],
            [0.0, a, a * origin_dst[1] + b - origin_src[1]],
        ]
    )
    if s < 1:  # pre-filter against aliasing (warpAffine has no area interpolation)
        img = np.asarray(cv2.GaussianBlur(np.asarray(img), (0, 0), 0.45 / s), np.uint8)
    out = cv2.warpAffine(
        np.asarray(img),
        mat,
        size,
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_REPLICATE,
    )
    return np.asarray(out, np.uint8)


def scale_asset(asset: PhotoAsset, width: int, height: int) -> PhotoAsset:
    """The asset resampled for a `width`×`height` output (same aspect, even sizes)."""
    w0, h0 = asset.width, asset.height
    if width % 2 or height % 2 or width < 90 or abs(width / height - w0 / h0) > 0.01:
        raise ValueError(
            f"custom avatars need an even size of the built aspect ({w0}x{h0}), "
            f"got {width}x{height}"
        )
    s = width / w0
    m = asset.margin
    m2 = max(2, math.ceil(m * s))
    full = (width + 2 * m2, height + 2 * m2)

    def whole(img: NDArray[np.uint8]) -> NDArray[np.uint8]:
        return _resample(img, s, (0, 0), (0, 0), full, m, m2)

    def to_dst(v: float) -> float:
        return (v - m) * s + m2

    manifest = copy.deepcopy(asset.manifest)
    pad = math.ceil(2 / s) + (math.ceil(1.35 / s) if s < 1 else 0) + 3
    sprites = {}
    for which, arr in (("mouth", asset.mouth), ("eye", asset.eyes)):
        bx, by, bw, bh = asset.box(which)
        # one spare pixel, and two more when downscaling (its pre-filter spreads changes)
        grow = 1 if s >= 1 else 3
        x0, y0 = math.floor(to_dst(bx)) - grow, math.floor(to_dst(by)) - grow
        x0, y0 = max(2, x0 - x0 % 2), max(2, y0 - y0 % 2)
        w = math.ceil(to_dst(bx + bw)) + grow - x0
        h = math.ceil(to_dst(by + bh)) + grow - y0
        w, h = w + w % 2, h + h % 2
        # each sprite back in its surroundings, then resampled like the whole canvas
        rx, ry = max(0, bx - 1 - pad), max(0, by - 1 - pad)
        region = np.array(asset.canvas[ry : by + bh + pad, rx : bx + bw + pad])
        out = np.empty((len(arr), h + 1, w + 1, 3), np.uint8)
        for i in range(len(arr)):
            region[by - 1 - ry : by + bh - ry, bx - 1 - rx : bx + bw - rx] = arr[i]
            out[i] = _resample(region, s, (rx, ry), (x0 - 1, y0 - 1), (w + 1, h + 1), m, m2)
        sprites[which] = out
        manifest[f"{which}_box"] = [x0, y0, w, h]
    bottom = max(b[1] + b[3] for b in (manifest["mouth_box"], manifest["eye_box"]))
    n0, n1 = asset.neck_rows
    n0s = max(bottom, round(to_dst(n0)))
    manifest["neck_rows"] = [n0s, max(n0s + 1, min(full[1], round(to_dst(n1))))]
    manifest["size"] = {"width": width, "height": height}
    manifest["margin"] = m2
    manifest["landmarks"] = [[to_dst(x), to_dst(y)] for x, y in manifest["landmarks"]]
    return PhotoAsset(
        asset.path,
        manifest,
        whole(asset.canvas),
        whole(asset.background),
        whole(asset.matte),
        sprites["mouth"],
        sprites["eye"],
    )


class VideoAvatar(CustomAvatar):
    """A video avatar: the base frame is the idle loop's current frame (the video's own
    blinks, breathing and head motion; no synthetic sway), chosen by the frame's index on the
    session timeline (`FrameState.frame_index`) at the video's frame rate. Speaking blends a
    mouth sprite from the mouth bank (see `avatars.mouth_bank`) over the loop frame with the
    asset's weight map, moved by whole pixels to where that loop frame's mouth sits; at rest
    the loop's own mouth shows. Renders only at the built size (`load_avatar` asks for it).
    With a keyed or removed background the loop frames show the person over the neutral
    plate and `alpha()` is that loop frame's matte; otherwise opaque.

    Base frames are keyed (loop index, 0, 0) in the PoseCache."""

    def __init__(
        self,
        name: str,
        asset: PhotoAsset,
        width: int,
        height: int,
    ) -> None:
        if not isinstance(asset, VideoAsset):
            raise TypeError("VideoAvatar needs a VideoAsset")
        if (width, height) != (asset.width, asset.height):
            raise ValueError(
                f"video avatars render at their built size ({asset.width}x{asset.height}), "
                f"got {width}x{height}"
            )
        self.loop = asset.loop
        self.fps = asset.fps
        self._alpha = asset.mouth_alpha
        self._loop_matte = asset.loop_matte
        self._offsets = [(round(float(x)), round(float(y))) for x, y in asset.mouth_offsets]
        super().__init__(name, asset, width, height)
        self.max_shift = 0

    def _base_cache_bytes(self, width: int, height: int) -> int:
        # every loop frame stays converted: a loop that does not fit would convert a frame
        # per frame (~10 ms at 720x1280 instead of ~0.1)
        return len(self.loop) * (width * height * 3 // 2) + (4 << 20)

    def _matte_cache_bytes(self, width: int, height: int) -> int:
        return len(self.loop) * width * height + (4 << 20)

    def alpha(self, state: FrameState) -> NDArray[np.uint8]:
        if self._loop_matte is None:
            return self._cache.matte((0, 0, 0))  # opaque: one matte for every loop frame
        return self._cache.matte(self.pose_key(state))

    def loop_index(self, frame_index: int) -> int:
        """The loop frame shown at output frame `frame_index` (the session timeline, not the
        wall clock: an offline render and a live session show the same picture)."""
        return int(frame_index * self.fps / FRAME_RATE_HZ) % len(self.loop)

    def mouth_shift(self, loop_index: int) -> tuple[int, int]:
        """Whole pixels the mouth sprite moves by on loop frame `loop_index`."""
        return self._offsets[loop_index] if self._offsets else (0, 0)

    def pose_key(self, state: FrameState) -> PoseKey:
        return self.loop_index(state.frame_index), 0, 0

    def render(self, state: FrameState) -> YuvFrame:
        key = self.pose_key(state)
        level = round(min(max(state.mouth.open, 0.0), 1.0) * self.asset.mouth_levels)
        if not level:  # at rest the loop's own mouth shows
            return self._cache.frame(key, [])
        dx, dy = self.mouth_shift(key[0])
        sprite = self._cache.sprite(
            (state.mouth.shape, level), self._mouth_box, (dx, dy, 0), self._alpha is not None
        )
        return self._cache.frame(key, [sprite])

    def warm_up(self, shifts: tuple[int, int] = (0, 0)) -> None:
        for i in range(len(self.loop)):
            self._cache.base((i, 0, 0))
        for dx, dy in {(x % 2, y % 2) for x, y in self._offsets or [(0, 0)]}:
            for s in SHAPES:
                for k in range(1, self.asset.mouth_levels + 1):
                    self._cache.sprite(
                        (s, k), self._mouth_box, (dx, dy, 0), self._alpha is not None
                    )

    def _draw_base(self, rgba: NDArray[np.uint8], key: PoseKey) -> None:
        m = self._m
        rgba[..., :3] = self.loop[key[0], m : m + self.height, m : m + self.width]
        rgba[..., 3] = 255

    def _draw_matte(self, rgba: NDArray[np.uint8], key: PoseKey) -> None:
        if self._loop_matte is None:
            rgba[..., 3] = 255
        else:
            m = self._m
            rgba[..., 3] = self._loop_matte[key[0], m : m + self.height, m : m + self.width]

    def _draw_sprite(self, rgba: NDArray[np.uint8], what: Hashable, ox: int, oy: int) -> None:
        super()._draw_sprite(rgba, what, ox, oy)
        if self._alpha is not None and what[0] != "eye":  # type: ignore[index]
            x0, y0 = self._mouth_box[:2]
            px, py = ox + x0, oy + y0
            h, w = rgba.shape[:2]
            rgba[..., 3] = self._alpha[1 - py : 1 - py + h, 1 - px : 1 - px + w]
