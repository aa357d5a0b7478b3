"""Transparent background for any avatar: renders colour and matte packed side by side.

The layout (colour left, matte as luma right, one 2W x H yuv420p frame) is
`render.alpha.pack_frame`'s; docs/outputs.md describes it for players.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from avatarcast.avatars.base import Avatar
from avatarcast.render.alpha import pack_frame
from avatarcast.render.frame import FrameState, YuvFrame


class AlphaPackedAvatar:
    """Wraps an avatar; `render` returns the packed 2W x H frame."""

    def __init__(self, inner: Avatar) -> None:
        self.inner = inner
        self.name = f"{inner.name}+alpha"
        self.width = inner.width * 2
        self.height = inner.height

    def render(self, state: FrameState) -> YuvFrame:
        return pack_frame(self.inner.render(state), self.inner.alpha(state))

    def alpha(self, state: FrameState) -> NDArray[np.uint8]:
        """The packed frame itself is opaque; its right half carries the matte."""
        return np.full((self.height, self.width), 255, np.uint8)

    def thumbnail(self) -> NDArray[np.uint8]:
        return self.inner.thumbnail()

    def warm_up(self) -> None:
        warm = getattr(self.inner, "warm_up", None)
        if callable(warm):
            warm()


def pack_alpha(avatar: Avatar) -> Avatar:
    return AlphaPackedAvatar(avatar)
