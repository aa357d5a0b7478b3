import numpy as np

from avatarcast.render.alpha import luma_to_matte, matte_to_luma, pack_frame
from avatarcast.render.frame import YuvFrame


def test_pack_frame_layout() -> None:
    w, h = 8, 6
    rng = np.random.default_rng(1)
    colour = YuvFrame(rng.integers(0, 256, (h * 3 // 2, w), dtype=np.uint8), w, h)
    matte = rng.integers(0, 256, (h, w), dtype=np.uint8)
    frame = pack_frame(colour, matte)
    assert (frame.width, frame.height) == (2 * w, h)
    assert np.array_equal(frame.y[:, :w], colour.y)
    assert np.array_equal(frame.u[:, : w // 2], colour.u)
    assert np.array_equal(frame.v[:, : w // 2], colour.v)
    assert np.array_equal(frame.y[:, w:], matte_to_luma(matte))
    assert (frame.u[:, w // 2 :] == 128).all() and (frame.v[:, w // 2 :] == 128).all()


def test_luma_matte_roundtrip() -> None:
    a = np.arange(256, dtype=np.uint8)
    back = luma_to_matte(matte_to_luma(a)).astype(int)
    assert np.abs(back - a).max() <= 1
    assert back[0] == 0 and back[255] == 255
