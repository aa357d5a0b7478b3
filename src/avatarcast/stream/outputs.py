"""Outputs a stream goes to besides its WHEP viewers, chosen by `Protocol` and settings.

Every session has a live stream that WebRTC viewers attach to. `Protocol: rtmp` adds an RTMP
push, `Protocol: trtc` a LiveKit room participant, `Protocol: janus` a publisher in a Janus
VideoRoom; a recorder can be added to every session
by a setting. Each output lives in its own module and only consumes the live stream's
encoded packets, so outputs know nothing of each other, and one that fails is detached
(and reported) without touching the session or the others.

An output module provides three functions, named in `_MODULES`:
    make_output(target, settings, source) -> Output
    play_url(target, settings) -> str         # the PlayStreamAddr for that protocol
    configured(settings) -> bool              # whether the settings name where it goes
The modules are imported on first use only: the LiveKit SDK loads a native library that a
server without trtc sessions never needs. They are part of the package, so an import error is
a bug and propagates.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from avatarcast.settings import Settings
    from avatarcast.stream.packets import MediaSource
    from avatarcast.stream.target import OutputTarget


class Output(Protocol):
    name: str

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def status(self) -> dict[str, Any]:
        """What statsession shows about this output (state, reconnects, last error)."""
        ...


_MODULES: dict[str, str] = {
    "rtmp": "avatarcast.stream.rtmp",
    "trtc": "avatarcast.stream.livekit",
    "janus": "avatarcast.stream.janus",
}


def supported(protocol: str) -> bool:
    """Whether sessions of `protocol` can stream here: WebRTC and every output module's."""
    return protocol == "webrtc" or protocol in _MODULES


def _function(protocol: str, name: str) -> Callable[..., Any]:
    fn: Callable[..., Any] = getattr(importlib.import_module(_MODULES[protocol]), name)
    return fn


def configured(protocol: str, settings: Settings) -> bool:
    """Whether `protocol` can be used without per-session options (what the demo page offers).

    WebRTC always; another protocol when its module says the settings name its destination.
    """
    if protocol == "webrtc":
        return True
    if protocol not in _MODULES:
        return False
    return bool(_function(protocol, "configured")(settings))


def play_url(protocol: str, target: OutputTarget, settings: Settings) -> str:
    """PlayStreamAddr of a non-WebRTC protocol (the WHEP URL is the manager's)."""
    url: str = _function(protocol, "play_url")(target, settings)
    return url


def make_outputs(
    protocol: str, target: OutputTarget, settings: Settings, source: MediaSource
) -> list[Output]:
    """The outputs a stream of `protocol` needs beyond WHEP viewers, not yet started."""
    outputs: list[Output] = []
    if protocol in _MODULES:
        outputs.append(_function(protocol, "make_output")(target, settings, source))
    if settings.record_sessions:  # always-on audit recording, whatever the protocol
        from avatarcast.stream.record import make_output as make_recorder

        outputs.append(make_recorder(target, settings, source))
    return outputs
