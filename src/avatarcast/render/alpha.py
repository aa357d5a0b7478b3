"""Transparent background: colour and matte packed side by side in one ordinary frame.

Layout (documented in docs/outputs.md), for an avatar of W x H:

    +-----------+-----------+
    |  colour   |   matte   |     a 2W x H yuv420p frame
    | (as is)   | luma = α  |     matte: Y = 16 + α·219/255 (limited range), U = V = 128
    +-----------+-----------+

Any H.264/VP8 path carries it unchanged; a player splits the halves and uses the right one's
luma as the alpha of the left (web/alpha.js does it on a canvas). Limited range is used so a
decoder's usual expansion gives α back in 0..255.

The pixels only; `avatars.alpha.pack_alpha` wraps an avatar so it renders packed frames.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from avatarcast.render.frame import YuvFrame


def matte_to_luma(matte: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """α 0..255 → Y 16..235 (BT.601 limited range)."""
    return (16 + (matte.astype(np.uint16) * 219 + 127) // 255).astype(np.uint8)


def luma_to_matte(luma: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """The inverse, for players and tests: Y 16..235 → α 0..255 (clipped)."""
    y = np.clip(luma.astype(np.int32) - 16, 0, 219)
    return ((y * 255 + 109) // 219).astype(np.uint8)


def pack_frame(colour: YuvFrame, matte: NDArray[np.uint8]) -> YuvFrame:
    """The 2W x H frame: `colour` (W x H) on the left, `matte` (H, W) as luma on the right."""
    w, h = colour.width, colour.height
    out = np.empty((h * 3 // 2, 2 * w), np.uint8)
    # Y plane: colour left, matte right.
    out[:h, :w] = colour.y
    out[:h, w:] = matte_to_luma(matte)
    # Chroma planes: each is (h/2) x (w/2) in the source and (h/2) x w in the output;
    # they lie flat after the Y plane, so view both as rows of their own width.
    src_u, src_v = colour.u, colour.v
    flat = out[h:].reshape(-1)
    q = (h // 2) * w  # samples in one output chroma plane
    u = flat[:q].reshape(h // 2, w)
    v = flat[q:].reshape(h // 2, w)
    u[:, : w // 2] = src_u
    v[:, : w // 2] = src_v
    u[:, w // 2 :] = 128
    v[:, w // 2 :] = 128
    return YuvFrame(out, 2 * w, h)
