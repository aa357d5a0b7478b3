"""Video avatars built from real recordings of people talking to the camera.

The clips are third-party test material kept outside the repository, in
`../shared/media/real-video/` beside the checkout (see its README); on a clone without them
every test here skips, saying so. Real footage talks from the first frame, comes at uneven
frame times and other rates than 25 fps, and its head moves: each clip must build, speak,
rest, and loop without seams. Two more sources are made from one clip by re-timing it with
ffmpeg to 30 and 23.976 fps, to check the picture lands on the 25 fps clock by timestamp.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from avatarcast.avatars.asset import VideoAsset, load_asset
from avatarcast.avatars.custom import VideoAvatar
from avatarcast.avatars.registry import load_avatar
from avatarcast.avatars.video import build_video_avatar
from avatarcast.render.compose import rgb_to_yuv420
from avatarcast.render.frame import FrameState
from avatarcast.speech.visemes import MouthPose, Shape

REAL = Path(__file__).resolve().parents[3] / "shared" / "media" / "real-video"
CLIPS = sorted(REAL.glob("*.mp4")) if REAL.is_dir() else []
RETIMED = {"retimed-30fps": "30", "retimed-23976fps": "24000/1001"}
RETIME_SOURCE = "videoretalking_face_5.mp4"  # the shortest clip, 25 fps
BORDER_MAX = 1  # |luma| speaking vs rest on the box's outer 2 px (weights are 0 there)
SEAM_BAND_MAX = 1.5  # mean |luma| speaking vs rest 2-5 px inside the box (measured <= 0.33)
SPEAK_MIN = 4.0  # mean |luma| over the lips, open speech frames vs rest (measured 8-26)
PAUSE_RATIO = 0.25  # closed frames' difference / the open frames' (measured 0.06-0.08)
SPEAKING_SHAPES = ((Shape.C, 1.0), (Shape.D, 1.0), (Shape.E, 0.6), (Shape.B, 0.5))

pytestmark = pytest.mark.skipif(
    not CLIPS, reason=f"real test recordings absent ({REAL} not found; see its README)"
)


def _name(path: Path) -> str:
    return path.stem.lower().replace("_", "-")


def _retime(src: Path, out: Path, rate: str) -> Path:
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        pytest.skip("ffmpeg is not installed (needed to re-time a clip)")
    subprocess.run(
        [
            *(ffmpeg, "-v", "error", "-y", "-i", str(src), "-filter:v", f"fps={rate}"),
            *("-c:v", "libx264", "-preset", "veryfast", "-crf", "18", "-c:a", "copy", str(out)),
        ],
        check=True,
        timeout=120,
    )
    return out


@pytest.fixture(scope="session")
def real_builds(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """Every real clip and the two re-timed ones, built once: name → summary (+ data_dir)."""
    data_dir = tmp_path_factory.mktemp("real-data")
    work = tmp_path_factory.mktemp("real-src")
    sources = {_name(p): p for p in CLIPS}
    if (REAL / RETIME_SOURCE).exists():
        for name, rate in RETIMED.items():
            sources[name] = _retime(REAL / RETIME_SOURCE, work / f"{name}.mp4", rate)
    out = {}
    for name, path in sources.items():
        summary = build_video_avatar(path, name, data_dir)
        summary["data_dir"] = data_dir
        out[name] = summary
    return out


NAMES = [_name(p) for p in CLIPS] + (list(RETIMED) if (REAL / RETIME_SOURCE).exists() else [])


def _manifest(build: dict[str, Any]) -> dict[str, Any]:
    return json.loads((Path(build["path"]) / "manifest.json").read_text("utf-8"))


def _avatar(build: dict[str, Any]) -> VideoAvatar:
    avatar = load_avatar(build["name"], build["data_dir"])
    assert isinstance(avatar, VideoAvatar)
    return avatar


@pytest.mark.parametrize("name", NAMES)
def test_real_clip_builds_with_warnings(real_builds: dict[str, dict], name: str) -> None:
    build = real_builds[name]
    manifest = _manifest(build)
    assert build["kind"] == "video" and manifest["loop"]["fps"] == 25
    assert build["loop_seconds"] >= 2.0
    codes = [w["code"] for w in build["warnings"]]
    # every clip here is under 10 s and talks throughout: both say how to record better
    assert "short" in codes and "no_rest" in codes, codes
    assert all(w["message"] for w in build["warnings"])
    assert manifest["checks"]["warnings"] == build["warnings"]
    # the mouths are the person's own: harvested, or the nearest harvested one
    assert build["mouth_slots_from_video"] >= 5 and build["mouth_slots_warped"] == 0
    asset = load_asset(Path(build["path"]))
    assert isinstance(asset, VideoAsset) and asset.fps == 25
    avatar = _avatar(build)
    side = 240 if avatar.width == avatar.height else None
    if side is not None:  # a square close-up makes a square avatar with a square thumbnail
        assert avatar.thumbnail().shape == (side, side, 3)


def test_frames_land_on_the_25fps_clock_by_timestamp(real_builds: dict[str, dict]) -> None:
    """A 30 fps and a 23.976 fps copy of a 25 fps clip give the same 25 fps timeline (frame
    count, duration, speech), and the uneven 30 fps clip (135 frames in 6.1 s) is 30 fps."""
    if "retimed-30fps" not in real_builds:
        pytest.skip(f"{RETIME_SOURCE} absent")
    base = _manifest(real_builds[_name(REAL / RETIME_SOURCE)])["source"]
    for name, fps in (("retimed-30fps", 30.0), ("retimed-23976fps", 23.976)):
        src = _manifest(real_builds[name])["source"]
        assert src["fps"] == pytest.approx(fps, abs=0.05)
        assert abs(src["frames_at_25fps"] - base["frames_at_25fps"]) <= 1
        assert src["frames_at_25fps"] == pytest.approx(src["seconds"] * 25, abs=1)
        assert src["speech_seconds"] == pytest.approx(base["speech_seconds"], abs=0.4)
    uneven = real_builds.get("videoretalking-face-1")
    if uneven is not None:
        src = _manifest(uneven)["source"]
        assert src["fps"] == pytest.approx(30.0, abs=0.1) and src["frame_interval_spread"] > 1.5
        assert src["frames_at_25fps"] == pytest.approx(6.1 * 25, abs=2)


def _y(avatar: VideoAvatar, index: int, mouth: MouthPose | None = None) -> np.ndarray:
    state = FrameState(frame_index=index) if mouth is None else FrameState(mouth, frame_index=index)
    return avatar.render(state).y.astype(np.int16)


@pytest.mark.parametrize("name", NAMES)
def test_no_seam_and_own_pixels_on_every_loop_frame(
    real_builds: dict[str, dict], name: str
) -> None:
    avatar = _avatar(real_builds[name])
    m = avatar.asset.margin
    bx, by, bw, bh = avatar._mouth_box
    worst_border, worst_band = 0, 0.0
    for i in range(len(avatar.loop)):
        rest = _y(avatar, i)
        # at rest the frame is the loop frame's own pixels
        own = rgb_to_yuv420(
            np.ascontiguousarray(avatar.loop[i, m : m + avatar.height, m : m + avatar.width])
        )
        assert np.array_equal(rest, own[: avatar.height].astype(np.int16)), i
        dx, dy = avatar.mouth_shift(i)
        x0, y0 = bx + dx, by + dy
        for shape, level in SPEAKING_SHAPES:
            diff = np.abs(_y(avatar, i, MouthPose(shape, level)) - rest)
            inside = diff[y0 : y0 + bh, x0 : x0 + bw]
            assert diff.sum() == inside.sum(), (i, shape)  # nothing changes outside the box
            ring = np.ones(inside.shape, bool)
            ring[2:-2, 2:-2] = False
            band = np.zeros(inside.shape, bool)
            band[2:-2, 2:-2] = True
            band[5:-5, 5:-5] = False
            worst_border = max(worst_border, int(inside[ring].max()))
            worst_band = max(worst_band, float(inside[band].mean()))
    assert worst_border <= BORDER_MAX
    assert worst_band <= SEAM_BAND_MAX, worst_band


@pytest.mark.parametrize("name", NAMES)
def test_loop_has_no_jump_at_its_seam(real_builds: dict[str, dict], name: str) -> None:
    avatar = _avatar(real_builds[name])
    luma = avatar.loop.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    steps = np.abs(np.diff(luma, axis=0)).mean(axis=(1, 2))
    seam = float(np.abs(luma[-1] - luma[0]).mean())
    assert seam <= 3 * float(np.median(steps)) + 0.5, (seam, float(np.median(steps)))


@pytest.mark.parametrize("name", NAMES)
def test_speech_opens_the_mouth_and_pauses_close_it(
    real_builds: dict[str, dict], name: str, tmp_path: Path
) -> None:
    from avatarcast.engine.offline import render_queued
    from avatarcast.engine.timeline import Engine
    from avatarcast.stream.encoder import VideoOptions

    avatar = _avatar(real_builds[name])
    engine = Engine(avatar)
    engine.say_text("Hello, my name is Alex. I like apples and warm bread.")
    out = tmp_path / "speech.mp4"
    track = tmp_path / "speech.json"
    render_queued(engine, out, VideoOptions(avatar.width, avatar.height), mouth_track=track)
    poses = json.loads(track.read_text("utf-8"))["frames"]
    with av.open(str(out)) as container:
        stream = container.streams.video[0]
        assert float(stream.average_rate) == 25.0
        # the Y plane as coded (format="gray" would stretch it to full range)
        frames = [
            f.to_ndarray()[: avatar.height].astype(np.int16) for f in container.decode(stream)
        ]
    assert len(frames) == len(poses)
    bx, by, bw, bh = avatar._mouth_box
    assert avatar._alpha is not None
    lips = avatar._alpha[1:, 1:] > 128  # where the mouth sprite shows (its blend weights)
    open_d, shut_d = [], []
    for i, (frame, pose) in enumerate(zip(frames, poses, strict=True)):
        dx, dy = avatar.mouth_shift(avatar.loop_index(i))
        box = np.s_[by + dy : by + dy + bh, bx + dx : bx + dx + bw]
        d = float(np.abs(frame[box] - _y(avatar, i)[box])[lips].mean())
        if pose["open"] >= 0.5:
            open_d.append(d)
        elif pose["open"] == 0:
            shut_d.append(d)
    assert len(open_d) >= 10 and len(shut_d) >= 5
    assert float(np.mean(open_d)) >= SPEAK_MIN, np.mean(open_d)
    assert float(np.mean(shut_d)) <= PAUSE_RATIO * float(np.mean(open_d)), (
        np.mean(shut_d),
        np.mean(open_d),
    )


def test_build_job_reports_warnings_in_getprogress(tmp_path: Path) -> None:
    """The API's build path (one worker job) keeps the warnings for getprogress."""
    from avatarcast.avatars.build_jobs import SUCCESS, JobStore
    from avatarcast.avatars.build_worker import run_job

    clip = REAL / RETIME_SOURCE
    if not clip.exists():
        pytest.skip(f"{clip} absent")
    material = tmp_path / "upload.mp4"
    shutil.copy(clip, material)
    db = tmp_path / "jobs.db"
    store = JobStore(db)
    from avatarcast.avatars.build_jobs import Job

    store.insert(Job("t1", "k", "real", "real-1", "keep", "MAKING", "SUBMIT", 0, "", "", 0, 0))
    status = run_job(str(db), "t1", str(material), "real-1", str(tmp_path / "data"), "keep")
    assert status == SUCCESS
    job = store.get("t1")
    assert job is not None
    payload = job.to_payload()
    codes = [w["Code"] for w in payload["Warnings"]]
    assert "short" in codes and all("record" in w["Message"] for w in payload["Warnings"][:1])
    store.close()
