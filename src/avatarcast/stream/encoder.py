"""Encoders: H.264 (libx264) for video, AAC for audio, configured in one place.

A session encodes once and fans the packets out; the MP4 writer uses the same configuration
through the codec context of its own streams (MP4 needs the codec's global header).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import av
import numpy as np
from av.audio.codeccontext import AudioCodecContext
from av.video.codeccontext import VideoCodecContext
from numpy.typing import NDArray

from avatarcast import FRAME_RATE_HZ, SAMPLE_RATE_HZ, SAMPLES_PER_FRAME
from avatarcast.errors import EncoderError
from avatarcast.render.frame import YuvFrame


@dataclass(frozen=True)
class VideoOptions:
    width: int = 540
    height: int = 960
    fps: int = FRAME_RATE_HZ
    preset: str = "ultrafast"
    bitrate_kbps: int = 1500
    keyframe_interval_s: float = 2.0
    threads: int = 1  # one core per session: sessions scale across cores, not frames


def configure_h264(ctx: VideoCodecContext, opts: VideoOptions) -> None:
    """libx264 for live use: ultrafast, zerolatency (no B-frames, no lookahead), bounded GOP."""
    ctx.width = opts.width
    ctx.height = opts.height
    ctx.pix_fmt = "yuv420p"
    ctx.time_base = Fraction(1, opts.fps)
    ctx.framerate = Fraction(opts.fps, 1)
    ctx.bit_rate = opts.bitrate_kbps * 1000
    gop = max(1, round(opts.keyframe_interval_s * opts.fps))
    ctx.gop_size = gop
    ctx.thread_count = opts.threads
    ctx.options = {
        "preset": opts.preset,
        "tune": "zerolatency",
        # Repeat SPS/PPS on every keyframe so a viewer joining mid-stream can start decoding.
        "x264-params": f"keyint={gop}:min-keyint={gop}:scenecut=0:repeat-headers=1",
    }


class H264Encoder:
    def __init__(self, ctx: VideoCodecContext, opts: VideoOptions) -> None:
        configure_h264(ctx, opts)
        self.ctx = ctx
        self.opts = opts

    @classmethod
    def standalone(cls, opts: VideoOptions) -> H264Encoder:
        ctx = av.CodecContext.create("libx264", "w")
        assert isinstance(ctx, VideoCodecContext)
        return cls(ctx, opts)

    def encode(self, frame: YuvFrame, pts: int) -> list[av.Packet]:
        if frame.width != self.opts.width or frame.height != self.opts.height:
            raise EncoderError(
                f"frame is {frame.width}x{frame.height}, encoder expects "
                f"{self.opts.width}x{self.opts.height}"
            )
        vf = av.VideoFrame.from_ndarray(frame.data, format="yuv420p")
        vf.pts = pts
        vf.time_base = Fraction(1, self.opts.fps)
        try:
            return list(self.ctx.encode(vf))
        except av.error.FFmpegError as exc:
            raise EncoderError(f"H.264 encoding failed: {exc}") from exc

    def flush(self) -> list[av.Packet]:
        return list(self.ctx.encode(None))


class AacEncoder:
    """AAC-LC, mono; 16 kHz timeline PCM in (any number of samples), 1024-sample packets out
    at `rate_hz` (resampled first when it is not the timeline rate)."""

    def __init__(
        self, ctx: AudioCodecContext, bitrate_kbps: int = 64, rate_hz: int = SAMPLE_RATE_HZ
    ) -> None:
        ctx.sample_rate = rate_hz
        ctx.layout = "mono"
        ctx.format = "fltp"
        ctx.bit_rate = bitrate_kbps * 1000
        ctx.time_base = Fraction(1, rate_hz)
        self.ctx = ctx
        self.rate_hz = rate_hz
        self._resampler = (
            None
            if rate_hz == SAMPLE_RATE_HZ
            else av.AudioResampler(format="fltp", layout="mono", rate=rate_hz)
        )
        self._next_pts = 0

    def encode(self, pcm: NDArray[np.int16]) -> list[av.Packet]:
        if pcm.size == 0:
            return []
        data = (pcm.astype(np.float32) / 32768.0).reshape(1, -1)
        af = av.AudioFrame.from_ndarray(data, format="fltp", layout="mono")
        af.sample_rate = SAMPLE_RATE_HZ
        frames = [af] if self._resampler is None else self._resampler.resample(af)
        return self._encode(frames)

    def flush(self) -> list[av.Packet]:
        tail = [] if self._resampler is None else self._resampler.resample(None)
        return self._encode(tail) + list(self.ctx.encode(None))

    def _encode(self, frames: list[av.AudioFrame]) -> list[av.Packet]:
        out: list[av.Packet] = []
        try:
            for f in frames:
                f.pts = self._next_pts
                f.time_base = Fraction(1, self.rate_hz)
                self._next_pts += f.samples
                out += self.ctx.encode(f)
        except av.error.FFmpegError as exc:
            raise EncoderError(f"AAC encoding failed: {exc}") from exc
        return out


def silence(n_samples: int = SAMPLES_PER_FRAME) -> NDArray[np.int16]:
    return np.zeros(n_samples, np.int16)
