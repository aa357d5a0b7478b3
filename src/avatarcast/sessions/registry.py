"""What the API layer asks of the sessions of a server: `SessionRegistry`.

Two implementations: `SessionManager` (one API process; media in local worker processes or
in-process) and `avatarcast.cluster.manager.ClusterManager` (sessions shared by every API
process of a Ray cluster through the store).
"""

from __future__ import annotations

from typing import Any, Protocol

from avatarcast.sessions.session import NewSession, Session


class SessionRegistry(Protocol):
    async def create(self, appkey: str, request: NewSession) -> Session:
        """Register a new session (status 3); its media come up in the background."""
        ...

    def get(self, session_id: str, appkey: str) -> Session:
        """The caller's session (SessionNotFound for another key's)."""
        ...

    async def stat(self, session_id: str, appkey: str) -> Session:
        """`get`, with the media's state as fresh as it can be (statsession)."""
        ...

    def find(self, session_id: str) -> Session | None:
        """Any key's session (routes that authenticate otherwise: WHEP)."""
        ...

    def list(
        self, appkey: str, project_id: str | None = None, asset_key: str | None = None
    ) -> list[Session]: ...

    def start(self, session_id: str, appkey: str) -> Session: ...

    async def close(self, session_id: str, appkey: str) -> None: ...

    def open_count(self) -> int: ...

    def media_status(self) -> dict[str, Any]:
        """Workers, sessions, capacity (`GET /v2/status`)."""
        ...

    async def close_all(self) -> None:
        """The server stops."""

    async def run(self) -> None:
        """The background loop (idle close, usage, workers), until cancelled."""
