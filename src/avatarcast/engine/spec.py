"""The seam's plain values: what a session host is told, and what it says back.

Small, frozen and picklable, so they can cross a process boundary unchanged: `HostSpec` (the
session as its media needs it), `FrameInfo` (a frame on the stream, from `avatarcast.media`)
and `OutputNotice` (an output's state changed).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from avatarcast.media import FrameInfo
from avatarcast.stream.target import OutputTarget


@dataclass(frozen=True)
class HostSpec:
    """What a session host needs to know about its session (plain values, picklable)."""

    session_id: str
    asset_key: str
    protocol: str = "webrtc"
    user_id: str = ""
    alpha: bool = False
    voice: str | None = None  # the session's default voice; None: the settings' voice
    protocol_option: dict[str, Any] = field(default_factory=dict)

    @property
    def seed(self) -> int:
        """A stable seed per session, so two sessions of one avatar do not blink in step."""
        return session_seed(self.session_id)

    def target(self, notify: Callable[[dict[str, Any]], None] | None = None) -> OutputTarget:
        if notify is None:
            return OutputTarget(self.session_id, self.user_id, self.protocol_option)
        return OutputTarget(self.session_id, self.user_id, self.protocol_option, notify)


@dataclass(frozen=True)
class OutputNotice:
    """An output's state changed: {"Output", "State", "Reconnects", "Message"}."""

    event: dict[str, Any]


HostEvent = FrameInfo | OutputNotice


def session_seed(session_id: str) -> int:
    return zlib.crc32(session_id.encode("utf-8"))


# ---- messages between the API process and a media worker ----------------------------------
@dataclass(frozen=True)
class Call:
    """API → worker: run `op` on session `session_id`'s host (or the worker, when empty).

    Ops: open(spec), push_audio(pcm, uid, text, sei), end_audio(), say_text(text, voice, uid,
    sei), interrupt(), whep_answer(sdp), whep_close(resource_id), close(), shutdown().
    """

    call_id: int
    session_id: str
    op: str
    args: tuple[Any, ...] = ()


@dataclass(frozen=True)
class Reply:
    """Worker → API: the answer to call `call_id`: a value, or the error it raised."""

    call_id: int
    value: Any = None
    error: BaseException | None = None


@dataclass(frozen=True)
class SessionEvent:
    """Worker → API: an event of one session's host (`FrameInfo`, `OutputNotice`)."""

    session_id: str
    event: HostEvent


@dataclass(frozen=True)
class HostEnded:
    """Worker → API: a session's media died (its live stream failed); `error` says why."""

    session_id: str
    error: BaseException


@dataclass(frozen=True)
class WorkerReport:
    """Worker → API, every second: its process's CPU time, memory and sessions' status."""

    pid: int
    cpu_s: float  # user + system CPU seconds of the whole process so far
    rss_bytes: int
    sessions: dict[str, dict[str, Any]]  # session id → SessionHost.status()
