"""One streaming session: its identity, state machine and the parts that serve it.

States (IVH `SessionStatus`): 3 preparing → 1 ready → 2 closed, or 3 → 4 failed.
`started` (IVH `IsSessionStarted`) turns true at `startsession` and stays true.
The media (`host`, a handle on the session's `SessionHost`) and the drive channel are
attached by the manager; this module knows nothing of HTTP.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from enum import IntEnum
from typing import TYPE_CHECKING, Any

from avatarcast.engine.spec import HostSpec
from avatarcast.stream.target import OutputTarget

if TYPE_CHECKING:
    from avatarcast.sessions.channel import CommandChannel
    from avatarcast.sessions.handle import HostHandle


class SessionStatus(IntEnum):
    READY = 1
    CLOSED = 2
    PREPARING = 3
    FAILED = 4


PROTOCOLS = ("webrtc", "rtmp", "trtc", "janus")
DRIVER_TYPES = (1, 3)  # 1 text, 3 audio + text


def new_session_id() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True)
class NewSession:
    """What a createsession asks for; `check_new_session` checks it and fills in the avatar,
    voice and StreamMaxInterval of a project or of the defaults."""

    user_id: str
    protocol: str
    driver_type: int
    asset_key: str | None = None
    project_id: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # ProtocolOption, ExtraInfo, ... as given
    stream_max_interval_ms: int | None = None
    voice: str | None = None
    alpha: bool = False

    def session(self, appkey: str, now: float) -> Session:
        """The new session (status 3) of this checked request, created at `now`."""
        assert self.asset_key is not None and self.stream_max_interval_ms is not None
        return Session(
            id=new_session_id(),
            appkey=appkey,
            user_id=self.user_id,
            asset_key=self.asset_key,
            protocol=self.protocol,
            driver_type=self.driver_type,
            project_id=self.project_id,
            created_at=now,
            last_activity=now,
            alpha=self.alpha,
            stream_max_interval_ms=self.stream_max_interval_ms,
            voice=self.voice,
            extra=dict(self.extra),
        )


@dataclass
class Session:
    id: str
    appkey: str
    user_id: str
    asset_key: str
    protocol: str
    driver_type: int
    project_id: str | None = None
    status: SessionStatus = SessionStatus.PREPARING
    started: bool = False
    created_at: float = 0.0  # clock time
    last_activity: float = 0.0  # clock time of the last drive command or heartbeat
    error_code: int = 0
    error_message: str = ""
    alpha: bool = False
    stream_max_interval_ms: int = 2000
    voice: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # ProtocolOption, ExtraInfo, ... as given
    play_url: str = ""  # PlayStreamAddr
    play_token: str = field(default_factory=lambda: uuid.uuid4().hex)  # in the WHEP URL
    host: HostHandle | None = None  # the media: engine, live stream, outputs, viewers
    drive: CommandChannel | None = None  # DriveChannel, or a proxy on a cluster

    @property
    def is_open(self) -> bool:
        return self.status in (SessionStatus.PREPARING, SessionStatus.READY)

    def host_spec(self) -> HostSpec:
        """What the session's media host needs to know (plain values)."""
        option = self.extra.get("ProtocolOption")
        return HostSpec(
            session_id=self.id,
            asset_key=self.asset_key,
            protocol=self.protocol,
            user_id=self.user_id,
            alpha=self.alpha,
            voice=self.voice,
            protocol_option=dict(option) if isinstance(option, dict) else {},
        )

    def output_target(self) -> OutputTarget:
        """Who the session's outputs stream for (play URLs are made from it)."""
        return self.host_spec().target()

    def media_status(self) -> dict[str, Any]:
        """Outputs, frames sent, late frames, viewers: the media's own account."""
        if self.host is None:
            return {"Outputs": [], "FramesSent": 0, "LateFrames": 0, "Viewers": 0}
        return self.host.status()

    @property
    def speak_status(self) -> str:
        """`SpeakStatus` for statsession: what the drive channel last reported, or idle."""
        if self.drive is not None:
            return self.drive.speak_status
        return "Idle"

    def summary(self) -> dict[str, Any]:
        """The `Sessions[]` item of the list endpoints."""
        return {
            "UserId": self.user_id,
            "SessionId": self.id,
            "SessionStatus": int(self.status),
            "PlayStreamAddr": self.play_url,
            "DriverType": self.driver_type,
            "IsSessionStarted": self.started,
        }
