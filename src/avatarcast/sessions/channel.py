"""What the API side holds of a session's command channel: `CommandChannel`.

In one process (and with local media workers) it is the session's `DriveChannel` itself; on a
cluster the drive channel lives with the media on a node and the API process holds a proxy
(`avatarcast.cluster.remote.RemoteDrive`). The transports (WebSocket, HTTP command) and the
manager use only this.
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

from avatarcast.media import FrameMeta
from avatarcast.sessions.drive_outbox import Sender


class CommandChannel(Protocol):
    @property
    def speak_status(self) -> str:
        """`SpeakStatus` for statsession."""
        ...

    @property
    def busy(self) -> bool:
        """Something is speaking or waits to be spoken."""
        ...

    @property
    def closed(self) -> bool: ...

    def attach(self, send: Sender) -> asyncio.Event:
        """Make `send` the one socket; the event is set when it is replaced or closed."""
        ...

    def detach(self, send: Sender) -> None: ...

    async def handle_raw(self, text: str) -> None:
        """One frame from the socket; bad input becomes a Type 9, never a raise."""

    async def handle_command(self, payload: dict[str, Any]) -> dict[str, Any]:
        """The HTTP command; raises the coded error."""
        ...

    def on_frame(self, frame: FrameMeta) -> None: ...

    def output_notice(self, event: dict[str, Any]) -> None: ...

    def media_failed(self, code: int, reason: str) -> None: ...

    async def flush(self) -> None: ...

    async def close(self) -> None: ...
