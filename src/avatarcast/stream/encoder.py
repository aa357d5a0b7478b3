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
from av.video.frame import PictureType
from numpy.typing import NDArray

from avatarcast import FRAME_RATE_HZ, SAMPLE_RATE_HZ, SAMPLES_PER_FRAME
from avatarcast.errors import EncoderError
from avatarcast.media import Pcm
from avatarcast.render.frame import YuvFrame

VIDEO_CLOCK_HZ = 90_000  # RTP/MPEG video clock
OPUS_FRAME_SAMPLES = SAMPLE_RATE_HZ // 50  # 20 ms, the usual WebRTC Opus packet
VIDEO_TIME_BASE = Fraction(1, VIDEO_CLOCK_HZ)
AUDIO_TIME_BASE = Fraction(1, SAMPLE_RATE_HZ)


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
    """One session's x264 encoder.

    The input picture is one `av.VideoFrame` allocated once and refilled every frame: x264
    copies its input before `encode` returns, and a fresh frame per call (`from_ndarray`)
    cost an 0.8 MB allocation, its page faults and a copy — ~0.24 ms of a ~1.6 ms frame.
    """

    def __init__(self, ctx: VideoCodecContext, opts: VideoOptions) -> None:
        configure_h264(ctx, opts)
        self.ctx = ctx
        self.opts = opts
        self._picture = av.VideoFrame(opts.width, opts.height, "yuv420p")
        self._picture.time_base = Fraction(1, opts.fps)
        self._planes = tuple(
            np.frombuffer(memoryview(plane), np.uint8).reshape(plane.height, plane.line_size)[
                :, : plane.width
            ]
            for plane in self._picture.planes
        )

    @classmethod
    def standalone(cls, opts: VideoOptions) -> H264Encoder:
        ctx = av.CodecContext.create("libx264", "w")
        assert isinstance(ctx, VideoCodecContext)
        return cls(ctx, opts)

    def encode(self, frame: YuvFrame, pts: int, keyframe: bool = False) -> list[av.Packet]:
        """One frame in, its packets out (x264 zerolatency: at once); `keyframe` forces an
        IDR (a closed GOP here), which restarts the keyint count."""
        if frame.width != self.opts.width or frame.height != self.opts.height:
            raise EncoderError(
                f"frame is {frame.width}x{frame.height}, encoder expects "
                f"{self.opts.width}x{self.opts.height}"
            )
        vf = self._picture
        for plane, src in zip(self._planes, (frame.y, frame.u, frame.v), strict=True):
            np.copyto(plane, src)
        vf.pts = pts
        vf.pict_type = PictureType.I if keyframe else PictureType.NONE
        try:
            return list(self.ctx.encode(vf))
        except av.error.FFmpegError as exc:
            raise EncoderError(f"H.264 encoding failed: {exc}") from exc

    def flush(self) -> list[av.Packet]:
        return list(self.ctx.encode(None))


def encode_h264(
    enc: H264Encoder, frame: YuvFrame, index: int, keyframe: bool
) -> tuple[av.Packet, ...]:
    """Frame slot `index` encoded, an IDR when asked, packets stamped with 90 kHz pts."""
    packets = enc.encode(frame, index, keyframe)
    pts = index * VIDEO_CLOCK_HZ // enc.opts.fps
    for p in packets:
        p.pts = p.dts = pts
        p.time_base = VIDEO_TIME_BASE
    return tuple(packets)


class OpusEncoder:
    """Opus (libopus) of the 16 kHz mono timeline, once per session, 20 ms packets.

    libopus takes 16 kHz input directly, so no resampling is needed; RTP still runs the
    48 kHz Opus clock (aiortc converts the pts). Packets are re-stamped with the timeline's
    pts because libopus shifts its own by the encoder's initial padding.
    """

    def __init__(self, bitrate_kbps: int = 32) -> None:
        ctx = av.CodecContext.create("libopus", "w")
        assert isinstance(ctx, AudioCodecContext)
        ctx.sample_rate = SAMPLE_RATE_HZ
        ctx.layout = "mono"
        ctx.format = "s16"
        ctx.bit_rate = bitrate_kbps * 1000
        ctx.time_base = AUDIO_TIME_BASE
        # Speech; constrained VBR keeps the rate near `bitrate_kbps`: unconstrained, libopus
        # spent ~103 kbps on espeak speech at a 64 kbps target (16 kHz mono, measured).
        ctx.options = {"application": "voip", "vbr": "constrained"}
        self.ctx = ctx

    def encode(self, pcm: Pcm, first_sample: int) -> tuple[av.Packet, ...]:
        out: list[av.Packet] = []
        for k in range(0, pcm.size, OPUS_FRAME_SAMPLES):
            chunk = pcm[k : k + OPUS_FRAME_SAMPLES]
            af = av.AudioFrame.from_ndarray(chunk.reshape(1, -1), format="s16", layout="mono")
            af.sample_rate = SAMPLE_RATE_HZ
            af.pts = first_sample + k
            af.time_base = AUDIO_TIME_BASE
            try:
                packets = self.ctx.encode(af)
            except av.error.FFmpegError as exc:
                raise EncoderError(f"Opus encoding failed: {exc}") from exc
            for p in packets:  # libopus gives exactly one packet per 20 ms frame
                p.pts = p.dts = first_sample + k
                p.time_base = AUDIO_TIME_BASE
                out.append(p)
        return tuple(out)


class AacEncoder:
    """AAC-LC, mono; 16 kHz timeline PCM in (any number of samples), 1024-sample packets out
    at `rate_hz` (resampled first when it is not the timeline rate)."""

    def __init__(
        self,
        ctx: AudioCodecContext,
        bitrate_kbps: int = 64,
        rate_hz: int = SAMPLE_RATE_HZ,
        *,
        coder: str = "twoloop",
    ) -> None:
        """`coder`: FFmpeg's AAC quantizer search; "fast" costs ~4x less CPU than the default
        "twoloop" (3 vs 12 ms a second of 48 kHz audio, measured), for live outputs."""
        ctx.sample_rate = rate_hz
        ctx.layout = "mono"
        ctx.format = "fltp"
        ctx.bit_rate = bitrate_kbps * 1000
        ctx.time_base = Fraction(1, rate_hz)
        ctx.options = {**ctx.options, "aac_coder": coder}
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
