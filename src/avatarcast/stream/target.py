"""Who an output streams for: the small value an output gets instead of a session.

An output needs the session's id (stream keys, file names), the user's id (a room identity),
the `ProtocolOption` the client gave, and a way to say that its state changed (the API side
turns that into a Type 10 notice on the command channel). Nothing else of the session.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any


def _ignore(event: dict[str, Any]) -> None:
    del event


@dataclass(frozen=True)
class OutputTarget:
    session_id: str
    user_id: str = ""
    options: Mapping[str, Any] = field(default_factory=dict)  # ProtocolOption, as given
    # An output's state change: {"Output", "State", "Reconnects", "Message"}. Must not block.
    notify: Callable[[dict[str, Any]], None] = _ignore

    def report(self, output: str, state: str, reconnects: int, message: str) -> None:
        """Say that output `output` changed state; never raises (a notice must never hurt
        the stream)."""
        event = {"Output": output, "State": state, "Reconnects": reconnects, "Message": message}
        with contextlib.suppress(Exception):
            self.notify(event)

    def option(self, name: str) -> Any:
        """`ProtocolOption.<name>`, or None."""
        return self.options.get(name) if isinstance(self.options, Mapping) else None
