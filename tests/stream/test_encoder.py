from pathlib import Path

import av
import numpy as np

from avatarcast.render.frame import YuvFrame
from avatarcast.stream.encoder import H264Encoder, VideoOptions
from avatarcast.stream.mp4 import Mp4Writer


def _frame(level: int) -> YuvFrame:
    f = YuvFrame.blank(160, 96)
    f.y[:] = level
    return f


def test_mp4_roundtrip_content(tmp_path: Path) -> None:
    path = tmp_path / "x.mp4"
    opts = VideoOptions(width=160, height=96)
    tone = (np.sin(np.arange(640 * 50) * 2 * np.pi * 440 / 16000) * 8000).astype(np.int16)
    with Mp4Writer(path, opts) as w:
        for i in range(50):
            w.write_video(_frame(40 if i < 25 else 200))
            w.write_audio(tone[i * 640 : (i + 1) * 640])
    with av.open(str(path)) as c:
        frames = [f.to_ndarray(format="yuv420p")[:96] for f in c.decode(video=0)]
    assert len(frames) == 50
    assert abs(float(frames[5].mean()) - 40) < 4
    assert abs(float(frames[40].mean()) - 200) < 4
    with av.open(str(path)) as c:
        audio = np.concatenate([f.to_ndarray().reshape(-1) for f in c.decode(audio=0)])
        assert c.streams.audio[0].sample_rate == 16000
    # 2 s of a 440 Hz tone: the dominant frequency survives AAC.
    spec = np.abs(np.fft.rfft(audio[4000:20000]))
    peak_hz = np.argmax(spec) * 16000 / 16000
    assert abs(peak_hz - 440) < 5


def test_keyframes_at_most_every_2s() -> None:
    enc = H264Encoder.standalone(VideoOptions(width=160, height=96, keyframe_interval_s=2.0))
    key = []
    for i in range(125):
        f = _frame(i % 200 + 20)
        key += [p.is_keyframe for p in enc.encode(f, i)]
    key += [p.is_keyframe for p in enc.flush()]
    assert len(key) == 125
    idx = [i for i, k in enumerate(key) if k]
    assert idx[0] == 0
    assert max(np.diff(idx)) <= 50


def test_each_frame_is_encoded_from_its_own_content_and_forced_keyframes_hold() -> None:
    """The encoder refills one input picture: every decoded frame must show its own levels
    (Y, U and V planes), only the forced keyframes (and the first) are IDRs."""
    opts = VideoOptions(width=160, height=96, keyframe_interval_s=10.0)
    enc = H264Encoder.standalone(opts)
    dec = av.CodecContext.create("h264", "r")
    levels = [(30 + 7 * i, 100 + 3 * i, 150 - 3 * i) for i in range(20)]
    forced = {5, 13}
    decoded: list[np.ndarray] = []
    keys: list[int] = []
    for i, (y, u, v) in enumerate(levels):
        f = YuvFrame.blank(160, 96)
        f.y[:], f.u[:], f.v[:] = y, u, v
        for p in enc.encode(f, i, keyframe=i in forced):
            if p.is_keyframe:
                keys.append(i)
            decoded += [d.to_ndarray(format="yuv420p") for d in dec.decode(p)]
    for p in enc.flush():
        decoded += [d.to_ndarray(format="yuv420p") for d in dec.decode(p)]
    decoded += [d.to_ndarray(format="yuv420p") for d in dec.decode(None)]
    assert keys == [0, 5, 13]
    assert len(decoded) == len(levels)
    for got, (y, u, v) in zip(decoded, levels, strict=True):
        chroma = got[96:].reshape(-1)
        q = chroma.size // 2
        assert abs(float(got[:96].mean()) - y) < 3
        assert abs(float(chroma[:q].mean()) - u) < 3
        assert abs(float(chroma[q:].mean()) - v) < 3
