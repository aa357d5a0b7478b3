import subprocess
from pathlib import Path

import numpy as np
import pytest

from avatarcast.errors import AudioInputError
from avatarcast.speech.audio import load_audio, resample, save_wav


def test_load_any_rate_and_channels(tmp_path: Path) -> None:
    # A stereo 44.1 kHz MP3 of a 1 s 300 Hz tone, made by FFmpeg.
    src = tmp_path / "tone.mp3"
    subprocess.run(
        [
            "ffmpeg",
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=300:duration=1:sample_rate=44100",
            "-ac",
            "2",
            str(src),
        ],
        check=True,
    )
    pcm = load_audio(src)
    assert pcm.dtype == np.int16
    assert abs(pcm.size - 16000) < 1200  # mp3 padding
    spec = np.abs(np.fft.rfft(pcm[2000:14000].astype(float)))
    assert abs(np.argmax(spec) * 16000 / 12000 - 300) < 3


def test_resample_keeps_duration() -> None:
    x = (np.sin(np.arange(22050) * 2 * np.pi * 200 / 22050) * 9000).astype(np.int16)
    y = resample(x, 22050)
    assert abs(y.size - 16000) <= 32


@pytest.mark.parametrize("content", [None, b"not audio at all", b""])
def test_bad_files(tmp_path: Path, content: bytes | None) -> None:
    p = tmp_path / "bad.wav"
    if content is not None:
        p.write_bytes(content)
    with pytest.raises(AudioInputError):
        load_audio(p)


def test_empty_wav(tmp_path: Path) -> None:
    p = tmp_path / "empty.wav"
    save_wav(p, np.zeros(0, np.int16))
    with pytest.raises(AudioInputError, match="no samples"):
        load_audio(p)
