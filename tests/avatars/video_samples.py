"""Test videos made from scikit-image's astronaut portrait, encoded with PyAV (libx264).

`talking_video`: the framed portrait (540x960, the photo path's framing, lips closed) with
slight head motion (sub-pixel translations of a few pixels), silent/closed-mouth for the
first second and from 5 s on, "speaking" (photo-warped mouth shapes) from 3 s to 5 s.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import av
import cv2
import numpy as np
from numpy.typing import NDArray
from photo_samples import astronaut

from avatarcast.avatars.photo import MARGIN, check_photo, frame_portrait
from avatarcast.avatars.photo_warp import MouthRig
from avatarcast.speech.visemes import Shape

W, H = 540, 960


def portrait() -> tuple[NDArray[np.uint8], list[NDArray[np.uint8]]]:
    """The framed canvas (560x980) with lips closed, and three speaking variants."""
    rgb = astronaut()
    src, lm, _ = frame_portrait(rgb, check_photo(rgb).landmarks)
    rig = MouthRig(lm)
    mx, my, mw, mh = rig.box
    out = []
    for shape, k in ((Shape.X, 0.0), (Shape.C, 0.8), (Shape.D, 1.0), (Shape.E, 0.7)):
        canvas = src.copy()
        canvas[my : my + mh, mx : mx + mw] = rig.warp(src, shape, k)
        out.append(canvas)
    return out[0], out[1:]


def write_video(path: Path, frames: Iterable[NDArray[np.uint8]], fps: int) -> Path:
    with av.open(str(path), "w") as out:
        stream = None
        for rgb in frames:
            if stream is None:
                stream = out.add_stream("libx264", rate=fps)
                stream.width, stream.height = rgb.shape[1], rgb.shape[0]
                stream.pix_fmt = "yuv420p"
                stream.options = {"crf": "18", "preset": "veryfast"}
            out.mux(stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
        assert stream is not None
        out.mux(stream.encode())
    return path


def talking_frames(seconds: float = 8.0, fps: int = 25) -> list[NDArray[np.uint8]]:
    return list(iter_talking_frames(seconds, fps))


def landscape_1080p(seconds: float = 60.0, fps: int = 25) -> Iterator[NDArray[np.uint8]]:
    """The talking portrait scaled 1.6x (face ~330 px, 17 % of the width) and cut to 1080
    rows, on a 1920x1080 grey frame (benchmark)."""
    for frame in iter_talking_frames(seconds, fps):
        big = cv2.resize(frame, (864, 1536), interpolation=cv2.INTER_CUBIC)
        out = np.full((1080, 1920, 3), 110, np.uint8)
        out[:, 528 : 528 + 864] = big[200:1280]
        yield out


def iter_talking_frames(seconds: float = 8.0, fps: int = 25) -> Iterator[NDArray[np.uint8]]:
    """Closed mouth except 3-5 s into every 8 s (speaking); head motion throughout."""
    rest, talk = portrait()
    for i in range(round(seconds * fps)):
        t = i / fps
        canvas = talk[(i // 3) % len(talk)] if 3.0 <= t % 8.0 < 5.0 else rest
        dx = 3.0 * np.sin(2 * np.pi * t / 2.0)  # slight head motion, 2 s period
        dy = 1.5 * np.sin(2 * np.pi * t / 3.0)
        mat = np.array([[1, 0, dx - MARGIN], [0, 1, dy - MARGIN]], np.float64)
        frame = cv2.warpAffine(canvas, mat, (W, H), flags=cv2.INTER_LINEAR)
        yield np.asarray(frame, np.uint8)


def talking_video(path: Path, seconds: float = 8.0, fps: int = 25) -> Path:
    return write_video(path, talking_frames(seconds, fps), fps)


def corrupt_video(path: Path, good: Path) -> Path:
    """The first 40 % of a good MP4 (libx264 MP4s keep their index at the end)."""
    raw = good.read_bytes()
    path.write_bytes(raw[: int(len(raw) * 0.4)])
    return path
