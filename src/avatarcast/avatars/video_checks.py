"""What a recording's face measures mean for the video avatar: refusals and warnings.

A photo must pass every check because one picture is all there is; a recording has hundreds
of pictures, and real ones are sharpened or softened by cameras and codecs, turn a little,
and talk from the first frame. So the video builder refuses only what cannot make an avatar
(no face, two faces, the face out of the picture most of the time, far too short, a face too
small to track) and turns whatever would only lower the quality into a `BuildWarning` with
the fix in plain words; warnings go into the build summary, the manifest and `getprogress`.

Thresholds were set on real recordings (four clips of people talking to the camera, 512 to
844 px square, 25 and 30 fps, in `../shared/media/real-video/`): their measures are in the
comments, so a threshold can be judged against what real footage gives.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from avatarcast import FRAME_RATE_HZ
from avatarcast.avatars import photo
from avatarcast.avatars.photo import AvatarQualityError
from avatarcast.avatars.video_timing import Timing
from avatarcast.errors import InputError

MIN_SECONDS = 3.0  # shorter than this cannot give a loop and a mouth bank
SHORT_SECONDS = 10.0  # below it: warn (few mouth shapes, a short loop)
MIN_FPS = 15.0  # below it the motion is choppy whatever we do
LOW_FPS = 23.0  # 23.976 and up are normal; below, warn
MAX_LOST = 0.2  # of frames: the face not found or not inside the picture → refuse
WARN_LOST = 0.02  # of frames: the face left the picture briefly → warn
MIN_TRACK_PX = 48.0  # temple distance the tracker needs; smaller is refused
SMALL_FACE_PX = 120.0  # temples; below, the avatar is an upscale (real clips: 194-290 px)
# variance of the Laplacian on the face scaled to 128 px between temples: the photo check's
# 60 rejects sharp real video (real clips: 17-25, 38-49, 400-530, 500-1000 at this scale;
# compression removes the fine texture the measure counts); below 8 the face is truly soft
SOFT_FACE = 8.0
DARK_FACE = 55.0  # mean face luma (real clips: 87-148)
TURNED_YAW = 0.38  # median |left - right| / (left + right), nose to temples (real: 0.03-0.31)
TILTED_DEG = 15.0  # median roll (real: up to 10.8 degrees)
MOVING_HEAD = 0.12  # spread (std) of the nose tip over the clip, in temple distances
TWO_FACES_S = 1.0  # a second face seen this long (in all) refuses the clip
SAMPLE_EVERY = 5  # frames between sharpness/brightness samples

VIDEO_REASONS = {
    "unsupported_file": "the file is not a video avatarcast can read",
    "corrupt_file": "the video is damaged or truncated",
    "too_short": f"the video is too short; record at least {MIN_SECONDS:.0f} s (30-60 s is best)",
    "low_fps": f"the video has fewer than {MIN_FPS:.0f} frames per second; record at "
    "25 fps or more",
    "no_face": "no face was found in the video; record one person facing the camera, the "
    "face a third of the picture's width",
    "multiple_faces": "more than one face is in the video; record one person alone",
    "face_lost": "the face was out of view too often; keep the whole face in the picture",
    "face_too_small": "the face is too small to follow; move closer to the camera",
}


class VideoQualityError(AvatarQualityError):
    """The video cannot make an avatar; `reason` is one of `VIDEO_REASONS` or
    `photo.REASONS`."""

    code = "avatar_video_rejected"

    def __init__(self, reason: str, detail: str = "") -> None:
        text = VIDEO_REASONS.get(reason) or photo.REASONS[reason]
        InputError.__init__(self, text + (f" ({detail})" if detail else ""))
        self.reason = reason


WARNINGS = {
    "short": "the recording is short ({seconds:.1f} s); record 30 s or more so the idle "
    "motion and the mouth shapes are your own",
    "low_fps": "the video has {fps:.1f} frames per second; record at 25 fps or more for "
    "smooth motion",
    "face_left_picture": "the face was out of view for {seconds:.1f} s; keep the whole face "
    "in the picture",
    "small_face": "the face is small ({px:.0f} px between the temples); move closer or record "
    "at a higher resolution",
    "soft_face": "the face is soft (sharpness {sharpness:.0f}); light the face well, focus on "
    "it and keep the camera still",
    "dark_face": "the face is dark (brightness {luma:.0f}/255); add light in front of the person",
    "head_turned": "the head is turned away from the camera; face the camera",
    "head_tilted": "the head is tilted ({deg:.0f} degrees); hold it upright",
    "head_moving": "the head moves a lot; keep the head still and let only the face talk",
    "no_rest": "no few seconds of silence with the lips closed were found; the idle loop was "
    "made from the calmest frames with your own closed mouth. Start or end the recording "
    "with 3-5 s of silence, lips closed",
    "no_sound": "the video has no sound; the mouths were sorted by the lips alone. Keep "
    "the sound track",
    "few_mouths": "only {harvested} of {slots} mouth shapes came from the recording; the "
    "rest are copies of the nearest ones. Speak naturally for 30 s or more",
}


@dataclass(frozen=True)
class BuildWarning:
    """A quality problem that does not stop the build: a stable `code` and the fix."""

    code: str
    message: str

    def to_json(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


def warning(code: str, **values: Any) -> BuildWarning:
    return BuildWarning(code, WARNINGS[code].format(**values))


@dataclass
class FaceStats:
    """Per-frame face measures gathered while tracking (source pixels)."""

    two_faces: int = 0
    sharpness: list[float] = field(default_factory=list)
    luma: list[float] = field(default_factory=list)

    def sample(self, grey: NDArray[np.uint8], lm: NDArray[np.float64]) -> None:
        """Sharpness and brightness of the face in `grey` (landmarks `lm` in its pixels),
        scaled to 128 px between the temples as the photo checks do."""
        temple = float(np.linalg.norm(lm[454] - lm[234]))
        if temple < 8:
            return
        h, w = grey.shape
        x0, y0 = np.clip(lm.min(0), 0, [w - 1, h - 1]).astype(int)
        x1, y1 = np.clip(lm.max(0), 0, [w - 1, h - 1]).astype(int)
        if x1 - x0 < 8 or y1 - y0 < 8:
            return
        s = 128.0 / temple
        face = cv2.resize(grey[y0 : y1 + 1, x0 : x1 + 1], None, fx=s, fy=s)
        self.sharpness.append(float(cv2.Laplacian(face, cv2.CV_32F).var()))
        self.luma.append(float(face.mean()))


def inside(lm: NDArray[np.float64], size: tuple[int, int]) -> NDArray[np.bool_]:
    """Per frame (n, 478, 2): the face was found and lies inside the picture."""
    w, h = size
    pad = 0.005 * max(w, h)
    found = ~np.isnan(lm[:, 0, 0])
    with np.errstate(invalid="ignore"):
        lo = np.nanmin(lm, axis=1) if len(lm) else np.zeros((0, 2))
        hi = np.nanmax(lm, axis=1) if len(lm) else np.zeros((0, 2))
    ok = (lo[:, 0] >= -pad) & (lo[:, 1] >= -pad) & (hi[:, 0] <= w + pad) & (hi[:, 1] <= h + pad)
    return np.asarray(found & ok, np.bool_)


def head_pose(lm: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Per frame (n, 478, 2): signed yaw asymmetry (nose tip to the temples, left minus
    right over their sum; 0 facing the camera) and roll in degrees; NaN where lost."""
    eye = lm[:, 263] - lm[:, 33]
    roll = np.degrees(np.arctan2(eye[:, 1], eye[:, 0]))
    dl = np.linalg.norm(lm[:, 1] - lm[:, 234], axis=1)
    dr = np.linalg.norm(lm[:, 1] - lm[:, 454], axis=1)
    return np.asarray((dl - dr) / (dl + dr), np.float64), np.asarray(roll, np.float64)


def pose_measures(lm: NDArray[np.float64], ok: NDArray[np.bool_]) -> dict[str, float]:
    """Medians over the frames `ok` of temple px, roll, yaw asymmetry, and head motion."""
    good = lm[ok]
    temple = np.linalg.norm(good[:, 454] - good[:, 234], axis=1)
    signed, roll = head_pose(good)
    yaw = np.abs(signed)
    nose = good[:, 1] / np.median(temple)
    return {
        "temple_px": float(np.median(temple)),
        "roll_deg": float(np.median(roll)),
        "yaw_asym": float(np.median(yaw)),
        "head_motion": float(np.sqrt(nose.var(axis=0).sum())),
    }


def quality_warnings(
    measures: dict[str, float], seconds: float, fps: float, lost_s: float
) -> list[BuildWarning]:
    """The warnings the clip's measures call for (see `WARNINGS`)."""
    out = []
    if seconds < SHORT_SECONDS:
        out.append(warning("short", seconds=seconds))
    if fps < LOW_FPS:
        out.append(warning("low_fps", fps=fps))
    if lost_s >= WARN_LOST * seconds and lost_s > 0:
        out.append(warning("face_left_picture", seconds=lost_s))
    if measures["temple_px"] < SMALL_FACE_PX:
        out.append(warning("small_face", px=measures["temple_px"]))
    if measures.get("sharpness", np.inf) < SOFT_FACE:
        out.append(warning("soft_face", sharpness=measures["sharpness"]))
    if measures.get("luma", np.inf) < DARK_FACE:
        out.append(warning("dark_face", luma=measures["luma"]))
    if measures["yaw_asym"] > TURNED_YAW:
        out.append(warning("head_turned"))
    if abs(measures["roll_deg"]) > TILTED_DEG:
        out.append(warning("head_tilted", deg=abs(measures["roll_deg"])))
    if measures["head_motion"] > MOVING_HEAD:
        out.append(warning("head_moving"))
    return out


def check_clip(
    raw: NDArray[np.float64],
    stats: FaceStats,
    timing: Timing,
    src_size: tuple[int, int],
) -> tuple[NDArray[np.bool_], dict[str, float], list[BuildWarning]]:
    """Refuse what cannot make an avatar (`VideoQualityError`); otherwise the usable frames
    (face found and inside the picture), the clip's measures and its warnings."""
    if timing.seconds < MIN_SECONDS:
        raise VideoQualityError("too_short", f"{timing.seconds:.1f} s")
    if timing.source_fps < MIN_FPS:
        raise VideoQualityError("low_fps", f"{timing.source_fps:.1f} fps")
    if stats.two_faces >= TWO_FACES_S * FRAME_RATE_HZ:
        raise VideoQualityError("multiple_faces", f"in {stats.two_faces / FRAME_RATE_HZ:.1f} s")
    ok = inside(raw, src_size)
    if not ok.any():
        raise VideoQualityError("no_face")
    lost = 1.0 - float(ok.mean())
    if lost > MAX_LOST:
        raise VideoQualityError("face_lost", f"missing or cut off in {lost:.0%} of the frames")
    measures = pose_measures(raw, ok)
    if measures["temple_px"] < MIN_TRACK_PX:
        raise VideoQualityError(
            "face_too_small", f"{measures['temple_px']:.0f} px between the temples"
        )
    if stats.sharpness:
        measures["sharpness"] = float(np.median(stats.sharpness))
        measures["luma"] = float(np.median(stats.luma))
    lost_s = float((~ok).sum()) / FRAME_RATE_HZ
    found = quality_warnings(measures, timing.seconds, timing.source_fps, lost_s)
    return ok, {k: round(v, 3) for k, v in measures.items()}, found
