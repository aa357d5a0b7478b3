"""YUV420 helpers for cached-layer rendering: RGB → yuv420p conversion, sprites, a bounded cache.

Avatars draw in RGB once (skia), convert to YUV420 once, and per frame only copy arrays. Every
helper here works on PyAV's `yuv420p` ndarray layout (see `YuvFrame`).
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

import numpy as np
from numpy.typing import NDArray

from avatarcast.render.frame import YuvFrame


def rgb_to_yuv420(rgb: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """(h, w, 3 or 4) RGB(A) → (h * 3 // 2, w) yuv420p, BT.601 limited range ("studio
    swing", what x264 assumes); alpha is ignored (composite first).

    Integer arithmetic with the usual 8-bit fixed-point BT.601 coefficients (within 1 code
    value of the exact matrix, 4× faster than float). Chroma is taken from the sum of each 2×2
    block (the conversion is linear, so summing RGB first equals averaging chroma).
    """
    h, w = rgb.shape[:2]
    if h % 2 or w % 2:
        raise ValueError(f"yuv420 needs even dimensions, got {w}x{h}")
    out = np.empty((h * 3 // 2, w), np.uint8)
    r, g, b = (rgb[..., i].astype(np.uint16) for i in range(3))
    y = r * 66
    y += g * 129
    y += b * 25
    y += 128
    y >>= 8
    y += 16
    out[:h] = y
    r4, g4, b4 = (
        (c[0::2, 0::2] + c[1::2, 0::2] + c[0::2, 1::2] + c[1::2, 1::2]).astype(np.int32)
        for c in (r, g, b)
    )
    q = (h // 2) * (w // 2)
    chroma = out[h:].reshape(-1)
    u = (-38 * r4 - 74 * g4 + 112 * b4 + 512) >> 10
    v = (112 * r4 - 94 * g4 - 18 * b4 + 512) >> 10
    chroma[:q] = (u + 128).reshape(-1)
    chroma[q:] = (v + 128).reshape(-1)
    return out


def yuv420_to_rgb(data: NDArray[np.uint8], width: int, height: int) -> NDArray[np.uint8]:
    """Inverse of `rgb_to_yuv420` (nearest-neighbour chroma); for previews and tests."""
    frame = YuvFrame(data, width, height)
    y = (frame.y.astype(np.float32) - 16.0) * (255.0 / 219.0)
    u = (np.repeat(np.repeat(frame.u, 2, 0), 2, 1).astype(np.float32) - 128.0) * (255.0 / 224.0)
    v = (np.repeat(np.repeat(frame.v, 2, 0), 2, 1).astype(np.float32) - 128.0) * (255.0 / 224.0)
    r = y + 1.402 * v
    g = y - 0.344136 * u - 0.714136 * v
    b = y + 1.772 * u
    return np.clip(np.stack([r, g, b], axis=-1) + 0.5, 0, 255).astype(np.uint8)


@dataclass(frozen=True, slots=True)
class YuvSprite:
    """A pre-converted rectangle of YUV420 to paste at an even (x, y) of a frame: opaque
    (plain copies), or blended by a per-pixel weight when `alpha` is set."""

    x: int
    y: int
    y_plane: NDArray[np.uint8]
    u_plane: NDArray[np.uint8]
    v_plane: NDArray[np.uint8]
    # weights 0..256 for the luma and chroma planes (None: opaque)
    alpha: tuple[NDArray[np.uint16], NDArray[np.uint16]] | None = None

    @classmethod
    def from_rgb(cls, x: int, y: int, rgb: NDArray[np.uint8], blend: bool = False) -> YuvSprite:
        """From RGB(A); with `blend`, the A channel becomes the paste weight (chroma weights
        are 2×2 means)."""
        if x % 2 or y % 2:
            raise ValueError("sprites must sit on even coordinates (chroma is 2×2 subsampled)")
        h, w = rgb.shape[:2]
        data = rgb_to_yuv420(rgb)
        f = YuvFrame(data, w, h)
        alpha = None
        if blend:
            a = rgb[..., 3].astype(np.uint16)
            ay = (a * 256 + 127) // 255
            a4 = a[0::2, 0::2] + a[1::2, 0::2] + a[0::2, 1::2] + a[1::2, 1::2]
            auv = (a4.astype(np.uint32) * 256 + 510) // 1020
            alpha = (ay.astype(np.uint16), auv.astype(np.uint16))
        return cls(x, y, f.y.copy(), f.u.copy(), f.v.copy(), alpha)

    @property
    def nbytes(self) -> int:
        extra = 0 if self.alpha is None else self.alpha[0].nbytes + self.alpha[1].nbytes
        return self.y_plane.nbytes + self.u_plane.nbytes + self.v_plane.nbytes + extra

    def moved(self, x: int, y: int) -> YuvSprite:
        return YuvSprite(x, y, self.y_plane, self.u_plane, self.v_plane, self.alpha)

    def paste(self, y: NDArray[np.uint8], u: NDArray[np.uint8], v: NDArray[np.uint8]) -> None:
        """Into the planes of a frame: rectangle copies, or `(frame * (256 - a) + sprite * a)
        >> 8` per pixel for a blended sprite."""
        h, w = self.y_plane.shape
        cy, cx = self.y // 2, self.x // 2
        targets = (
            (y[self.y : self.y + h, self.x : self.x + w], self.y_plane),
            (u[cy : cy + h // 2, cx : cx + w // 2], self.u_plane),
            (v[cy : cy + h // 2, cx : cx + w // 2], self.v_plane),
        )
        if self.alpha is None:
            for dst, src in targets:
                dst[...] = src
            return
        for i, (dst, src) in enumerate(targets):
            a = self.alpha[min(i, 1)]
            mixed = dst.astype(np.uint16)
            mixed *= np.subtract(256, a, dtype=np.uint16)
            mixed += src * a
            mixed += 128
            mixed >>= 8
            dst[...] = mixed


def planes(
    data: NDArray[np.uint8], width: int, height: int
) -> tuple[NDArray[np.uint8], NDArray[np.uint8], NDArray[np.uint8]]:
    """Y, U, V views of a yuv420p array (no copies)."""
    q = (height // 2) * (width // 2)
    flat = data[height:].reshape(-1)
    return (
        data[:height],
        flat[:q].reshape(height // 2, width // 2),
        flat[q:].reshape(height // 2, width // 2),
    )


K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class LruCache(Generic[K, V]):
    """A thread-safe least-recently-used cache bounded by total bytes.

    Values are built outside the lock (two threads may build the same key once each; builds
    are deterministic, so either result is fine) so a slow build never blocks cache hits.
    """

    def __init__(self, max_bytes: int, size_of: Callable[[V], int]) -> None:
        self.max_bytes = max_bytes
        self._size_of = size_of
        self._items: OrderedDict[K, V] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: K, build: Callable[[], V]) -> V:
        with self._lock:
            hit = self._items.get(key)
            if hit is not None:
                self._items.move_to_end(key)
                return hit
        value = build()
        with self._lock:
            if key not in self._items:
                self._items[key] = value
                self._bytes += self._size_of(value)
                while self._bytes > self.max_bytes and len(self._items) > 1:
                    _, old = self._items.popitem(last=False)
                    self._bytes -= self._size_of(old)
        return value

    @property
    def nbytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._items)


PoseKey = tuple[int, int, int]
"""(head dx, head dy, body lift) in whole output pixels: all a base frame depends on."""

Box = tuple[int, int, int, int]
"""A sprite's (x, y, w, h) in head-local output pixels (w, h even, one spare column/row)."""


def sprite_box(box: tuple[float, float, float, float], scale: float) -> Box:
    """A design-space (x0, y0, x1, y1) → `Box`; the spare column/row keeps the content
    covered when an odd pose makes the box align one pixel down for the chroma."""
    x0, y0 = math.floor(box[0] * scale), math.floor(box[1] * scale)
    w = math.ceil(box[2] * scale) - x0 + 1
    h = math.ceil(box[3] * scale) - y0 + 1
    return x0, y0, w + w % 2, h + h % 2


class PoseCache:
    """Lazily built, LRU-bounded pieces of a layered avatar, all in YUV420.

    - `base(key)`: a whole frame at a pose (eyes open, mouth at rest), drawn by `draw_base`
      into an RGBA array and converted once;
    - `matte(key)`: the person's alpha at a pose (`draw_matte` draws without background);
    - `sprite(what, box, key)`: an opaque rectangle of the head showing `what` (a blink level,
      a mouth level…). The head moves rigidly, so the sprite's pixels depend only on the
      pose's parity: the box lands at an even position (2×2 chroma) and the odd pixel is
      drawn inside it. `draw_sprite(rgba, what, ox, oy)` draws the head translated by
      (ox, oy) output pixels. Boxes must lie inside the opaque face at every pose.
    """

    def __init__(
        self,
        width: int,
        height: int,
        draw_base: Callable[[NDArray[np.uint8], PoseKey], None],
        draw_matte: Callable[[NDArray[np.uint8], PoseKey], None],
        draw_sprite: Callable[[NDArray[np.uint8], Hashable, int, int], None],
        max_bytes: tuple[int, int, int] = (150 << 20, 48 << 20, 24 << 20),
    ) -> None:
        self.width, self.height = width, height
        self._draw_base, self._draw_matte, self._draw_sprite = draw_base, draw_matte, draw_sprite
        nbytes: Callable[[NDArray[np.uint8]], int] = lambda a: a.nbytes  # noqa: E731
        self._bases: LruCache[PoseKey, NDArray[np.uint8]] = LruCache(max_bytes[0], nbytes)
        self._mattes: LruCache[PoseKey, NDArray[np.uint8]] = LruCache(max_bytes[1], nbytes)
        self._sprites: LruCache[tuple[Hashable, int, int], YuvSprite] = LruCache(
            max_bytes[2], lambda s: s.nbytes
        )

    @property
    def nbytes(self) -> int:
        return self._bases.nbytes + self._mattes.nbytes + self._sprites.nbytes

    def base(self, key: PoseKey) -> NDArray[np.uint8]:
        def build() -> NDArray[np.uint8]:
            rgba = np.zeros((self.height, self.width, 4), np.uint8)
            self._draw_base(rgba, key)
            return rgb_to_yuv420(rgba)

        return self._bases.get(key, build)

    def frame(self, key: PoseKey, sprites: Sequence[YuvSprite]) -> YuvFrame:
        """A new frame: the base at `key` with `sprites` pasted in order."""
        data = self.base(key).copy()
        y, u, v = planes(data, self.width, self.height)
        for sprite in sprites:
            sprite.paste(y, u, v)
        return YuvFrame(data, self.width, self.height)

    def matte(self, key: PoseKey) -> NDArray[np.uint8]:
        def build() -> NDArray[np.uint8]:
            rgba = np.zeros((self.height, self.width, 4), np.uint8)
            self._draw_matte(rgba, key)
            matte = rgba[..., 3].copy()
            matte.flags.writeable = False  # shared by every caller
            return matte

        return self._mattes.get(key, build)

    def sprite(self, what: Hashable, box: Box, key: PoseKey, blend: bool = False) -> YuvSprite:
        """With `blend`, the drawn alpha is kept as the paste weight."""
        x0, y0, w, h = box
        fx, fy = x0 + key[0], y0 + key[1]  # where the box lands in the frame
        ax, ay = fx - fx % 2, fy - fy % 2  # aligned down to even
        px, py = fx - ax, fy - ay

        def build() -> YuvSprite:
            rgba = np.zeros((h, w, 4), np.uint8)
            self._draw_sprite(rgba, what, px - x0, py - y0)
            return YuvSprite.from_rgb(0, 0, rgba, blend)

        return self._sprites.get((what, px, py), build).moved(ax, ay)
