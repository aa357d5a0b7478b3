"""Offline rendering: queued speech → MP4 (+ optional matte file and mouth-track JSON).

Runs the same `Engine` a live session runs, only without a clock: frames are pulled as fast
as the CPU allows. Output files appear atomically (written under a temporary name, renamed
at the end) so a failed render leaves nothing behind.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from avatarcast import FRAME_RATE_HZ
from avatarcast.engine.timeline import Engine
from avatarcast.render.alpha import matte_to_luma
from avatarcast.render.frame import YuvFrame
from avatarcast.speech.visemes import MouthPose
from avatarcast.stream.encoder import VideoOptions
from avatarcast.stream.mp4 import Mp4Writer

ProgressFn = Callable[[int, int], None]


@dataclass
class RenderResult:
    video_path: Path
    frames: int
    duration_s: float
    alpha_path: Path | None = None
    mouth_track_path: Path | None = None


def alpha_path_for(out: Path) -> Path:
    """The matte file written beside `out`: `clip.mp4` → `clip.alpha.mp4`."""
    return out.with_name(out.stem + ".alpha" + out.suffix)


def mouth_track_json(poses: list[MouthPose], fps: int = FRAME_RATE_HZ) -> dict[str, object]:
    return {
        "fps": fps,
        "frames": [
            {"t_ms": round(i * 1000 / fps), "shape": p.shape.value, "open": round(p.open, 3)}
            for i, p in enumerate(poses)
        ],
    }


def _tmp(path: Path) -> Path:
    return path.with_name(f".{path.name}.partial-{os.getpid()}{path.suffix}")


def render_queued(
    engine: Engine,
    out: Path,
    video: VideoOptions,
    *,
    alpha: bool = False,
    mouth_track: Path | None = None,
    progress: ProgressFn | None = None,
    total_frames: int | None = None,
    audio_bitrate_kbps: int = 64,
) -> RenderResult:
    """Pull frames from `engine` until its queued speech has played; write the files."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp_video = _tmp(out)
    final_alpha = alpha_path_for(out) if alpha else None
    tmp_alpha = _tmp(final_alpha) if final_alpha else None
    poses: list[MouthPose] = []
    written: list[Path] = [tmp_video] + ([tmp_alpha] if tmp_alpha else [])
    try:
        with Mp4Writer(tmp_video, video, audio_bitrate_kbps=audio_bitrate_kbps) as writer:
            matte_writer = Mp4Writer(tmp_alpha, video, audio=False) if tmp_alpha else None
            try:
                while not engine.idle():
                    frame = engine.next_frame()
                    writer.write_video(frame.video)
                    writer.write_audio(frame.audio)
                    poses.append(frame.mouth)
                    if matte_writer is not None:
                        state = engine.motion.state(frame.index, frame.mouth)
                        matte_writer.write_video(_matte_frame(engine.avatar.alpha(state)))
                    if progress is not None:
                        progress(len(poses), total_frames or len(poses))
            finally:
                if matte_writer is not None:
                    matte_writer.close()
        os.replace(tmp_video, out)
        written.remove(tmp_video)
        if tmp_alpha and final_alpha:
            os.replace(tmp_alpha, final_alpha)
            written.remove(tmp_alpha)
        if mouth_track is not None:
            tmp_track = _tmp(mouth_track)
            written.append(tmp_track)
            tmp_track.write_text(json.dumps(mouth_track_json(poses)), "utf-8")
            os.replace(tmp_track, mouth_track)
            written.remove(tmp_track)
    except BaseException:
        for p in written:
            p.unlink(missing_ok=True)
        raise
    return RenderResult(out, len(poses), len(poses) / FRAME_RATE_HZ, final_alpha, mouth_track)


def _matte_frame(matte: np.ndarray) -> YuvFrame:
    """The matte as a grey picture: luma = alpha (limited range), chroma neutral."""
    h, w = matte.shape
    frame = YuvFrame.blank(w, h)
    frame.data[:h] = matte_to_luma(matte)
    return frame
