"""Janus output against a real Janus (Debian's `janus`, VideoRoom plugin) on loopback.

A session created with `Protocol: janus` publishes into a VideoRoom of the Janus started here
(tests/e2e/janus_server.py); aiortc subscribers receive it through Janus, as any viewer would:
540x960 on the 25 fps timeline, audio, and the mouth moving while a SEND_TEXT is spoken. Then
Janus is killed with SIGKILL and started again: the output republishes (the room is created
again), a new subscriber receives it, and the session never stopped. A refused join (a room's
PIN) and a wrong API secret end in state `failed` with Janus's reason on statsession, while the
session's WHEP viewers still play.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pytest
from janus_server import API_SECRET, JanusServer, JanusSubscriber, free_port, janus_available
from websockets.asyncio.client import connect

from avatarcast.avatars.registry import load_avatar
from avatarcast.client import ApiError, Client
from avatarcast.client.viewer import Box, WhepViewer
from avatarcast.render.frame import FrameState
from avatarcast.sessions.media import attach_media
from avatarcast.sessions.playback import whep_url
from avatarcast.sessions.session import Session
from avatarcast.settings import Settings
from avatarcast.speech.visemes import MouthPose, Shape
from avatarcast.stream.clock import MonotonicClock
from avatarcast.stream.janus import JanusOutput
from avatarcast.stream.janus_api import JanusSession
from server_harness import live_server

pytestmark = pytest.mark.skipif(bool(janus_available()), reason=janus_available() or "-")

ROOM = 4242
SESSION_TIMEOUT_S = 3


@pytest.fixture(scope="module")
def janus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JanusServer]:
    # A short session timeout: sessions live only by their keepalives, which must be sent.
    server = JanusServer(
        tmp_path_factory.mktemp("janus"), free_port(), session_timeout_s=SESSION_TIMEOUT_S
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


@dataclass
class Stack:
    client: Client
    sessions: dict[str, Session]
    settings: Settings
    base_url: str


@pytest.fixture(scope="module")
def stack(janus: JanusServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("janus-stack"),
        log_level="warning",
        ice_host_addresses="127.0.0.1",
        janus_url=janus.url,
        janus_api_secret=API_SECRET,
    ).validate()
    sessions: dict[str, Session] = {}
    clock = MonotonicClock()

    async def media(session: Session) -> None:  # the real media, with the session kept at hand
        sessions[session.id] = session
        await attach_media(session, settings, clock)

    # live_server undoes the server's process-wide ICE patch when it stops.
    with (
        live_server(settings, media_factory=media, key_name="e2e-janus") as server,
        server.client() as client,
    ):
        yield Stack(client, sessions, settings, server.url)


@pytest.fixture(scope="module")
def mouth_box() -> Box:
    """The mouth: pixels that differ between a wide-open and a closed mouth, plus a margin."""
    avatar = load_avatar("default")
    wide = avatar.render(FrameState(mouth=MouthPose(Shape.D, 1.0))).y.astype(np.int16)
    shut = avatar.render(FrameState(mouth=MouthPose(Shape.A, 0.0))).y.astype(np.int16)
    ys, xs = np.nonzero(np.abs(wide - shut) > 20)
    assert ys.size > 500, "the avatar's mouth does not move?"
    return int(ys.min()) - 4, int(ys.max()) + 5, int(xs.min()) - 4, int(xs.max()) + 5


def janus_output(session: Session) -> JanusOutput:
    (out,) = [o for o in session.host.host.outputs if isinstance(o, JanusOutput)]
    return out


async def until(cond: Callable[[], bool], what: str, timeout_s: float = 30.0) -> None:
    """Wait for a condition; the timeout only guards against a hang."""
    deadline = time.monotonic() + timeout_s
    while not cond():
        assert time.monotonic() < deadline, f"no {what} in {timeout_s} s"
        await asyncio.sleep(0.05)


def room_and_feed(play: str) -> tuple[str, int, int]:
    parts = urlsplit(play)
    query = parse_qs(parts.query)
    base = f"{parts.scheme}://{parts.netloc}{parts.path}"
    return base, int(query["room"][0]), int(query["feed"][0])


def motion(crops: list[np.ndarray]) -> list[float]:
    return [
        float(np.abs(b.astype(np.int16) - a.astype(np.int16)).mean())
        for a, b in itertools.pairwise(crops)
    ]


# ---- the tests ---------------------------------------------------------------------------------
def test_janus_session_reaches_subscribers_and_survives_a_janus_restart(
    stack: Stack, janus: JanusServer, mouth_box: Box
) -> None:
    c = stack.client
    created = c.create_session_by_asset(
        "default",
        "janus-user",
        protocol="janus",
        extra={"ProtocolOption": {"RoomId": ROOM, "Display": "Ava"}},
    )
    sid = created["SessionId"]
    url, room, feed = room_and_feed(created["PlayStreamAddr"])
    assert url == janus.url and room == ROOM
    c.wait_ready(sid, 15)
    c.start_session(sid)
    session = stack.sessions[sid]
    live, out = session.host.host.live, janus_output(session)
    assert live is not None

    async def scenario() -> None:
        await until(lambda: out.state == "streaming", "publishing")
        streaming_since = time.monotonic()
        assert out.feed == feed and out.room_created

        # 1. A subscriber through Janus: the picture, 25 fps, audio; a text makes the mouth move.
        async with JanusSubscriber(url, room, feed, crop=mouth_box) as sub:
            await sub.wait_frames(40)
            still = len(sub.got.crops)
            got = sub.got
            assert set(got.sizes) == {(540, 960)}
            steps = np.diff(got.video_pts_s)
            # 25 fps by pts: 40 ms steps (a loaded machine may skip slots, on the grid)
            assert np.median(steps) == pytest.approx(0.04, abs=0.002), steps
            assert np.all(steps > 0)
            async with connect(c.command_channel_url(sid)) as ws:
                payload = {
                    "ReqId": uuid.uuid4().hex,
                    "SessionId": sid,
                    "Command": "SEND_TEXT",
                    "Data": {"Text": "Hello, I am speaking through Janus to all of you."},
                }
                await ws.send(json.dumps({"Header": {}, "Payload": payload}))
                started = over = 0.0
                deadline = time.monotonic() + 30
                while not over:
                    assert time.monotonic() < deadline, "no TextOver"
                    msg = json.loads(await asyncio.wait_for(ws.recv(), 30))
                    assert msg.get("Type") != 9, msg
                    if msg.get("SpeakStatus") == "TextStart":
                        started = time.monotonic()
                    elif msg.get("SpeakStatus") == "TextOver":
                        over = time.monotonic()
            assert started
            await asyncio.sleep(0.3)
        quiet = motion(got.crops[:still])
        speaking = motion(
            [cr for cr, t in zip(got.crops, got.video_t, strict=True) if started + 0.2 < t < over]
        )
        assert len(quiet) >= 20 and len(speaking) >= 20, (len(quiet), len(speaking))
        assert float(np.percentile(quiet, 95)) < 1.5, quiet
        assert float(np.mean(speaking)) > 3.0 and max(speaking) > 10.0, speaking
        loud = [r for r, t in zip(got.audio_rms, got.audio_t, strict=True) if started < t < over]
        assert len(got.audio_rms) > 100 and loud and max(loud) > 1000, max(loud or [0])

        # Keepalives kept the Janus session (and the subscriber's) beyond Janus's timeout.
        await asyncio.sleep(max(0.0, streaming_since + 2.5 * SESSION_TIMEOUT_S - time.monotonic()))
        assert out.reconnects == 0 and out.state == "streaming" and out.keepalives >= 2

        # 2. Janus dies (SIGKILL) and comes back on the same port: the output republishes.
        notices: list[dict[str, Any]] = []
        async with connect(c.command_channel_url(sid)) as ws:

            async def listen() -> None:
                async for raw in ws:
                    msg = json.loads(raw)
                    if msg.get("Type") == 10:
                        notices.append(msg)

            listener = asyncio.create_task(listen())
            await asyncio.to_thread(janus.stop, signal.SIGKILL)
            await until(lambda: out.state == "reconnecting", "the output to notice the loss")
            before = live.frames_sent
            await until(lambda: out.failed_attempts >= 2, "failed reconnect attempts")
            during = live.frames_sent - before
            await asyncio.to_thread(janus.start)
            await until(lambda: out.reconnects >= 1 and out.state == "streaming", "republish")
            await until(lambda: any(n["State"] == "streaming" for n in notices), "notices", 5)
            listener.cancel()
        assert during > 0  # the session kept producing frames while Janus was gone
        stat = await asyncio.to_thread(c.stat_session, sid)
        assert stat["SessionStatus"] == 1
        (status,) = stat["Outputs"]
        assert status["name"] == "janus" and status["state"] == "streaming", status
        assert status["reconnects"] >= 1 and status["room"] == ROOM and status["feed"] == feed
        states = [n["State"] for n in notices]
        assert "reconnecting" in states and states[-1] == "streaming", notices
        assert all(n["Output"] == "janus" and n["SessionId"] == sid for n in notices)
        async with JanusSubscriber(url, room, feed) as again:
            await again.wait_frames(25)
        assert set(again.got.sizes) == {(540, 960)} and again.got.audio_rms

    try:
        asyncio.run(scenario())
    finally:
        c.close_session(sid)
    assert out.state == "stopped"


def test_janus_refused_join_and_wrong_secret_fail_clearly_and_whep_still_plays(
    stack: Stack, janus: JanusServer
) -> None:
    c = stack.client
    pinned = 777

    async def make_pinned_room() -> None:
        js = await JanusSession.open(janus.url, api_secret=API_SECRET)
        try:
            handle = await js.attach()
            await js.message(
                handle,
                {"request": "create", "room": pinned, "pin": "1234", "videocodec": "h264"},
            )
        finally:
            await js.close()

    asyncio.run(make_pinned_room())
    created = c.create_session_by_asset(
        "default", "janus-pinned", protocol="janus", extra={"ProtocolOption": {"RoomId": pinned}}
    )
    sid = created["SessionId"]
    c.wait_ready(sid, 15)
    c.start_session(sid)
    session = stack.sessions[sid]
    out = janus_output(session)
    live = session.host.host.live
    assert live is not None

    async def scenario() -> None:
        await until(lambda: out.state == "failed", "the refused join")
        stat = await asyncio.to_thread(c.stat_session, sid)
        assert stat["SessionStatus"] == 1  # the session goes on
        (status,) = stat["Outputs"]
        assert status["state"] == "failed", status
        assert "pin" in status["last_error"] and "Janus error 4" in status["last_error"], status
        # Its WHEP viewers still play.
        whep = whep_url(stack.base_url, sid, session.play_token)
        async with WhepViewer(whep, ice_host_addresses=["127.0.0.1"], timeout_s=30) as viewer:
            frames = await viewer.wait_frames(25, timeout_s=20)
        assert {(f.width, f.height) for f in frames} == {(540, 960)}

        # A wrong API secret: Janus refuses the session itself; the same clear failure.
        wrong = replace(stack.settings, janus_api_secret="not-the-secret")
        other = JanusOutput(live, wrong, ROOM + 1, 99, "wrong")
        await other.start()
        try:
            await until(lambda: other.state == "failed", "the refused secret")
        finally:
            await other.stop()
        assert "403" in other.last_error and "unauthorized" in other.last_error.lower()
        assert other.status()["state"] == "stopped"

    try:
        asyncio.run(scenario())
    finally:
        c.close_session(sid)


def test_janus_room_option_is_checked_at_createsession(stack: Stack) -> None:
    for bad in ({"RoomId": "lobby"}, {"RoomId": 0}, {"Display": ""}):
        with pytest.raises(ApiError) as info:
            stack.client.create_session_by_asset(
                "default", "janus-bad", protocol="janus", extra={"ProtocolOption": bad}
            )
        assert info.value.code == 100001, bad


def test_janus_session_without_room_gets_its_own_room_removed_at_close(
    stack: Stack, janus: JanusServer
) -> None:
    c = stack.client
    created = c.create_session_by_asset("default", "janus-own", protocol="janus")
    sid = created["SessionId"]
    url, room, feed = room_and_feed(created["PlayStreamAddr"])
    c.wait_ready(sid, 15)
    c.start_session(sid)
    out = janus_output(stack.sessions[sid])
    assert out.room == room and out.display == "janus-own"

    async def exists() -> bool:
        js = await JanusSession.open(url, api_secret=API_SECRET)
        try:
            data, _ = await js.message(await js.attach(), {"request": "exists", "room": room})
        finally:
            await js.close()
        return bool(data["exists"])

    async def scenario() -> None:
        await until(lambda: out.state == "streaming", "publishing")
        assert out.room_created and await exists()
        async with JanusSubscriber(url, room, feed) as sub:
            await sub.wait_frames(10)
        await asyncio.to_thread(c.close_session, sid)
        assert out.state == "stopped"
        assert not await exists()

    asyncio.run(scenario())
