import numpy as np

from avatarcast.avatars.alpha import pack_alpha
from avatarcast.avatars.registry import load_avatar
from avatarcast.render.alpha import luma_to_matte
from avatarcast.render.frame import FrameState
from avatarcast.speech.visemes import MouthPose, Shape


def test_packed_frame_halves() -> None:
    avatar = load_avatar("default")
    packed = pack_alpha(avatar)
    state = FrameState(mouth=MouthPose(Shape.C, 0.6), head_dx=2)
    frame = packed.render(state)
    colour = avatar.render(state)
    matte = avatar.alpha(state)
    w, h = avatar.width, avatar.height
    assert (frame.width, frame.height) == (2 * w, h)
    # Left half is the colour picture, unchanged, in all three planes.
    assert np.array_equal(frame.y[:, :w], colour.y)
    assert np.array_equal(frame.u[:, : w // 2], colour.u)
    assert np.array_equal(frame.v[:, : w // 2], colour.v)
    # Right half: the matte as luma, neutral chroma; it decodes back to the matte.
    # (256 levels squeezed into 220: at most 1 level lost)
    assert np.abs(luma_to_matte(frame.y[:, w:]).astype(int) - matte).max() <= 1
    assert (frame.u[:, w // 2 :] == 128).all() and (frame.v[:, w // 2 :] == 128).all()
    assert frame.y[5, w + 5] == 16 and frame.y[h // 2, w + w // 2] == 235
