"""The whole stack on loopback, as a user runs it: real server, real key, the Python client,
a WHEP viewer (aiortc) decoding the stream, and the WebSocket command channel driving it.

One session's life: create → ready → start → watch (540x960 at 25 fps, mouth still, audio
silent) → speak streamed audio (AudioStart/AudioOver; the mouth moves and the audio is loud
while the stream shows the speech) → speak a text with a second viewer watching too (both see
the mouth move) → close (the viewers' tracks end; statsession says closed).

Time alignment: AudioStart/TextStart leave the server when the speech's first frame is on the
stream, ...Over when its last one has been shown; frames reach the viewer about 40-80 ms
later (loopback plus aiortc's jitter buffers). So frames received between Start + 0.15 s and
Over show the speech, and frames received before the first chunk was sent cannot.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from websockets.asyncio.client import ClientConnection, connect

from avatarcast.avatars.registry import load_avatar
from avatarcast.client import Client
from avatarcast.client.viewer import AudioSample, Box, VideoSample, WhepViewer
from avatarcast.render.frame import FrameState
from avatarcast.settings import Settings
from avatarcast.speech.tts import get_backend
from avatarcast.speech.visemes import MouthPose, Shape
from server_harness import live_server

LOOPBACK = ["127.0.0.1"]
CHUNK_BYTES = 5120  # 160 ms of 16 kHz s16 mono
Msg = dict[str, Any]


@dataclass
class Stack:
    client: Client
    base_url: str


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    data_dir: Path = tmp_path_factory.mktemp("live")
    settings = Settings(
        data_dir=data_dir, log_level="warning", ice_host_addresses="127.0.0.1", idle_timeout_s=60
    ).validate()
    with (
        live_server(settings, key_name="e2e-live", max_sessions=4) as server,
        server.client() as client,
    ):
        yield Stack(client, server.url)


@pytest.fixture(scope="module")
def mouth_box() -> Box:
    """The mouth: pixels that differ between a wide-open and a closed mouth, plus a margin."""
    avatar = load_avatar("default")
    wide = avatar.render(FrameState(mouth=MouthPose(Shape.D, 1.0))).y.astype(np.int16)
    shut = avatar.render(FrameState(mouth=MouthPose(Shape.A, 0.0))).y.astype(np.int16)
    ys, xs = np.nonzero(np.abs(wide - shut) > 20)
    assert ys.size > 500, "the avatar's mouth does not move?"
    return int(ys.min()) - 4, int(ys.max()) + 5, int(xs.min()) - 4, int(xs.max()) + 5


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    tts = get_backend("espeak")
    pcm: np.ndarray = tts.synthesize(
        "Hello there, my name is Bob, how are you today?", voice="en-us"
    ).pcm
    return pcm


# ---- measuring what the viewer got -----------------------------------------------------------
def motion(frames: list[VideoSample]) -> list[float]:
    """Mean absolute change of the mouth box between consecutive received frames."""
    return [
        float(np.abs(b.luma.astype(np.int16) - a.luma.astype(np.int16)).mean())
        for a, b in itertools.pairwise(frames)
    ]


async def until(cond: Callable[[], bool], what: str, timeout_s: float = 30.0) -> None:
    """Wait for a condition; the timeout only guards against a hang."""
    deadline = time.monotonic() + timeout_s
    while not cond():
        assert time.monotonic() < deadline, f"no {what} in {timeout_s} s"
        await asyncio.sleep(0.02)


def between(items: list[Any], t0: float, t1: float) -> list[Any]:
    return [x for x in items if t0 <= x.t < t1]


def assert_still(frames: list[VideoSample]) -> None:
    still = motion(frames)
    assert len(still) >= 20, len(still)
    assert float(np.percentile(still, 95)) < 1.5, still


def assert_moving(frames: list[VideoSample]) -> None:
    moving = motion(frames)
    assert len(moving) >= 20, len(moving)
    assert float(np.mean(moving)) > 3.0 and max(moving) > 10.0, moving


def assert_quiet(audio: list[AudioSample]) -> None:
    assert len(audio) >= 40, len(audio)  # 20 ms each
    assert max(a.rms for a in audio) < 30, [round(a.rms) for a in audio]


def assert_loud(audio: list[AudioSample]) -> None:
    rms = np.array([a.rms for a in audio])
    assert rms.size >= 60, rms.size
    assert np.mean(rms > 300) > 0.5 and rms.max() > 2000, rms.round()


# ---- the command channel ---------------------------------------------------------------------
class Channel:
    """The session's WebSocket; a reader task stamps every message with its arrival time."""

    def __init__(self, ws: ClientConnection, session_id: str) -> None:
        self.ws = ws
        self.sid = session_id
        self.messages: list[Msg] = []
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for raw in self.ws:
            msg = json.loads(raw)
            msg["_at"] = time.monotonic()
            self.messages.append(msg)

    async def send(self, req_id: str, command: str, data: Msg) -> None:
        payload = {"ReqId": req_id, "SessionId": self.sid, "Command": command, "Data": data}
        await self.ws.send(json.dumps({"Header": {}, "Payload": payload}))

    async def send_speech(self, req_id: str, pcm: np.ndarray) -> float:
        """Paced as the spec says: 6 chunks at once, then one every 120 ms, then the final.
        Returns the monotonic time the first chunk was sent."""
        raw = pcm.astype("<i2").tobytes()
        chunks = [raw[i : i + CHUNK_BYTES] for i in range(0, len(raw), CHUNK_BYTES)]
        start = time.monotonic()
        for seq, chunk in enumerate(chunks, 1):
            # Absolute deadlines: no drift from the time sends take.
            await asyncio.sleep(max(0.0, start + max(0, seq - 6) * 0.12 - time.monotonic()))
            audio = base64.b64encode(chunk).decode()
            await self.send(req_id, "SEND_AUDIO", {"Audio": audio, "Seq": seq, "IsFinal": False})
        await self.send(
            req_id, "SEND_AUDIO", {"Audio": "", "Seq": len(chunks) + 1, "IsFinal": True}
        )
        return start

    async def wait_over(self, req_id: str, timeout_s: float) -> list[Msg]:
        """The Type 3 statuses of `req_id` once its AudioOver/TextOver has arrived."""
        deadline = time.monotonic() + timeout_s
        while True:
            errors = [m for m in self.messages if m["Type"] == 9]
            assert not errors, errors
            mine = [m for m in self.messages if m["ReqId"] == req_id and m["Type"] == 3]
            if any(m["SpeakStatus"] in ("AudioOver", "TextOver") for m in mine):
                return mine
            assert time.monotonic() < deadline, f"no ...Over for {req_id} in {timeout_s} s: {mine}"
            assert not self._reader.done(), "the command channel closed"
            await asyncio.sleep(0.02)

    async def close(self) -> None:
        await self.ws.close()
        self._reader.cancel()
        await asyncio.wait([self._reader], timeout=5)


def at(statuses: list[Msg], name: str) -> float:
    (t,) = [m["_at"] for m in statuses if m["SpeakStatus"] == name]
    return float(t)


# ---- the test --------------------------------------------------------------------------------
def test_live_session_watch_speak_text_second_viewer_close(
    stack: Stack, mouth_box: Box, speech: np.ndarray
) -> None:
    c = stack.client

    async def main() -> None:
        created = await asyncio.to_thread(
            c.create_session_by_asset, "default", "e2e-user", "webrtc", 3
        )
        sid = created["SessionId"]
        assert created["PlayStreamAddr"].startswith(f"{stack.base_url}/v2/whep/{sid}?token=")
        await asyncio.to_thread(c.wait_ready, sid, 30.0)
        await asyncio.to_thread(c.start_session, sid)
        play = created["PlayStreamAddr"]

        viewer = WhepViewer(play, ice_host_addresses=LOOPBACK, crop=mouth_box, timeout_s=30)
        second = WhepViewer(play, ice_host_addresses=LOOPBACK, crop=mouth_box, timeout_s=30)
        async with viewer, connect(c.command_channel_url(sid), open_timeout=10) as ws:
            channel = Channel(ws, sid)
            try:
                # 1. Watching: full-size frames on the 25 fps timeline, still mouth, silence.
                first = (await viewer.wait_frames(1, timeout_s=60))[0]
                assert (first.width, first.height) == (540, 960)
                await viewer.wait_frames(60, timeout_s=60)
                assert {(f.width, f.height) for f in viewer.video} == {(540, 960)}
                # pts step one frame (3600 at 90 kHz); slots a loaded machine skipped are
                # whole frames missing, never a drift
                steps = [b.pts - a.pts for a, b in itertools.pairwise(viewer.video)]
                assert all(d is not None and d > 0 and d % 3600 == 0 for d in steps), steps

                # 2. Streamed speech over the channel.
                req = uuid.uuid4().hex
                sent_at = await channel.send_speech(req, speech)
                statuses = await channel.wait_over(req, timeout_s=60)
                assert [(m["SpeakStatus"], m.get("FinalType")) for m in statuses] == [
                    ("WaitingAudioStart", None),
                    ("AudioStart", None),
                    ("WaitingAudioOver", None),
                    ("AudioOver", 1),
                ]
                start, over = at(statuses, "AudioStart"), at(statuses, "AudioOver")
                duration = speech.size / 16000
                # AudioOver leaves with the speech's last frame, not when the audio arrived
                # (all of it was sent ~0.7 s before its end); one-sided: a loaded machine may
                # be late, never early.
                assert over - start > duration - 0.4, (over - start, duration)
                await until(lambda: viewer.video[-1].t > over + 0.15, "the speech's last frames")

                video, audio = list(viewer.video), list(viewer.audio)
                assert_still(between(video, first.t + 0.5, sent_at))
                assert_moving(between(video, start + 0.15, over))
                assert_quiet(between(audio, first.t + 0.5, sent_at))
                assert_loud(between(audio, start + 0.15, over))

                # 3. Text, with a second viewer joining: both see the mouth move.
                async with second:
                    await second.wait_frames(10, timeout_s=60)
                    text_req = uuid.uuid4().hex
                    await channel.send(
                        text_req,
                        "SEND_TEXT",
                        {"Text": "Thank you for watching, see you again soon.", "Interrupt": False},
                    )
                    statuses = await channel.wait_over(text_req, timeout_s=60)
                    assert [(m["SpeakStatus"], m.get("FinalType")) for m in statuses] == [
                        ("WaitingTextStart", None),
                        ("TextStart", None),
                        ("WaitingTextOver", None),
                        ("TextOver", 1),
                    ]
                    start, over = at(statuses, "TextStart"), at(statuses, "TextOver")
                    assert over - start > 1.5, over - start
                    for v in (viewer, second):
                        await until(lambda v=v: v.video[-1].t > over + 0.15, "the last frames")
                    for v in (viewer, second):
                        assert_moving(between(list(v.video), start + 0.15, over))
                        assert_loud(between(list(v.audio), start + 0.15, over))
                    assert {(f.width, f.height) for f in second.video} == {(540, 960)}

                    # 4. Close: both viewers' streams end; the session reports closed.
                    await asyncio.to_thread(c.close_session, sid)
                    await viewer.wait_ended(timeout_s=30)
                    await second.wait_ended(timeout_s=30)
                    count = viewer.frames_received
                    await asyncio.sleep(0.5)
                    assert viewer.frames_received == count  # nothing after the end
            finally:
                await channel.close()
        stat = await asyncio.to_thread(c.stat_session, sid)
        assert stat["SessionStatus"] == 2, stat
        assert stat["IsSessionStarted"] is True

    async def bounded() -> None:
        await asyncio.wait_for(main(), 240)  # a hang guard

    asyncio.run(bounded())
