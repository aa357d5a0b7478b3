"""A drive channel on a real engine, with a frame loop the test turns by hand.

No live stream: the channel drives the engine through the in-process handle (`LocalHost`
over the engine's `EngineControls`), and the test calls `engine.next_frame()` then
`channel.on_frame(frame)`, which is exactly what the session host does after each frame is
published. The clock is a
`ManualClock(auto_advance=False)`: its sleepers wake only when the test advances it (the default
`sleep_until` jumps time forward, which suits offline rendering but would fire every timer at
once).
"""

from __future__ import annotations

import asyncio
import base64
import functools
import json
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import replace
from typing import Any

import numpy as np

from avatarcast.avatars.registry import load_avatar
from avatarcast.engine.host import EngineControls
from avatarcast.engine.timeline import Engine, EngineFrame
from avatarcast.sessions.drive import DriveChannel
from avatarcast.sessions.handle import LocalHost
from avatarcast.sessions.session import Session, SessionStatus
from avatarcast.settings import Settings
from avatarcast.speech.tts import get_backend
from avatarcast.stream.clock import ManualClock

SID = "5e55104d" * 4
REQ = [f"{i:032x}" for i in range(1, 40)]  # valid ReqIds: 32 lowercase hex


def arun(fn: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    """Run an async test body on a fresh event loop (no pytest plugin needed)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        asyncio.run(asyncio.wait_for(fn(*args, **kwargs), 30))

    return wrapper


def pcm_b64(pcm: np.ndarray) -> str:
    return base64.b64encode(pcm.astype("<i2").tobytes()).decode("ascii")


def msg(req_id: str, command: str, data: Any, sid: str = SID) -> dict[str, Any]:
    return {
        "Header": {},
        "Payload": {"ReqId": req_id, "SessionId": sid, "Command": command, "Data": data},
    }


def audio(req_id: str, seq: int, pcm: np.ndarray | None, final: bool = False, **kw: Any) -> dict:
    data = {"Audio": "" if pcm is None else pcm_b64(pcm), "Seq": seq, "IsFinal": final, **kw}
    return msg(req_id, "SEND_AUDIO", data)


def text(req_id: str, value: str, interrupt: bool = False) -> dict[str, Any]:
    return msg(req_id, "SEND_TEXT", {"Text": value, "Interrupt": interrupt})


_ENGINE_TTS = get_backend("espeak")


class Harness:
    def __init__(
        self,
        *,
        engine: Engine | None = None,
        interval_ms: int = 2000,
        started: bool = True,
        **settings: Any,
    ) -> None:
        self.clock = ManualClock(auto_advance=False)
        self.engine = engine or Engine(load_avatar("default"), tts=_ENGINE_TTS)
        self.session = Session(
            id=SID,
            appkey="k",
            user_id="u",
            asset_key="default",
            protocol="webrtc",
            driver_type=3,
            status=SessionStatus.READY,
            started=started,
            stream_max_interval_ms=interval_ms,
        )
        self.settings = replace(Settings(), **settings)
        self.activity = 0
        self.controls = EngineControls(self.engine)
        self.channel = DriveChannel(
            self.session,
            LocalHost(self.controls),
            self.settings,
            self.clock,
            on_activity=self._touch,
        )
        self.session.drive = self.channel
        self.out: list[dict[str, Any]] = []
        self.frames: list[EngineFrame] = []
        self.sent_at: list[int] = []  # index of the last frame on the stream when each was sent
        self.replaced = self.channel.attach(self.sender(self.out))

    def _touch(self) -> None:
        self.activity += 1

    def sender(self, box: list[dict[str, Any]]) -> Callable[[dict[str, Any]], Awaitable[None]]:
        async def send(m: dict[str, Any]) -> None:
            box.append(m)
            if box is self.out:
                self.sent_at.append(self.frames[-1].index if self.frames else -1)

        return send

    async def send(self, m: dict[str, Any] | str) -> list[dict[str, Any]]:
        """Send one upstream message; return what came back because of it."""
        n = len(self.out)
        await self.channel.handle_raw(m if isinstance(m, str) else json.dumps(m))
        await self.channel.flush()
        return self.out[n:]

    async def settle(self) -> None:
        """Wait until every StreamMaxInterval timer has fired (its worker-thread calls
        included) or sleeps on the clock again; a hang fails after 10 s."""
        deadline = time.monotonic() + 10.0
        while True:
            timers = [
                t
                for t in asyncio.all_tasks()
                if t.get_name().startswith("drive-timeout-") and not t.done()
            ]
            if len(timers) == self.clock.sleepers:
                break
            assert time.monotonic() < deadline, "a drive timer neither finished nor slept"
            await asyncio.sleep(0.001)
        await self.channel.flush()

    async def step(self, n: int = 1) -> None:
        for _ in range(n):
            frame = self.engine.next_frame()
            self.frames.append(frame)
            self.channel.on_frame(frame)
            await self.channel.flush()

    async def until(self, pred: Callable[[], bool], limit: int = 1500) -> None:
        for _ in range(limit):
            if pred():
                return
            await self.step()
            await asyncio.sleep(0)
        raise AssertionError(f"condition not met after {limit} frames; got {self.out}")

    async def until_status(self, req_id: str, status: str, limit: int = 1500) -> None:
        await self.until(lambda: status in [s for s, _ in self.statuses(req_id)], limit)

    async def until_idle(self, limit: int = 1500) -> None:
        await self.until(self.engine.idle, limit)
        await self.step(2)

    def statuses(self, req_id: str) -> list[tuple[str, int | None]]:
        return [
            (m["SpeakStatus"], m.get("FinalType"))
            for m in self.out
            if m["Type"] == 3 and m["ReqId"] == req_id
        ]

    def errors(self) -> list[dict[str, Any]]:
        return [m for m in self.out if m["Type"] == 9]

    def played(self, uid: str) -> np.ndarray:
        parts = [f.audio for f in self.frames if f.utterance_id == uid]
        return np.concatenate(parts) if parts else np.zeros(0, np.int16)

    def frame_of_event(self, kind: str, uid: str) -> int:
        return next(f.index for f in self.frames for ev, u in f.events if ev == kind and u == uid)

    def sent_frame(self, req_id: str, status: str) -> int:
        for m, at in zip(self.out, self.sent_at, strict=True):
            if m["Type"] == 3 and m["ReqId"] == req_id and m["SpeakStatus"] == status:
                return at
        raise AssertionError(f"{status} of {req_id} not sent")


def same_audio(played: np.ndarray, sent: np.ndarray) -> bool:
    """`played` is `sent` then zero padding up to a whole frame."""
    return (
        played.size >= sent.size
        and played.size - sent.size < 640
        and np.array_equal(played[: sent.size], sent)
        and not played[sent.size :].any()
    )


def like_speech(played: np.ndarray, expected: np.ndarray) -> bool:
    """Two syntheses of one text (espeak is not bit-exact between runs): same length within
    two frames, same loudness within 20 %."""
    nz = np.flatnonzero(played)
    body = played[: nz[-1] + 1] if nz.size else played[:0]

    def rms(x: np.ndarray) -> float:
        return float(np.sqrt(np.mean(x.astype(np.float64) ** 2))) if x.size else 0.0

    return abs(body.size - expected.size) <= 1280 and 0.8 < rms(body) / rms(expected) < 1.25
