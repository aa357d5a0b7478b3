"""A recording's pictures on the session's 25 fps clock, placed by their timestamps.

Real recordings come at 23.976, 24, 25, 29.97, 30 or 60 fps, and phones and screen recorders
write frames at uneven times (a "30 fps" stream with 135 frames in 6.1 s: frames dropped
while the encoder was busy). Counting frames and dividing by a nominal rate then drifts
against the sound and makes the avatar's motion too fast or too slow. So the builder reads
each frame's presentation time (`frame.time`, from its pts) and puts the pictures on the
output clock: output frame k (shown at first-frame time + k / 25 s) is the decoded frame
nearest in time, so frames are repeated (a 23.976 fps source) or dropped (30 or 60 fps) by
timestamp. Every pass over the file uses the same rule, so frame k is the same picture in
the tracking pass and in the cropping pass, and the sound is put on the same clock
(`first_s`).

    clocked = ClockedVideo(path)
    for k, rgb in clocked.frames(): ...     # k = 0, 1, 2, ... on the 25 fps clock
    clocked.timing                          # known after one full pass
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import numpy as np
from numpy.typing import NDArray

from avatarcast import FRAME_RATE_HZ
from avatarcast.errors import InputError


class DecodeError(Exception):
    """Raised by `open_video` / `ClockedVideo.frames`: `reason` is `unsupported_file` or
    `corrupt_file` (the video builder turns it into its coded error)."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(detail)
        self.reason, self.detail = reason, detail


@dataclass(frozen=True)
class Timing:
    """What one full decoding pass measured."""

    first_s: float  # presentation time of the first frame (the picture clock's zero)
    source_frames: int  # frames decoded (after dropping ones with a repeated timestamp)
    source_fps: float  # frames per second of the source (median frame interval)
    seconds: float  # first frame to the end of the last one
    frames: int  # output frames on the 25 fps clock
    interval_spread: float  # longest / shortest frame interval (1.0: even timing)


def open_video(path: Path) -> tuple[Any, Any]:
    """(container, first video stream); DecodeError when unreadable."""
    try:
        raw = Path(path).read_bytes()[:64]
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from exc
    try:
        container = av.open(str(path))
    except av.error.InvalidDataError as exc:
        # a known video signature that does not open is damaged, anything else unsupported
        known = raw[4:8] in (b"ftyp", b"moov", b"mdat", b"free") or raw.startswith(
            (b"\x1a\x45\xdf\xa3", b"RIFF")
        )
        raise DecodeError("corrupt_file" if known else "unsupported_file") from exc
    except av.error.FFmpegError as exc:
        raise DecodeError("corrupt_file", str(exc)) from exc
    if not container.streams.video:
        container.close()
        raise DecodeError("unsupported_file", "no video stream")
    return container, container.streams.video[0]


def _upright(frame: Any) -> NDArray[np.uint8]:
    rgb = frame.to_ndarray(format="rgb24")
    # phones store upright video turned, with a display rotation (counter-clockwise
    # degrees): turn it upright as players do
    turns = round(float(frame.rotation or 0) / 90) % 4
    return np.ascontiguousarray(np.rot90(rgb, turns) if turns else rgb, np.uint8)


class ClockedVideo:
    """The video's pictures at `fps_out` by timestamp (see the module docstring)."""

    def __init__(self, path: Path, threads: int = 0, fps_out: float = FRAME_RATE_HZ) -> None:
        self.path = Path(path)
        self.threads = threads
        self.fps_out = fps_out
        self.timing: Timing | None = None

    def _timed(self) -> Generator[tuple[float, Any], None, None]:
        """(seconds, av frame) in presentation order, strictly increasing times."""
        container, stream = open_video(self.path)
        if self.threads:
            stream.thread_count = self.threads
        rate = float(stream.average_rate or stream.guessed_rate or FRAME_RATE_HZ)
        last = -np.inf
        try:
            for frame in container.decode(stream):
                t = frame.time
                if t is None:  # no timestamp: one nominal interval after the previous frame
                    t = 0.0 if last == -np.inf else last + 1.0 / rate
                t = float(t)
                if t <= last + 1e-6:
                    continue  # a repeated or out-of-order timestamp: not a new picture
                last = t
                yield t, frame
        except av.error.FFmpegError as exc:
            raise DecodeError("corrupt_file", str(exc)) from exc
        finally:
            container.close()

    def frames(self) -> Generator[tuple[int, NDArray[np.uint8]], None, None]:
        """(k, upright RGB) for every output frame k. Each tick shows the decoded frame
        nearest in time (a frame holds until halfway to the next one); the last frame
        lasts one median interval. After a full pass, `timing` is set."""
        step = 1.0 / self.fps_out
        first: float | None = None
        prev: tuple[float, Any] | None = None
        prev_rgb: NDArray[np.uint8] | None = None
        intervals: list[float] = []
        k = 0
        count = 0

        def rgb_of_prev() -> NDArray[np.uint8]:
            nonlocal prev_rgb
            if prev_rgb is None:
                assert prev is not None
                prev_rgb = _upright(prev[1])
            return prev_rgb

        for t, frame in self._timed():
            count += 1
            if first is None:
                first = t
            if prev is not None:
                intervals.append(t - prev[0])
                switch = (prev[0] + t) / 2 - first  # ticks before this show `prev`
                while k * step < switch - 1e-9:
                    yield k, rgb_of_prev()
                    k += 1
            prev, prev_rgb = (t, frame), None
        if prev is None or first is None:
            raise DecodeError("corrupt_file", "no frame decodes")
        last_dur = float(np.median(intervals)) if intervals else step
        end = prev[0] + last_dur - first
        while k * step < end - 1e-6 or k == 0:
            yield k, rgb_of_prev()
            k += 1
        spread = max(intervals) / max(min(intervals), 1e-6) if intervals else 1.0
        self.timing = Timing(
            first_s=first,
            source_frames=count,
            source_fps=1.0 / last_dur if last_dur > 0 else self.fps_out,
            seconds=end,
            frames=k,
            interval_spread=round(spread, 3),
        )

    def first_frame(self) -> NDArray[np.uint8]:
        """The first picture (upright)."""
        timed = self._timed()
        try:
            item = next(timed, None)
            if item is None:
                raise DecodeError("corrupt_file", "no frame decodes")
            return _upright(item[1])
        finally:
            timed.close()
