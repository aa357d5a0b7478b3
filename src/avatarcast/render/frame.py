"""Frames as the renderer produces them and the encoder consumes them: planar YUV420."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from avatarcast.speech.visemes import REST, MouthPose


@dataclass(slots=True)
class YuvFrame:
    """One video frame in planar YUV 4:2:0 (BT.601 limited range, what x264 expects).

    `data` is one contiguous array of shape (height * 3 // 2, width): the Y plane followed
    by the U and V planes, exactly PyAV's `yuv420p` ndarray layout, so the encoder takes it
    without conversion.
    """

    data: NDArray[np.uint8]
    width: int
    height: int

    @property
    def y(self) -> NDArray[np.uint8]:
        return self.data[: self.height]

    @property
    def u(self) -> NDArray[np.uint8]:
        q = self.height * self.width // 4
        flat = self.data[self.height :].reshape(-1)
        return flat[:q].reshape(self.height // 2, self.width // 2)

    @property
    def v(self) -> NDArray[np.uint8]:
        q = self.height * self.width // 4
        flat = self.data[self.height :].reshape(-1)
        return flat[q:].reshape(self.height // 2, self.width // 2)

    @classmethod
    def blank(cls, width: int, height: int) -> YuvFrame:
        data = np.empty((height * 3 // 2, width), np.uint8)
        data[:height] = 16
        data[height:] = 128
        return cls(data, width, height)


@dataclass(frozen=True, slots=True)
class FrameState:
    """Everything that decides how one frame of an avatar looks.

    Produced per frame by the idle motion (blink, breath, head) and the lip-sync (mouth).
    """

    mouth: MouthPose = REST
    blink: float = 0.0  # 0 = eyes open, 1 = closed
    breath: float = 0.0  # -1..1, chest/shoulder rise
    head_dx: float = 0.0  # head offset in output pixels
    head_dy: float = 0.0
    head_tilt_deg: float = 0.0
    frame_index: int = 0  # position on the session timeline (video avatars pick a loop frame)
