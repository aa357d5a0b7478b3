"""What a session's frame loop publishes and its outputs consume: encoded packets per slot.

Timestamps: the stream's timeline is the slot number n. Video pts = n * 3600 (90 kHz) and the
frame's 40 ms of audio starts at pts n * 640 (16 kHz), so both media carry the same clock.

`MediaSource` is what an output subscribes to (a live stream, whoever runs it): two fan-outs of
these packets, flush and raw-frame listeners, and a way to ask for a keyframe. Outputs know
this protocol and nothing of the engine, the session or the API.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import av

from avatarcast.media import Pcm
from avatarcast.render.frame import YuvFrame
from avatarcast.stream.encoder import VIDEO_CLOCK_HZ, VIDEO_TIME_BASE, VideoOptions
from avatarcast.stream.fanout import FanOut

__all__ = [
    "VIDEO_CLOCK_HZ",
    "VIDEO_TIME_BASE",
    "AudioChunk",
    "MediaSource",
    "RawFrame",
    "VideoPacket",
]


@dataclass(frozen=True, slots=True)
class VideoPacket:
    """The encoded picture of frame slot `index` (Annex B H.264, SPS/PPS on keyframes)."""

    index: int
    packets: tuple[av.Packet, ...]  # pts in 1/90000; shared by every viewer, never mutated
    keyframe: bool


@dataclass(frozen=True, slots=True)
class AudioChunk:
    """The 40 ms of audio that belongs to frame slot `index`, raw and Opus-encoded."""

    index: int
    pcm: Pcm  # SAMPLES_PER_FRAME int16 samples at 16 kHz
    # Two 20 ms packets, pts in 1/16000; empty while no output wants Opus (`want_opus`).
    opus: tuple[av.Packet, ...]


class RawFrame(Protocol):
    """A frame before encoding, for outputs that encode themselves (LiveKit's SDK)."""

    @property
    def index(self) -> int: ...

    @property
    def video(self) -> YuvFrame: ...

    @property
    def audio(self) -> Pcm: ...


class MediaSource(Protocol):
    """A running stream's encoded media, as outputs see it."""

    options: VideoOptions
    video: FanOut[VideoPacket]
    audio: FanOut[AudioChunk]
    frame_listeners: list[Callable[[RawFrame], None]]
    flush_listeners: list[Callable[[], None]]
    name: str

    @property
    def closed(self) -> bool: ...

    async def wait_closed(self) -> None: ...

    def request_keyframe(self) -> None: ...

    def want_opus(self) -> Callable[[], None]:
        """Ask for `AudioChunk.opus` (made only while asked); call the result to stop."""
        ...
