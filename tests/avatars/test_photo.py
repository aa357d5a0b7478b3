"""The photo avatar: checks, landmarks, the warped mouth and eyes, seams, mattes, the asset."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import photo_samples as ps
import pytest
from numpy.typing import NDArray
from photo_samples import FACE_REGION

from avatarcast.avatars.asset import AssetError, load_asset
from avatarcast.avatars.custom import CustomAvatar
from avatarcast.avatars.photo import AvatarQualityError, build_photo_avatar, check_photo
from avatarcast.avatars.registry import available_avatars, load_avatar
from avatarcast.errors import AvatarLoadError, UnknownAvatarError
from avatarcast.render.frame import FrameState
from avatarcast.speech.visemes import SHAPES, MouthPose, Shape

SEAM_MAX = 3.0  # mean |luma step| across a sprite border, beyond the photo's own


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, CustomAvatar]:
    data_dir = tmp_path_factory.mktemp("data")
    photo = ps.save(tmp_path_factory.mktemp("photo") / "astronaut.png", ps.astronaut())
    summary = build_photo_avatar(photo, "astro", data_dir)
    assert summary["name"] == "astro" and summary["seconds"] < 30
    avatar = load_avatar("astro", data_dir)
    assert isinstance(avatar, CustomAvatar)
    return data_dir, avatar


def luma(avatar: CustomAvatar, **kw: object) -> NDArray[np.int32]:
    return avatar.render(FrameState(**kw)).y.astype(np.int32)  # type: ignore[arg-type]


def frame_box(avatar: CustomAvatar, which: str) -> tuple[slice, slice]:
    x, y, w, h = avatar.asset.box(which)
    m = avatar.asset.margin
    return slice(y - m, y - m + h), slice(x - m, x - m + w)


def lip_box(avatar: CustomAvatar, pad: int = 12) -> tuple[slice, slice]:
    """Around the lips (face-mesh points 61, 291, 0, 17), in frame pixels at rest."""
    lm = np.array(avatar.asset.manifest["landmarks"]) - avatar.asset.margin
    pts = lm[[61, 291, 0, 17]]
    (x0, y0), (x1, y1) = pts.min(0).astype(int), pts.max(0).astype(int)
    return slice(y0 - pad, y1 + 3 * pad), slice(x0 - pad, x1 + pad)


def outside(mask_shape: tuple[int, int], box: tuple[slice, slice]) -> NDArray[np.bool_]:
    out = np.ones(mask_shape, bool)
    out[box] = False
    return out


def test_landmarks_are_on_the_face() -> None:
    check = check_photo(ps.astronaut())
    x0, y0, x1, y1 = FACE_REGION
    lo, hi = check.landmarks.min(0), check.landmarks.max(0)
    assert x0 <= lo[0] and hi[0] <= x1 and y0 <= lo[1] and hi[1] <= y1
    assert 60 <= hi[0] - lo[0] <= 140  # a face, not a speck or the whole photo
    nose, chin = check.landmarks[1], check.landmarks[152]
    assert lo[1] < nose[1] < chin[1]
    assert check.passed[-1] == "sharpness"


def test_renders_at_540x960(built: tuple[Path, CustomAvatar]) -> None:
    _, avatar = built
    frame = avatar.render(FrameState())
    assert (frame.width, frame.height, frame.data.shape) == (540, 960, (1440, 540))
    assert avatar.thumbnail().shape == (320, 180, 3)
    assert avatar.alpha(FrameState()).shape == (960, 540)
    assert "astro" in available_avatars(built[0])
    # the face is where framing put it: skin-bright pixels inside the face box
    fb = avatar.asset.manifest["face_box"]
    assert 0.2 * 540 < fb[2] - fb[0] < 0.6 * 540 and 100 < fb[1] < 500


def test_mouth_moves_only_inside_the_jaw_region(built: tuple[Path, CustomAvatar]) -> None:
    _, avatar = built
    a = luma(avatar, mouth=MouthPose(Shape.A, 1.0))
    d = luma(avatar, mouth=MouthPose(Shape.D, 1.0))
    box = frame_box(avatar, "mouth")
    diff = np.abs(d - a)
    assert int((diff > 25).sum()) > 1500  # the open mouth is plainly visible
    assert int(diff[outside(diff.shape, box)].max()) == 0  # nothing else changed
    lips = lip_box(avatar)
    assert int((d[lips] < 50).sum()) > int((a[lips] < 50).sum()) + 300  # a dark cavity
    # the box stays in the lower face: below the eyes, within the jaw's width (+ the chin's drop)
    fb = avatar.asset.manifest["face_box"]
    m = avatar.asset.margin
    assert box[1].start >= fb[0] - m - 10 and box[1].stop <= fb[2] - m + 10
    assert box[0].start > frame_box(avatar, "eye")[0].stop - 1
    # every shape differs from rest and from each other (rounded, tucked, tongue...)
    rest = luma(avatar)
    seen = [luma(avatar, mouth=MouthPose(s, 1.0))[box] for s in SHAPES if s != Shape.X]
    assert all(np.abs(s - rest[box]).mean() > 0.5 for s in seen)
    for i in range(len(seen)):
        for j in range(i + 1, len(seen)):
            assert np.abs(seen[i] - seen[j]).mean() > 0.3, (SHAPES[i], SHAPES[j])


def test_seam_between_sprite_and_face_is_invisible(built: tuple[Path, CustomAvatar]) -> None:
    _, avatar = built
    rest = luma(avatar)
    for which, states in (
        ("mouth", [FrameState(mouth=MouthPose(s, k / 6)) for s in SHAPES for k in (1, 3, 6)]),
        ("eye", [FrameState(blink=k / 4) for k in range(1, 5)]),
    ):
        ys, xs = frame_box(avatar, which)
        for st in states:
            img = avatar.render(st).y.astype(np.int32)
            # the step across each border edge, minus the photo's own step there
            steps = [
                np.abs(img[ys, xs.start] - img[ys, xs.start - 1])
                - np.abs(rest[ys, xs.start] - rest[ys, xs.start - 1]),
                np.abs(img[ys, xs.stop - 1] - img[ys, xs.stop])
                - np.abs(rest[ys, xs.stop - 1] - rest[ys, xs.stop]),
                np.abs(img[ys.start, xs] - img[ys.start - 1, xs])
                - np.abs(rest[ys.start, xs] - rest[ys.start - 1, xs]),
                np.abs(img[ys.stop - 1, xs] - img[ys.stop, xs])
                - np.abs(rest[ys.stop - 1, xs] - rest[ys.stop, xs]),
            ]
            seam = float(np.mean(np.abs(np.concatenate(steps))))
            assert seam < SEAM_MAX, (which, st, seam)


def test_blink_changes_only_the_eyes(built: tuple[Path, CustomAvatar]) -> None:
    _, avatar = built
    open_, shut = luma(avatar), luma(avatar, blink=1.0)
    box = frame_box(avatar, "eye")
    diff = np.abs(shut - open_)
    assert int(diff[outside(diff.shape, box)].max()) == 0
    assert int((diff > 20).sum()) > 150  # the dark iris is covered by the lid
    assert shut[box].mean() > open_[box].mean()
    half = np.abs(luma(avatar, blink=0.5) - open_)
    assert 0 < int((half > 20).sum()) < int((diff > 20).sum())


def test_head_sways_over_a_still_body_and_background(built: tuple[Path, CustomAvatar]) -> None:
    _, avatar = built
    still = luma(avatar)
    moved = luma(avatar, head_dx=2.0, head_dy=-1.0)
    ys, xs = lip_box(avatar)  # the face moved by exactly (2, -1) ...
    assert np.array_equal(
        moved[ys, xs.start + 2 : xs.stop + 2], still[ys.start + 1 : ys.stop + 1, xs]
    )
    assert np.array_equal(moved[:30, :30], still[:30, :30])  # ... the background did not
    n1 = avatar.asset.neck_rows[1] - avatar.asset.margin
    assert np.array_equal(moved[n1:], still[n1:])  # ... nor the body
    breathing = luma(avatar, breath=1.0)  # breathing lifts the whole person by a pixel
    body = (slice(n1, -2), slice(200, 340))
    lifted = np.abs(breathing[body] - still[n1 + 1 : -1, 200:340]).mean()
    assert lifted < 0.5 < np.abs(breathing[body] - still[body]).mean()
    matte = avatar.alpha(FrameState(head_dx=2.0))
    assert matte[lip_box(avatar)].min() == 255 and matte[:30, :30].max() == 0


@pytest.mark.parametrize("mode", ["remove", "green", "white"])
def test_background_matte(tmp_path: Path, mode: str) -> None:
    screens = {"green": ps.green_screen, "white": lambda: ps.screen((255, 255, 255))}
    img = screens.get(mode, ps.astronaut)()
    photo = ps.save(tmp_path / "p.png", img)
    build_photo_avatar(photo, "m", tmp_path / "data", background=mode)
    avatar = load_avatar("m", tmp_path / "data")
    assert isinstance(avatar, CustomAvatar)
    matte = avatar.alpha(FrameState())
    assert matte.shape == (960, 540) and matte.dtype == np.uint8
    assert matte[lip_box(avatar)].min() == 255  # the face is opaque
    assert matte[:40, :40].max() == 0 and matte[:40, -40:].max() == 0  # top corners: background
    frame = avatar.render(FrameState()).y
    assert abs(int(frame[:40, :40].mean()) - 218) < 12  # replaced by the neutral grey


QUALITY: list[tuple[str, Callable[[Path], Path]]] = [
    ("no_face", lambda d: ps.save(d / "blank.png", ps.blank())),
    ("multiple_faces", lambda d: ps.save(d / "two.png", ps.two_faces())),
    ("face_too_small", lambda d: ps.save(d / "tiny.png", ps.tiny_face())),
    ("too_blurry", lambda d: ps.save(d / "blur.png", ps.blurred())),
    ("too_dark", lambda d: ps.save(d / "dark.png", ps.dark())),
    ("head_tilted", lambda d: ps.save(d / "rot.png", ps.rotated())),
    ("head_turned", lambda d: ps.save(d / "turned.png", ps.turned())),
    ("face_cut_off", lambda d: ps.save(d / "cut.png", ps.cut_off())),
    ("corrupt_file", lambda d: ps.truncated_jpeg(d / "cut.jpg")),
    ("unsupported_file", lambda d: (d / "notes.txt", (d / "notes.txt").write_text("hi"))[0]),
]


@pytest.mark.parametrize(("reason", "make"), QUALITY, ids=[q[0] for q in QUALITY])
def test_quality_checks(tmp_path: Path, reason: str, make: Callable[[Path], Path]) -> None:
    photo = make(tmp_path)
    data_dir = tmp_path / "data"
    with pytest.raises(AvatarQualityError) as err:
        build_photo_avatar(photo, "bad", data_dir)
    assert err.value.reason == reason
    assert err.value.code == "avatar_photo_rejected" and len(err.value.message) > 10
    leftovers = list((data_dir / "avatars").iterdir()) if (data_dir / "avatars").exists() else []
    assert leftovers == []
    assert available_avatars(data_dir) == ["default"]


def _damage(path: Path, how: str) -> None:
    mf = path / "manifest.json"
    if how == "bad_json":
        mf.write_text("{not json", "utf-8")
    elif how == "version":
        doc = json.loads(mf.read_text("utf-8"))
        doc["version"] = 99
        mf.write_text(json.dumps(doc), "utf-8")
    elif how == "foreign":
        mf.write_text(json.dumps({"format": "something-else"}), "utf-8")
    elif how == "missing_sprites":
        (path / "mouth.npy").unlink()
    elif how == "wrong_shape":
        np.save(path / "eyes.npy", np.zeros((2, 3, 4, 3), np.uint8))
    elif how == "bad_box":
        doc = json.loads(mf.read_text("utf-8"))
        doc["mouth_box"] = [5000, 10, 8, 8]
        mf.write_text(json.dumps(doc), "utf-8")


@pytest.mark.parametrize(
    "how", ["bad_json", "version", "foreign", "missing_sprites", "wrong_shape", "bad_box"]
)
def test_damaged_asset_is_a_clear_error(
    built: tuple[Path, CustomAvatar], tmp_path: Path, how: str
) -> None:
    data_dir = tmp_path / "data"
    shutil.copytree(built[0] / "avatars" / "astro", data_dir / "avatars" / "broken")
    _damage(data_dir / "avatars" / "broken", how)
    with pytest.raises(AssetError) as err:
        load_asset(data_dir / "avatars" / "broken")
    assert "broken" in err.value.message
    with pytest.raises(AvatarLoadError):
        load_avatar("broken", data_dir)
    with pytest.raises(UnknownAvatarError):
        load_avatar("nobody", data_dir)


def test_failed_write_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import avatarcast.avatars.asset as asset_mod

    def broken_save(*_a: object, **_k: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(asset_mod.np, "save", broken_save)
    photo = ps.save(tmp_path / "astronaut.png", ps.astronaut())
    stale = tmp_path / "data" / "avatars" / "half.partial-999999999"  # from a killed build
    (stale / "sub").mkdir(parents=True)
    with pytest.raises(OSError, match="disk full"):
        build_photo_avatar(photo, "half", tmp_path / "data")
    assert list((tmp_path / "data" / "avatars").iterdir()) == []
    assert available_avatars(tmp_path / "data") == ["default"]


def test_shared_between_threads(built: tuple[Path, CustomAvatar]) -> None:
    from concurrent.futures import ThreadPoolExecutor

    _, avatar = built
    states = [
        FrameState(mouth=MouthPose(SHAPES[i % 9], (i % 7) / 6), blink=(i % 5) / 4, head_dx=i % 3)
        for i in range(60)
    ]
    expected = [avatar.render(s).data.copy() for s in states]
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda s: avatar.render(s).data, states * 3))
    assert all(np.array_equal(g, expected[i % 60]) for i, g in enumerate(got))


@pytest.mark.parametrize(("w", "h"), [(270, 480), (720, 1280)])
def test_other_sizes(built: tuple[Path, CustomAvatar], w: int, h: int) -> None:
    avatar = load_avatar("astro", built[0], w, h)
    assert isinstance(avatar, CustomAvatar)
    rest = luma(avatar)
    assert rest.shape == (h, w)

    def thumb(y: NDArray[np.int32]) -> NDArray[np.float64]:
        small = cv2.resize(y.astype(np.float32), (135, 240), interpolation=cv2.INTER_AREA)
        return np.asarray(small, np.float64)

    assert np.abs(thumb(rest) - thumb(luma(built[1]))).mean() < 3  # the same picture
    wide = luma(avatar, mouth=MouthPose(Shape.D, 1.0))
    box = frame_box(avatar, "mouth")
    diff = np.abs(wide - rest)
    assert int(diff[outside(diff.shape, box)].max()) == 0 and int((diff > 25).sum()) > 100
    ys, xs = box  # seamless: the sprite's border rows/columns equal the base frame there
    border = np.concatenate(
        [diff[ys.start, xs], diff[ys.stop - 1, xs], diff[ys, xs.start], diff[ys, xs.stop - 1]]
    )
    assert int(border.max()) == 0


def test_other_aspects_are_a_settings_error(built: tuple[Path, CustomAvatar]) -> None:
    from avatarcast.errors import SettingsError

    with pytest.raises(SettingsError, match="aspect"):
        load_avatar("astro", built[0], 960, 540)
