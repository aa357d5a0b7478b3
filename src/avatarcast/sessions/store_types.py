"""The records a store holds and returns: keys, projects, usage and shared session rows.

Plain frozen dataclasses, shared by every store backend (`store_sqlite`, `store_pg`) and by
their callers; `avatarcast.sessions.store` re-exports them with the `Store` interface.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class KeyInfo:
    """A key as listed: everything but the secret."""

    appkey: str
    name: str
    max_sessions: int
    revoked: bool
    created_unix: float

    def to_json(self) -> dict[str, Any]:
        return {
            "appkey": self.appkey,
            "name": self.name,
            "max_sessions": self.max_sessions,
            "revoked": self.revoked,
            "created_unix": self.created_unix,
        }


@dataclass(frozen=True)
class Project:
    """`VirtualmanProjectId` → an avatar and defaults (ours: the cloud documents nothing)."""

    project_id: str
    name: str
    asset_key: str
    appkey: str | None = None
    defaults: dict[str, Any] = field(default_factory=dict)
    created_unix: float = 0.0

    @property
    def voice(self) -> str | None:
        v = self.defaults.get("voice")
        return v if isinstance(v, str) else None

    def to_json(self) -> dict[str, Any]:
        return {
            "project_id": self.project_id,
            "name": self.name,
            "avatar": self.asset_key,
            "appkey": self.appkey,
            "defaults": self.defaults,
            "created_unix": self.created_unix,
        }


@dataclass(frozen=True)
class SessionUsage:
    appkey: str
    session_id: str
    user_id: str
    started_unix: float
    seconds: float


@dataclass(frozen=True)
class UsageReport:
    """Seconds streamed per key (totals) and per session, within the asked window."""

    keys: dict[str, float]
    sessions: list[SessionUsage]


# IVH SessionStatus values of a session row (the same numbers as `session.SessionStatus`).
STATUS_READY = 1
STATUS_CLOSED = 2
STATUS_PREPARING = 3
STATUS_FAILED = 4
OPEN_STATUSES = (STATUS_READY, STATUS_PREPARING)


@dataclass(frozen=True)
class SessionRecord:
    """One session as the API processes of a cluster share it (the `sessions` table).

    Times are Unix seconds. `metered_unix` is how far its usage is booked (0 until ready),
    `ended_unix` when it closed (0 while open); `worker`/`node` say which media worker holds
    its media ("" until placed). `extra` is stored as JSON text.
    """

    session_id: str
    appkey: str
    user_id: str
    asset_key: str
    protocol: str
    driver_type: int
    project_id: str | None = None
    status: int = STATUS_PREPARING  # 3 preparing, 1 ready, 2 closed, 4 failed
    started: bool = False
    created_unix: float = 0.0
    last_activity_unix: float = 0.0
    error_code: int = 0
    error_message: str = ""
    alpha: bool = False
    stream_max_interval_ms: int = 2000
    voice: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    play_url: str = ""
    play_token: str = ""
    worker: str = ""
    node: str = ""
    metered_unix: float = 0.0
    ended_unix: float = 0.0

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES
