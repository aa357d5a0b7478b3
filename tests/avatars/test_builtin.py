"""The built-in avatar: frame content per mouth shape and blink, matte, sizes; the registry."""

from __future__ import annotations

import numpy as np
import pytest

from avatarcast.avatars import builtin, builtin_art
from avatarcast.avatars.builtin import BuiltinAvatar
from avatarcast.avatars.builtin_art import MOUTH_BOX
from avatarcast.avatars.registry import available_avatars, load_avatar
from avatarcast.errors import UnknownAvatarError
from avatarcast.render.compose import rgb_to_yuv420
from avatarcast.render.frame import FrameState
from avatarcast.speech.visemes import SHAPES, MouthPose, Shape


@pytest.fixture(scope="module")
def avatar() -> BuiltinAvatar:
    return BuiltinAvatar()


def luma(avatar: BuiltinAvatar, **kw: object) -> np.ndarray:
    return avatar.render(FrameState(**kw)).y.astype(np.int32)  # type: ignore[arg-type]


def mouth(shape: Shape, openness: float) -> MouthPose:
    return MouthPose(shape, openness)


MOUTH_REGION = (slice(440, 524), slice(224, 318))  # luma rows/cols at 540x960
EYE_REGION = (slice(350, 402), slice(182, 360))


def changed_bbox(a: np.ndarray, b: np.ndarray) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(a != b)
    return int(ys.min()), int(ys.max()), int(xs.min()), int(xs.max())


def test_frame_layout(avatar: BuiltinAvatar) -> None:
    f = avatar.render(FrameState())
    assert (f.width, f.height) == (540, 960)
    assert f.data.shape == (1440, 540) and f.data.dtype == np.uint8
    assert f.data.flags.c_contiguous


def test_mouth_shapes_change_the_mouth(avatar: BuiltinAvatar) -> None:
    a = luma(avatar, mouth=mouth(Shape.A, 1.0))
    d = luma(avatar, mouth=mouth(Shape.D, 1.0))
    diff = np.abs(a - d)[MOUTH_REGION]
    assert (diff > 40).sum() > 1000  # wide open vs closed: a big change
    assert (d[MOUTH_REGION] < 60).sum() > 600  # the open mouth is dark inside
    assert (a[MOUTH_REGION] < 60).sum() < 50
    c2 = luma(avatar, mouth=mouth(Shape.C, 0.2))
    c9 = luma(avatar, mouth=mouth(Shape.C, 0.9))
    assert (np.abs(c2 - c9)[MOUTH_REGION] > 40).sum() > 300
    # every shape at full openness is distinct from every other
    frames = {s: luma(avatar, mouth=mouth(s, 1.0))[MOUTH_REGION] for s in SHAPES if s != Shape.X}
    for s1 in frames:
        for s2 in frames:
            if s1 < s2:
                assert np.abs(frames[s1] - frames[s2]).mean() > 1.0, (s1, s2)


def test_openness_zero_is_closed_for_every_shape(avatar: BuiltinAvatar) -> None:
    rest = luma(avatar, mouth=mouth(Shape.X, 0.0))
    for s in SHAPES:
        assert np.abs(luma(avatar, mouth=mouth(s, 0.0)) - rest).max() <= 2
    # a little open is still nearly closed
    a_ish = luma(avatar, mouth=mouth(Shape.A, 0.1))
    assert np.abs(a_ish - rest)[MOUTH_REGION].mean() < 3


def test_same_state_same_frame_and_caller_owns_it(avatar: BuiltinAvatar) -> None:
    st = FrameState(mouth=mouth(Shape.E, 0.7), blink=0.4, breath=0.3, head_dx=1.6, head_dy=-1)
    f1 = avatar.render(st)
    f1.data[:] = 0  # scribbling on one frame must not touch the caches
    f2, f3 = avatar.render(st), avatar.render(st)
    assert np.array_equal(f2.data, f3.data) and f2.data.any()


@pytest.mark.parametrize("pose", [{}, {"head_dx": 3.0, "head_dy": -2.0}, {"head_dx": -1.0}])
def test_mouth_changes_stay_inside_the_face(avatar: BuiltinAvatar, pose: dict[str, float]) -> None:
    rest = avatar.render(FrameState(**pose)).data  # type: ignore[arg-type]
    dx, dy = round(pose.get("head_dx", 0)), round(pose.get("head_dy", 0))
    x0, y0, x1, y1 = MOUTH_BOX
    for s in SHAPES:
        for o in (0.5, 1.0):
            f = avatar.render(FrameState(mouth=mouth(s, o), **pose)).data  # type: ignore[arg-type]
            if np.array_equal(f, rest):
                continue
            top, bottom, left, right = changed_bbox(f[:960], rest[:960])
            assert top >= y0 + dy - 2 and bottom <= y1 + dy + 2, (s, o)
            assert left >= x0 + dx - 2 and right <= x1 + dx + 2, (s, o)


def test_sprite_boxes_lie_inside_the_face() -> None:
    for x0, y0, x1, y1 in (builtin_art.EYE_BOX, builtin_art.MOUTH_BOX):
        for x, y in ((x0, y0), (x1, y0), (x0, y1), (x1, y1)):
            assert builtin_art.FACE.contains(x - 2, y - 2) and builtin_art.FACE.contains(
                x + 2, y + 2
            )


def test_blink_changes_only_the_eyes(avatar: BuiltinAvatar) -> None:
    open_ = luma(avatar)
    shut = luma(avatar, blink=1.0)
    assert (np.abs(open_ - shut)[EYE_REGION] > 40).sum() > 300
    top, bottom, left, right = changed_bbox(open_, shut)
    assert top >= 350 and bottom <= 400 and left >= 182 and right <= 358
    half = luma(avatar, blink=0.5)
    assert 0 < np.abs(half - open_).sum() < np.abs(shut - open_).sum() * 1.5


def test_sprites_are_seamless(avatar: BuiltinAvatar) -> None:
    """The cached pieces add up to the same picture as drawing the whole avatar at once."""
    for st in (FrameState(), FrameState(mouth=mouth(Shape.D, 1.0), blink=1.0, head_dx=1)):
        direct = rgb_to_yuv420(builtin.draw_rgb(540, 960, st))
        diff = np.abs(avatar.render(st).data.astype(int) - direct)
        # skia's anti-aliasing is not bit-exact under translation: a few edge pixels differ
        assert diff.max() <= 10 and np.count_nonzero(diff > 3) < 60


def test_matte(avatar: BuiltinAvatar) -> None:
    m = avatar.alpha(FrameState())
    assert m.shape == (960, 540) and m.dtype == np.uint8
    for y, x in ((0, 0), (0, 539), (5, 5), (300, 5)):
        assert m[y, x] == 0
    assert m[380, 270] == 255 and m[480, 270] == 255 and m[950, 270] == 255
    soft = np.count_nonzero((m > 0) & (m < 255))
    assert soft > 200  # anti-aliased edge
    moved = avatar.alpha(FrameState(head_dx=4, head_dy=2))
    # the head moves with the state; the body (rows below the hair) does not
    assert np.array_equal(moved[150:500, 20:520], m[148:498, 16:516])
    assert np.array_equal(moved[700:], m[700:])


def test_other_sizes_and_thumbnail() -> None:
    small, big = BuiltinAvatar(270, 480), BuiltinAvatar(1080, 1920)
    for av in (small, big):
        f = av.render(FrameState(mouth=mouth(Shape.D, 1.0), head_dx=1))
        assert f.data.shape == (av.height * 3 // 2, av.width)
        assert av.alpha(FrameState())[av.height // 2, av.width // 2] == 255
    # the same picture at any size: compare the small render with the big one scaled down
    ys = small.render(FrameState()).y.astype(float)
    yb = big.render(FrameState()).y.astype(float).reshape(480, 4, 270, 4).mean(axis=(1, 3))
    assert np.abs(ys - yb).mean() < 2.0
    thumb = small.thumbnail()
    assert thumb.shape == (320, 180, 3) and thumb.dtype == np.uint8
    with pytest.raises(ValueError):
        BuiltinAvatar(500, 500)


def test_registry_shares_instances() -> None:
    a = load_avatar("default")
    assert a is load_avatar("default", None, 540, 960)
    assert a.name == "default" and (a.width, a.height) == (540, 960)
    assert load_avatar("default", width=270, height=480) is not a
    assert "default" in available_avatars()
    with pytest.raises(UnknownAvatarError, match="default"):
        load_avatar("nobody")
