"""The avatar interface: what the engine and the offline renderer need from any avatar."""

from __future__ import annotations

from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from avatarcast.render.frame import FrameState, YuvFrame


class Avatar(Protocol):
    """A renderable character of a fixed output size.

    One instance is shared by every session that uses it (see the registry), so every method
    must be safe to call from several threads at once.
    """

    name: str
    width: int
    height: int

    def render(self, state: FrameState) -> YuvFrame:
        """The frame for `state`; a fresh array the caller owns and may write to."""
        ...

    def alpha(self, state: FrameState) -> NDArray[np.uint8]:
        """The person's matte for `state`: (height, width), 255 person, 0 background.

        May be a shared cached array: treat it as read-only.
        """
        ...

    def thumbnail(self) -> NDArray[np.uint8]:
        """A small RGB (h, w, 3) portrait for pickers."""
        ...
