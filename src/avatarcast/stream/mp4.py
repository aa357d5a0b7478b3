"""MP4 file output: H.264 + AAC, both starting at t = 0 on the session timeline."""

from __future__ import annotations

import contextlib
from pathlib import Path
from types import TracebackType

import av
import numpy as np
from av.audio.codeccontext import AudioCodecContext
from av.video.codeccontext import VideoCodecContext
from numpy.typing import NDArray

from avatarcast import SAMPLE_RATE_HZ
from avatarcast.errors import EncoderError
from avatarcast.render.frame import YuvFrame
from avatarcast.stream.encoder import AacEncoder, H264Encoder, VideoOptions


class Mp4Writer:
    def __init__(
        self,
        path: str | Path,
        video: VideoOptions,
        audio: bool = True,
        audio_bitrate_kbps: int = 64,
    ) -> None:
        self.path = Path(path)
        try:
            self._container = av.open(str(self.path), "w", format="mp4")
        except (av.error.FFmpegError, OSError) as exc:
            raise EncoderError(f"cannot write {self.path}: {exc}") from exc
        vstream = self._container.add_stream("libx264", rate=video.fps)
        assert isinstance(vstream.codec_context, VideoCodecContext)
        self._video = H264Encoder(vstream.codec_context, video)
        self._vstream = vstream
        self._audio: AacEncoder | None = None
        if audio:
            astream = self._container.add_stream("aac", rate=SAMPLE_RATE_HZ)
            assert isinstance(astream.codec_context, AudioCodecContext)
            self._audio = AacEncoder(astream.codec_context, audio_bitrate_kbps)
            self._astream = astream
        self._frames = 0

    def write_video(self, frame: YuvFrame) -> None:
        for packet in self._video.encode(frame, self._frames):
            packet.stream = self._vstream
            self._container.mux(packet)
        self._frames += 1

    def write_audio(self, pcm: NDArray[np.int16]) -> None:
        if self._audio is None:
            return
        for packet in self._audio.encode(pcm):
            packet.stream = self._astream
            self._container.mux(packet)

    def close(self) -> None:
        try:
            for packet in self._video.flush():
                packet.stream = self._vstream
                self._container.mux(packet)
            if self._audio is not None:
                for packet in self._audio.flush():
                    packet.stream = self._astream
                    self._container.mux(packet)
        finally:
            self._container.close()

    def __enter__(self) -> Mp4Writer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            with contextlib.suppress(av.error.FFmpegError):
                self._container.close()
