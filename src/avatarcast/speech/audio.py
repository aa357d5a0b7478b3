"""Audio ingest: any file FFmpeg reads → mono signed 16-bit PCM at the timeline rate."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
from numpy.typing import NDArray

from avatarcast import SAMPLE_RATE_HZ
from avatarcast.errors import AudioInputError

Pcm = NDArray[np.int16]


def load_audio(path: str | Path, rate_hz: int = SAMPLE_RATE_HZ) -> Pcm:
    """Decode the first audio stream of `path`, downmix to mono, resample to `rate_hz`.

    Raises AudioInputError (naming the file) when it is missing, unreadable, has no audio
    stream or decodes to no samples.
    """
    p = Path(path)
    if not p.is_file():
        raise AudioInputError(f"audio file not found: {p}")
    try:
        container = av.open(str(p))
    except (av.error.FFmpegError, OSError) as exc:
        raise AudioInputError(f"cannot read audio file {p}: {exc}") from exc
    chunks: list[Pcm] = []
    try:
        if not container.streams.audio:
            raise AudioInputError(f"no audio stream in {p}")
        resampler = av.AudioResampler(format="s16", layout="mono", rate=rate_hz)
        try:
            for frame in container.decode(audio=0):
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray().reshape(-1).astype(np.int16, copy=True))
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().reshape(-1).astype(np.int16, copy=True))
        except av.error.FFmpegError as exc:
            raise AudioInputError(f"cannot decode audio in {p}: {exc}") from exc
    finally:
        container.close()
    pcm = np.concatenate(chunks) if chunks else np.zeros(0, np.int16)
    if pcm.size == 0:
        raise AudioInputError(f"audio file has no samples: {p}")
    return pcm


def resample(pcm: Pcm, src_rate_hz: int, dst_rate_hz: int = SAMPLE_RATE_HZ) -> Pcm:
    """Resample mono int16 PCM with FFmpeg's resampler (band-limited, not linear)."""
    if src_rate_hz == dst_rate_hz or pcm.size == 0:
        return pcm.astype(np.int16, copy=True)
    frame = av.AudioFrame.from_ndarray(
        np.ascontiguousarray(pcm, np.int16).reshape(1, -1), format="s16", layout="mono"
    )
    frame.sample_rate = src_rate_hz
    resampler = av.AudioResampler(format="s16", layout="mono", rate=dst_rate_hz)
    out = [f.to_ndarray().reshape(-1) for f in resampler.resample(frame)]
    out += [f.to_ndarray().reshape(-1) for f in resampler.resample(None)]
    return np.concatenate(out).astype(np.int16) if out else np.zeros(0, np.int16)


def save_wav(path: str | Path, pcm: Pcm, rate_hz: int = SAMPLE_RATE_HZ) -> None:
    """Write mono int16 PCM as a WAV file (tests, evaluation sets, debugging)."""
    import wave

    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate_hz)
        w.writeframes(np.ascontiguousarray(pcm, np.int16).tobytes())
