"""Plain media types every layer may use: PCM, the timeline's speech events, frame metadata.

They sit below `engine`, `stream`, `sessions` and `api`, so a stage (an encoder, an output)
and the API side (the drive channel) can speak of a frame's speech events without importing
the engine, and `FrameInfo` can cross a process boundary (it is small and picklable).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

Pcm = NDArray[np.int16]  # mono, 16 kHz (SAMPLE_RATE_HZ)


class SpeechEvent(StrEnum):
    START = "start"  # this frame is the first one of an utterance
    END = "end"  # this frame is the last one of an utterance
    INTERRUPTED = "interrupted"  # the utterance was cut short before this frame


class FrameMeta(Protocol):
    """What a frame says about speech: its index, the utterance it plays, its events.

    The engine's `EngineFrame` and the seam's `FrameInfo` both have these fields.
    """

    @property
    def index(self) -> int: ...

    @property
    def utterance_id(self) -> str | None: ...

    @property
    def events(self) -> list[tuple[SpeechEvent, str]]: ...


@dataclass(frozen=True, slots=True)
class FrameInfo:
    """A frame that is on the stream, as the API side sees it (no pixels, no samples)."""

    index: int
    utterance_id: str | None = None
    events: list[tuple[SpeechEvent, str]] = field(default_factory=list)
