"""The video avatar: checks, the idle loop and its seam, the mouth on the loop, the asset."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import video_samples as vs

from avatarcast.avatars.asset import VideoAsset, load_asset
from avatarcast.avatars.custom import CustomAvatar, VideoAvatar
from avatarcast.avatars.mouth_bank import still_ring
from avatarcast.avatars.photo_warp import MouthRig
from avatarcast.avatars.registry import load_avatar
from avatarcast.avatars.video import VideoQualityError, build_video_avatar
from avatarcast.errors import InputError
from avatarcast.render.compose import yuv420_to_rgb
from avatarcast.render.frame import FrameState
from avatarcast.speech.visemes import MouthPose, Shape

LOOP_SEAM_MAX = 3.0  # mean |luma| difference, last loop frame vs first (measured ~1.4)
SPRITE_BORDER_MAX = 1.0  # |luma| change on the sprite box border (weights are 0 there)
# mean |luma|, sprite vs the loop frame under the still ring of the blend, un-weighted (<= 5.0
# since the blend over real mouths stops short of the jaw: its ring reaches the lip corners,
# which E and F narrow)
# 6.5 with the espeak-trained audio classifier; the human-speech one (issue 10) labels this
# clip's espeak voice differently, and its D slots now come from frame 138 (build ring 7.5 vs
# 4.1 for frame 136 before): 10.0-11.0 measured at run time. Still far below the 22.6 seen
# when the mouth offset is ignored, which is what this bound guards.
RUNTIME_RING_MAX = 11.5
# mean |luma|, harvested vs key frame on the jaw-wide blend's still ring (~7.5 since no slot
# is warped: the ring is no longer pushed out by the warps' changes)
RING_MISMATCH_MAX = 9.0
LABEL_ACCURACY_MIN = 0.8  # harvested frames whose scripted shape is their slot's (0.90-0.95)
LABEL_ACCURACY_WITH_TEXT_MIN = 0.9  # the same with the transcript (0.95-1.0)
Script = list[tuple[Shape, float]]


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Script]:
    return vs.speaking_video(tmp_path_factory.mktemp("video") / "astronaut.mp4")


@pytest.fixture(scope="module")
def built(
    tmp_path_factory: pytest.TempPathFactory, video: tuple[Path, Script]
) -> tuple[Path, VideoAvatar]:
    data_dir = tmp_path_factory.mktemp("data")
    summary = build_video_avatar(video[0], "astro-video", data_dir)
    assert summary["kind"] == "video" and summary["loop_seconds"] >= 2.0
    avatar = load_avatar("astro-video", data_dir)
    assert isinstance(avatar, VideoAvatar) and isinstance(avatar, CustomAvatar)
    return data_dir, avatar


def manifest_of(data_dir: Path, name: str = "astro-video") -> dict:
    return json.loads((data_dir / "avatars" / name / "manifest.json").read_text("utf-8"))


def test_build_writes_a_video_asset(
    built: tuple[Path, VideoAvatar], video: tuple[Path, Script]
) -> None:
    data_dir, _ = built
    manifest = manifest_of(data_dir)
    assert manifest["kind"] == "video" and manifest["size"] == {"width": 540, "height": 960}
    asset = load_asset(data_dir / "avatars" / "astro-video")
    assert isinstance(asset, VideoAsset) and asset.loop.shape[0] == manifest["loop"]["frames"]
    assert asset.mouth_alpha is not None and asset.mouth_offsets.shape == (len(asset.loop), 2)
    # the loop is cut from silent closed-mouth frames, clear of the speech
    speaking = [i for i, (_, o) in enumerate(video[1]) if o > 0]
    a, b = manifest["loop"]["source_frames"]
    assert b <= speaking[0] or a > speaking[-1], (a, b, speaking[0], speaking[-1])
    assert manifest["source"]["sound"] and manifest["source"]["speech_seconds"] > 2.0


def test_mouth_bank_is_harvested_and_labelled(
    built: tuple[Path, VideoAvatar], video: tuple[Path, Script]
) -> None:
    bank = manifest_of(built[0])["bank"]
    assert bank["labels"] == "audio+landmarks"
    harvested = [s for s in bank["slots"] if s["source"] == "video"]
    assert len(harvested) >= 25, bank["harvested_slots"]
    # every shape the sentence says clearly is harvested for its usual openness; of the two
    # short-consonant shapes (the script's 7 frames of l = H, 7 of f/v = G) the human-speech
    # audio classifier hears one in this espeak voice (the per-frame model H, the one with
    # the temporal head G); a shape not heard is filled from its nearest harvested mouth
    for shape, level in (("B", 2), ("C", 4), ("D", 6), ("E", 3), ("F", 2)):
        assert any(s["shape"] == shape and s["level"] == level for s in harvested), shape
    assert {"G", "H"} & {s["shape"] for s in harvested}
    by_shape = {sh: [s for s in bank["slots"] if s["shape"] == sh] for sh in "ABCDEFGH"}
    assert all(len(v) >= 3 for v in by_shape.values()), {k: len(v) for k, v in by_shape.items()}
    # labels (heard shapes + landmarks) against the video's script
    right, total = bank_accuracy(bank, video[1])
    assert right / total >= LABEL_ACCURACY_MIN, (right, total)
    assert bank["ring_luma_mad_max"] < RING_MISMATCH_MAX


def bank_accuracy(bank: dict, script: Script) -> tuple[int, int]:
    """(right, total) over the distinct frames harvested into the bank; A (pressed) and X
    (rest) are both closed lips, told apart only by context."""
    frames = {(s["frame"], s["shape"]) for s in bank["slots"] if s["source"] == "video"}
    closed = {"A", "X"}
    right = sum(
        script[f][0].value == shape or {script[f][0].value, shape} <= closed for f, shape in frames
    )
    return right, len(frames)


def test_transcript_times_the_labels(
    tmp_path: Path, video: tuple[Path, Script], built: tuple[Path, VideoAvatar]
) -> None:
    """Knowing the words (English text timed on the audio) labels better than the sound
    alone (0.95-1.0 of the harvested frames on the test videos, vs 0.9-0.95)."""
    build_video_avatar(video[0], "with-text", tmp_path, transcript=vs.SENTENCE)
    bank = manifest_of(tmp_path, "with-text")["bank"]
    assert bank["labels"] == "audio+text+landmarks"
    right, total = bank_accuracy(bank, video[1])
    assert total >= 15 and right / total >= LABEL_ACCURACY_WITH_TEXT_MIN, (right, total)
    with pytest.raises(InputError, match="transcript is longer"):
        build_video_avatar(video[0], "long", tmp_path, transcript="word " * 5000)


def cavity_tint(avatar: VideoAvatar, pose: MouthPose, frame_index: int = 0) -> float:
    """Mean (B - R) of the dark opening in the mouth box: > +20 for the video's own (tinted)
    mouths, below -10 for the warp's (dark red)."""
    mx, my, mw, mh = avatar._mouth_box
    boxes = []
    for p in (pose, MouthPose(Shape.X, 0.0)):
        f = avatar.render(FrameState(mouth=p, frame_index=frame_index))
        rgb = yuv420_to_rgb(f.data, f.width, f.height).astype(np.int32)
        boxes.append(rgb[my : my + mh, mx : mx + mw])
    box, rest = boxes
    dark = (box.mean(axis=2) < 60) & (rest.mean(axis=2) > 90)  # opened, not the dark shirt
    assert dark.sum() > 30, pose  # the mouth is open
    return float((box[..., 2] - box[..., 0])[dark].mean())


def test_speaking_frames_come_from_the_bank(built: tuple[Path, VideoAvatar]) -> None:
    data_dir, avatar = built
    slots = {(s["shape"], s["level"]): s["source"] for s in manifest_of(data_dir)["bank"]["slots"]}
    # a slot the video never shows takes the nearest harvested mouth, not drawn teeth
    assert slots[("D", 6)] == "video" and slots[("X", 6)] == "nearest"
    assert "warp" not in slots.values()
    assert cavity_tint(avatar, MouthPose(Shape.D, 1.0)) > 20  # the person's own mouth
    assert cavity_tint(avatar, MouthPose(Shape.C, 4 / 6)) > 20


def test_mouth_follows_each_loop_frame(built: tuple[Path, VideoAvatar]) -> None:
    """The sprite lands where the current loop frame's mouth is (whole pixels)."""
    _, avatar = built
    shifts = [avatar.mouth_shift(i) for i in range(len(avatar.loop))]
    far = max(range(len(shifts)), key=lambda i: abs(shifts[i][0]) + abs(shifts[i][1]))
    assert shifts[0] == (0, 0) and shifts[far] != (0, 0)

    def centre(loop_index: int) -> np.ndarray:
        index = int(np.ceil(loop_index * 25 / avatar.fps))
        f = avatar.render(FrameState(mouth=MouthPose(Shape.D, 1.0), frame_index=index))
        rest = avatar.render(FrameState(frame_index=index))
        diff = np.abs(f.y.astype(np.int32) - rest.y.astype(np.int32)) > 40
        ys, xs = np.nonzero(diff)
        return np.array([xs.mean(), ys.mean()])

    moved = centre(far) - centre(0)
    assert np.all(np.abs(moved - np.array(shifts[far])) <= 1.0), (moved, shifts[far])


def test_sprite_blends_without_a_seam(built: tuple[Path, VideoAvatar]) -> None:
    """Where the blend hands over to the loop frame (the still ring: cheeks and nose base),
    the harvested mouth matches the loop frame under it, on the key frame and on the loop
    frame whose head moved most (its mouth offset applied); at the box border the loop
    frame shows unchanged."""
    _, avatar = built
    assert avatar._alpha is not None
    rig = MouthRig(np.array(avatar.asset.manifest["landmarks"]))
    rows, cols = np.nonzero(still_ring(rig, avatar._alpha))
    weight = avatar._alpha[rows, cols] / 255.0
    # where each loop frame's mouth is, as the build measured it
    asset = avatar.asset
    assert isinstance(asset, VideoAsset)
    shifts = [(round(x), round(y)) for x, y in asset.mouth_offsets]
    far = max(range(len(shifts)), key=lambda i: abs(shifts[i][0]) + abs(shifts[i][1]))
    assert shifts[far] != (0, 0)
    for i in (0, far, len(avatar.loop) - 1):
        index = int(np.ceil(i * 25 / avatar.fps))
        rest = avatar.render(FrameState(frame_index=index)).y.astype(np.float32)
        dx, dy = shifts[i]
        mx, my, mw, mh = avatar._mouth_box
        ys, xs = my - 1 + dy + rows, mx - 1 + dx + cols
        for shape, k in ((Shape.D, 6), (Shape.C, 4), (Shape.E, 3), (Shape.F, 2), (Shape.X, 3)):
            st = FrameState(mouth=MouthPose(shape, k / 6), frame_index=index)
            img = avatar.render(st).y.astype(np.float32)
            # the sprite's own difference from the frame beneath (un-weighted)
            mismatch = float((np.abs(img[ys, xs] - rest[ys, xs]) / weight).mean())
            assert mismatch < RUNTIME_RING_MAX, (i, shape, mismatch)
            box = np.zeros(img.shape, bool)
            box[my + dy : my + dy + mh, mx + dx : mx + dx + mw] = True
            border = box & ~np.roll(np.roll(box, 1, 0), 1, 1) | box & ~np.roll(
                np.roll(box, -1, 0), -1, 1
            )
            assert float(np.abs(img - rest)[border].max()) <= SPRITE_BORDER_MAX


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
    dx, dy = avatar.mouth_shift(avatar.loop_index(25))
    mx, my = mx + dx, my + dy
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


def test_no_face_and_two_faces_are_refused_with_what_to_change(tmp_path: Path) -> None:
    """What cannot make an avatar is refused, the message saying what to record instead."""
    frames = vs.talking_frames(4.0, 25)
    empty = vs.write_video(tmp_path / "empty.mp4", [np.full_like(f, 120) for f in frames], 25)
    with pytest.raises(VideoQualityError) as err:
        build_video_avatar(empty, "empty", tmp_path / "data")
    assert err.value.reason == "no_face" and "facing the camera" in err.value.message
    two = vs.write_video(tmp_path / "two.mp4", [np.hstack([f, f]) for f in frames], 25)
    with pytest.raises(VideoQualityError) as err:
        build_video_avatar(two, "two", tmp_path / "data")
    assert err.value.reason == "multiple_faces" and "one person" in err.value.message
    # the face leaves the picture for most of the clip
    gone = [f if i < 30 else np.full_like(f, 120) for i, f in enumerate(frames)]
    leaves = vs.write_video(tmp_path / "leaves.mp4", gone, 25)
    with pytest.raises(VideoQualityError) as err:
        build_video_avatar(leaves, "leaves", tmp_path / "data")
    assert err.value.reason == "face_lost" and "keep the whole face" in err.value.message


def test_short_silent_clip_builds_with_warnings_on_the_cli(tmp_path: Path) -> None:
    """3.5 s without sound builds (refused under 3 s); the CLI prints the warnings, each
    with its fix, on stderr, and the summary lists them."""
    import subprocess
    import sys

    clip = vs.write_video(tmp_path / "short.mp4", vs.talking_frames(3.5, 25), 25)
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "avatarcast",
            "avatar",
            "build",
            "--video",
            str(clip),
            "--name",
            "short",
            "--data-dir",
            str(tmp_path / "data"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout.strip().splitlines()[-1])
    codes = [w["code"] for w in summary["warnings"]]
    assert "short" in codes and "no_sound" in codes, codes
    assert "warning: the recording is short (3.5 s); record 30 s or more" in run.stderr


def test_corrupt_and_unsupported(tmp_path: Path, video: tuple[Path, Script]) -> None:
    bad = vs.corrupt_video(tmp_path / "bad.mp4", video[0])
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


@pytest.fixture(scope="module")
def wide(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """A silent 1280x720 video built into a 16:9 avatar (labels from the landmarks alone)."""
    root = tmp_path_factory.mktemp("wide")
    path = vs.write_video(root / "wide.mp4", vs.wide_frames(8.0, 25), 25)
    summary = build_video_avatar(path, "wide", root / "data")
    return root / "data", summary


def test_wide_video_makes_a_wide_avatar(wide: tuple[Path, dict]) -> None:
    data_dir, summary = wide
    assert (summary["width"], summary["height"]) == (960, 540)
    # a video avatar renders at its own size whatever size the caller asks for
    avatar = load_avatar("wide", data_dir, 540, 960)
    assert (avatar.width, avatar.height) == (960, 540)
    frame = avatar.render(FrameState(mouth=MouthPose(Shape.D, 1.0), frame_index=3))
    assert (frame.width, frame.height) == (960, 540)
    rest = avatar.render(FrameState(frame_index=3))
    mx, my, mw, mh = avatar._mouth_box
    assert 300 < mx + mw / 2 < 660 and 200 < my + mh / 2 < 500  # the face is framed
    diff = np.abs(frame.y.astype(np.int32) - rest.y.astype(np.int32))
    assert float(diff[my : my + mh, mx : mx + mw].mean()) > 2.0


def test_silent_video_labels_by_landmarks(wide: tuple[Path, dict]) -> None:
    data_dir, _ = wide
    bank = manifest_of(data_dir, "wide")["bank"]
    assert bank["labels"] == "landmarks"
    harvested = {s["shape"] for s in bank["slots"] if s["source"] == "video"}
    # the sample opens its mouth as C, D and E; without sound G and H cannot be told apart
    assert harvested & {"C", "D", "E"} and not harvested & {"G", "H", "X"}, harvested


def test_size_must_match_the_video(tmp_path: Path, wide: tuple[Path, dict]) -> None:
    from avatarcast.avatars.video import output_size

    assert output_size((1920, 1080), None) == (960, 540)
    assert output_size((1080, 1920), None) == (540, 960)
    assert output_size((1920, 1080), (1280, 720)) == (1280, 720)
    with pytest.raises(InputError, match="wide"):
        output_size((1920, 1080), (540, 960))
    with pytest.raises(InputError, match="must be one of"):
        output_size((1920, 1080), (1000, 500))


def test_cli_renders_a_video_avatar_at_its_size(tmp_path: Path, wide: tuple[Path, dict]) -> None:
    import subprocess
    import sys

    import av

    data_dir, _ = wide
    out = tmp_path / "hello.mp4"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "avatarcast",
            "render",
            "--avatar",
            "wide",
            "--data-dir",
            str(data_dir),
            "--text",
            "Hello, how are you?",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    with av.open(str(out)) as container:
        frames = [f.to_ndarray(format="gray") for f in container.decode(video=0)]
    assert frames[0].shape == (540, 960) and len(frames) > 25
    avatar = load_avatar("wide", data_dir)
    mx, my, mw, mh = avatar._mouth_box
    mouths = np.stack([f[my : my + mh, mx : mx + mw].astype(np.float32) for f in frames])
    assert float(np.abs(np.diff(mouths, axis=0)).mean(axis=(1, 2)).max()) > 3.0  # it speaks


def test_phone_video_stored_turned_is_built_upright(tmp_path: Path) -> None:
    """Phones store an upright recording turned by 90 degrees with a display rotation."""
    import subprocess

    frames = [np.ascontiguousarray(np.rot90(f, -1)) for f in vs.talking_frames(6.0, 25)]
    turned = vs.write_video(tmp_path / "turned.mp4", frames, 25)
    rotated = tmp_path / "phone.mp4"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(turned), "-c", "copy",
         "-metadata:s:v:0", "rotate=90", str(rotated)],
        check=True, timeout=60,
    )  # fmt: skip
    summary = build_video_avatar(rotated, "phone", tmp_path / "data")
    assert (summary["width"], summary["height"]) == (540, 960)  # upright, not 16:9
    avatar = load_avatar("phone", tmp_path / "data")
    mx, my, mw, mh = avatar._mouth_box
    assert 170 < mx + mw / 2 < 370 and 350 < my + mh / 2 < 750  # an upright face


def test_720p_loop_stays_cached(tmp_path: Path, video: tuple[Path, Script]) -> None:
    """Every loop frame stays converted (a 720x1280 loop is ~130 MB of YUV): rendering the
    loop a second time converts nothing (before the fix each frame cost ~10 ms)."""
    build_video_avatar(video[0], "tall", tmp_path, size=(720, 1280))
    avatar = load_avatar("tall", tmp_path)
    assert isinstance(avatar, VideoAvatar) and (avatar.width, avatar.height) == (720, 1280)
    per_loop = 25 / avatar.fps
    for _ in range(2):
        for i in range(len(avatar.loop)):
            avatar.render(FrameState(frame_index=int(np.ceil(i * per_loop))))
    frame_bytes = 720 * 1280 * 3 // 2
    assert avatar.cache_bytes >= len(avatar.loop) * frame_bytes
    assert len(avatar._cache._bases) == len(avatar.loop)


def test_damaged_video_asset_is_a_clear_error(
    tmp_path: Path, built: tuple[Path, VideoAvatar]
) -> None:
    import shutil

    from avatarcast.avatars.asset import AssetError

    src = built[0] / "avatars" / "astro-video"
    for damage, words in (("alpha", "mouth_alpha"), ("offsets", "mouth_offsets")):
        copy = tmp_path / damage
        shutil.copytree(src, copy)
        if damage == "alpha":
            np.save(copy / "mouth_alpha.npy", np.zeros((3, 3), np.uint8))
        else:
            manifest = json.loads((copy / "manifest.json").read_text("utf-8"))
            manifest["loop"]["mouth_offsets"] = [[0, 0]] * 3  # not one per loop frame
            (copy / "manifest.json").write_text(json.dumps(manifest), "utf-8")
        with pytest.raises(AssetError, match=words):
            load_asset(copy)


def test_green_screen_video_is_keyed_frame_by_frame(tmp_path: Path) -> None:
    """Shot on a green screen: the loop shows the person over the neutral plate, the matte
    follows the person's motion frame by frame, and no green comes back with the mouths."""
    video, _ = vs.speaking_video(tmp_path / "green.mp4", backdrop=vs.GREEN_SCREEN)
    summary = build_video_avatar(video, "keyed", tmp_path / "data", background="green")
    assert summary["background"] == "green" and summary["mouth_slots_from_video"] >= 20
    avatar = load_avatar("keyed", tmp_path / "data")
    mattes = []
    for index in (0, 25):
        state = FrameState(mouth=MouthPose(Shape.D, 1.0), frame_index=index)
        frame = avatar.render(state)
        rgb = yuv420_to_rgb(frame.data, frame.width, frame.height)
        matte = avatar.alpha(state)
        assert matte[5, 5] == 0 and matte[5, -6] == 0  # the screen is gone
        assert matte[400, 270] == 255 and matte[900, 270] == 255  # face and body are kept
        assert np.abs(rgb[5, 5].astype(int) - (232, 234, 238)).max() <= 3  # neutral plate
        mx, my, mw, mh = avatar._mouth_box
        box = rgb[my : my + mh, mx : mx + mw].astype(int)
        green = (box[..., 1] > box[..., 0] + 40) & (box[..., 1] > box[..., 2] + 40)
        assert int(green.sum()) == 0  # the harvested mouths were keyed too
        mattes.append(matte.astype(int))
    assert float(np.abs(mattes[0] - mattes[1]).mean()) > 1.0  # the silhouette moves
