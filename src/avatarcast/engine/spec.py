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
