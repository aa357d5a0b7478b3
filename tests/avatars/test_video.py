"""The video avatar: checks, the idle loop and its seam, the mouth on the loop, the asset."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import video_samples as vs

from avatarcast.avatars.asset import VideoAsset, load_asset
from avatarcast.avatars.custom import CustomAvatar, VideoAvatar
from avatarcast.avatars.registry import load_avatar
from avatarcast.avatars.video import VideoQualityError, build_video_avatar
from avatarcast.render.frame import FrameState
from avatarcast.speech.visemes import MouthPose, Shape

LOOP_SEAM_MAX = 3.0  # mean |luma| difference, last loop frame vs first (measured ~1.4)


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return vs.talking_video(tmp_path_factory.mktemp("video") / "astronaut.mp4")


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, video: Path) -> tuple[Path, VideoAvatar]:
    data_dir = tmp_path_factory.mktemp("data")
    summary = build_video_avatar(video, "astro-video", data_dir)
    assert summary["kind"] == "video" and summary["loop_seconds"] >= 2.0
    avatar = load_avatar("astro-video", data_dir)
    assert isinstance(avatar, VideoAvatar) and isinstance(avatar, CustomAvatar)
    return data_dir, avatar


def test_build_writes_a_video_asset(built: tuple[Path, VideoAvatar]) -> None:
    data_dir, _ = built
    path = data_dir / "avatars" / "astro-video"
    manifest = json.loads((path / "manifest.json").read_text("utf-8"))
    assert manifest["kind"] == "video" and manifest["size"] == {"width": 540, "height": 960}
    asset = load_asset(path)
    assert isinstance(asset, VideoAsset) and asset.loop.shape[0] == manifest["loop"]["frames"]
    # the loop is cut from closed-mouth frames: the sample speaks from 3 s to 5 s
    a, b = manifest["loop"]["source_frames"]
    assert b <= 75 or a >= 125


def test_loop_has_no_jump_at_the_seam(built: tuple[Path, VideoAvatar]) -> None:
    _, avatar = built
    n = len(avatar.loop)
    per_loop_frame = 25 / avatar.fps  # output frames per loop frame

    def at(i: int) -> np.ndarray:
        index = int(np.ceil(i * per_loop_frame))
        assert avatar.loop_index(index) == i % n
        return avatar.render(FrameState(frame_index=index)).y.astype(np.float32)

    frames = [at(n - 1), at(n), at(n + 1)]  # the seam: last loop frame, then the first
    seam = float(np.abs(frames[0] - frames[1]).mean())
    step = float(np.abs(frames[2] - frames[1]).mean())  # an ordinary frame step
    assert seam < LOOP_SEAM_MAX, seam
    assert seam < 3 * step + 0.5, (seam, step)


def test_mouth_changes_only_inside_the_mouth_box(built: tuple[Path, VideoAvatar]) -> None:
    _, avatar = built
    rest = avatar.render(FrameState(frame_index=25)).y.astype(np.int32)
    mx, my, mw, mh = avatar._mouth_box
    inside = np.zeros(rest.shape, bool)
    inside[my - 1 : my + mh + 1, mx - 1 : mx + mw + 1] = True
    shapes = {}
    for shape in (Shape.C, Shape.D, Shape.F):
        pose = FrameState(mouth=MouthPose(shape, 1.0), frame_index=25)
        y = avatar.render(pose).y.astype(np.int32)
        assert not np.any(y[~inside] != rest[~inside]), shape
        assert float(np.abs(y - rest)[inside].mean()) > 2.0, shape
        shapes[shape] = y
    assert float(np.abs(shapes[Shape.D] - shapes[Shape.F])[inside].mean()) > 1.0


def test_rest_shows_the_loop_moving(built: tuple[Path, VideoAvatar]) -> None:
    _, avatar = built
    a = avatar.render(FrameState(frame_index=0)).y.astype(np.int32)
    b = avatar.render(FrameState(frame_index=12)).y.astype(np.int32)  # 0.5 s later
    assert float(np.abs(a - b).mean()) > 0.5  # the video's own head motion


def test_too_short(tmp_path: Path) -> None:
    short = vs.write_video(tmp_path / "short.mp4", vs.talking_frames(2.0, 25), 25)
    with pytest.raises(VideoQualityError) as err:
        build_video_avatar(short, "short", tmp_path / "data")
    assert err.value.reason == "too_short"


def test_low_fps(tmp_path: Path) -> None:
    slow = vs.write_video(tmp_path / "slow.mp4", vs.talking_frames(6.0, 10), 10)
    with pytest.raises(VideoQualityError) as err:
        build_video_avatar(slow, "slow", tmp_path / "data")
    assert err.value.reason == "low_fps"


def test_corrupt_and_unsupported(tmp_path: Path, video: Path) -> None:
    bad = vs.corrupt_video(tmp_path / "bad.mp4", video)
    with pytest.raises(VideoQualityError) as err:
        build_video_avatar(bad, "bad", tmp_path / "data")
    assert err.value.reason == "corrupt_file"
    text = tmp_path / "notes.mp4"
    text.write_text("not a video at all\n" * 50)
    with pytest.raises(VideoQualityError) as err:
        build_video_avatar(text, "text", tmp_path / "data")
    assert err.value.reason == "unsupported_file"
    assert not (tmp_path / "data" / "avatars").exists() or not any(
        (tmp_path / "data" / "avatars").iterdir()
    )
