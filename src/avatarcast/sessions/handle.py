"""The API side's handle on a session's media: speech and commands in, events out.

`HostHandle` is the whole seam between the API side (manager, drive channel, WHEP route)
and a session's media (`avatarcast.engine.host.SessionHost`): a few async calls, each
carrying plain values, so the media can live in this process (`LocalHost`) or in a worker
process. Events come back through the callback the host was made with (`FrameInfo`,
`OutputNotice`).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Protocol

from avatarcast.engine.host import EngineControls, SessionHost, say_text_queued
from avatarcast.errors import SessionClosed
from avatarcast.media import Pcm

log = logging.getLogger(__name__)


class HostHandle(Protocol):
    """A session's media, as the API side drives it."""

    @property
    def language(self) -> str: ...

    async def push_audio(
        self, pcm: Pcm, utterance_id: str, text: str | None, sei: str | None
    ) -> None:
        """Streamed audio of an utterance (AudioInputError when the engine's queue is full)."""

    async def end_audio(self) -> None:
        """The streamed utterance is complete."""

    async def say_text(
        self, text: str, voice: str | None, utterance_id: str, sei: str | None
    ) -> None:
        """Speak `text`; returns once its first sentence is queued (raises if that failed).

        Later sentences are made while the first plays; a failure among them is logged and
        ends the utterance where it is.
        """

    async def interrupt(self) -> int:
        """Cut all speech; returns the index of the first frame made after the cut."""

    def status(self) -> dict[str, Any]:
        """Outputs, frames sent, late frames, viewers (for statsession and /v2/status)."""
        ...

    async def whep_answer(self, offer_sdp: str) -> tuple[str, str]:
        """A WebRTC viewer's offer → (answer SDP, resource id)."""
        ...

    async def whep_close(self, resource_id: str) -> bool:
        """A viewer leaves; False if there is no such viewer."""
        ...

    @property
    def error(self) -> BaseException | None: ...

    async def wait_closed(self) -> None:
        """Returns when the media stopped (stop() or a failure: see `error`)."""

    async def stop(self) -> None:
        """Stop the media; never raises."""


class LocalHost:
    """A handle on media in this process: the commands run in a thread (TTS may take a while).

    Made with the drive commands of an engine (`EngineControls`) and, for a live session, the
    `SessionHost` that owns them; without a host (tests that turn frames by hand) the
    stream-related calls say there is no stream.
    """

    def __init__(self, controls: EngineControls, host: SessionHost | None = None) -> None:
        self.controls = controls
        self.host = host

    @classmethod
    def of(cls, host: SessionHost) -> LocalHost:
        assert host.controls is not None, "the host is not started"
        return cls(host.controls, host)

    @property
    def language(self) -> str:
        return self.controls.language

    async def push_audio(
        self, pcm: Pcm, utterance_id: str, text: str | None, sei: str | None
    ) -> None:
        await asyncio.to_thread(self.controls.push_audio, pcm, utterance_id, text, sei)

    async def end_audio(self) -> None:
        await asyncio.to_thread(self.controls.end_audio)

    async def say_text(
        self, text: str, voice: str | None, utterance_id: str, sei: str | None
    ) -> None:
        await say_text_queued(self.controls, text, voice, utterance_id, sei)

    async def interrupt(self) -> int:
        return self.controls.interrupt()  # cheap: drops queues, no synthesis

    def status(self) -> dict[str, Any]:
        if self.host is None:
            return {"Outputs": [], "FramesSent": 0, "LateFrames": 0, "Viewers": 0}
        return self.host.status()

    async def whep_answer(self, offer_sdp: str) -> tuple[str, str]:
        if self.host is None:
            raise SessionClosed("this session has no live stream")
        return await self.host.whep_answer(offer_sdp)

    async def whep_close(self, resource_id: str) -> bool:
        return self.host is not None and await self.host.whep_close(resource_id)

    @property
    def error(self) -> BaseException | None:
        return self.host.error if self.host is not None else None

    async def wait_closed(self) -> None:
        if self.host is None:  # no stream: nothing can end it but stop()
            await asyncio.Event().wait()
        else:
            await self.host.wait_closed()

    async def stop(self) -> None:
        if self.host is not None:
            await self.host.stop()
        else:
            self.controls.engine.interrupt()
