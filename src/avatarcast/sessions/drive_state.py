"""What the drive channel remembers about one drive request (one utterance or text stream)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from enum import Enum

from avatarcast.media import Pcm


class Kind(Enum):
    AUDIO = ("Audio", "SEND_AUDIO")
    TEXT = ("Text", "SEND_TEXT")
    STREAM = ("Text", "SEND_STREAMTEXT")

    @property
    def prefix(self) -> str:
        """The status family: AudioStart/AudioOver or TextStart/TextOver."""
        return self.value[0]

    @property
    def command(self) -> str:
        return self.value[1]


@dataclass(eq=False)
class Utterance:
    req_id: str
    kind: Kind
    rank: int = 0  # arrival order of requests (replay keeps the last 3)
    last_seq: int = 0  # Seq of the last accepted message
    final_type: int = 0  # 0 while input may still come, else the FinalType it ended with
    cut: bool = False  # interrupted
    over: bool = False  # {X}Over was sent
    feeding: bool = False  # in the channel's input queue (its input still goes to the engine)
    # audio
    pending: list[Pcm] = field(default_factory=list)  # accepted, not yet in the engine
    accepted_samples: int = 0
    played_samples: int = 0  # counted from frames on the stream
    sei: str | None = None  # VideoSeiInfo, for the SEI writer
    text: str | None = None  # ours: Data.Text of SEND_AUDIO, the words the audio speaks
    # streamed text
    voice: str | None = None  # ours: Data.Voice at Seq 1
    text_rest: str = ""  # text after the last complete sentence
    sentences: list[str] = field(default_factory=list)  # complete, not yet in the engine
    n_spoken: int = 0  # sentences handed to the engine
    n_over: int = 0  # sentences whose last frame was shown
    # statuses
    sent: set[str] = field(default_factory=set)
    out_seq: int = 0  # Seq of the statuses of this request: 1, 2, 3...
    deadline: float = 0.0  # clock time at which StreamMaxInterval ends the input
    timer: asyncio.Task[None] | None = None

    @property
    def final(self) -> bool:
        """No more input will be taken (client final, timeout or interrupt)."""
        return self.final_type != 0

    def prefix_sent(self, what: str) -> bool:
        return self.kind.prefix + what in self.sent
