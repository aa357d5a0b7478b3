"""WHEP over real HTTP: a uvicorn server on a free loopback port serving only `whep_routes`,
a real live stream, and an aiortc viewer that POSTs its offer and DELETEs its resource.

The context is a stand-in only for the session lookup; all media is real."""

from __future__ import annotations

import asyncio
import socket
import time
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import av
import httpx
import pytest
import uvicorn
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from starlette.applications import Starlette

from avatarcast.api.whep import whep_routes
from avatarcast.engine.host import SessionHost
from avatarcast.engine.spec import HostSpec
from avatarcast.sessions.handle import LocalHost
from avatarcast.sessions.session import Session, SessionStatus
from avatarcast.settings import Settings
from avatarcast.stream.clock import MonotonicClock
from avatarcast.stream.webrtc import use_host_addresses

SDP = {"Content-Type": "application/sdp"}


@dataclass
class FakeManager:
    sessions: dict[str, Session] = field(default_factory=dict)

    def find(self, session_id: str) -> Session | None:
        return self.sessions.get(session_id)


@dataclass
class Viewer:
    pc: RTCPeerConnection = field(
        default_factory=lambda: RTCPeerConnection(RTCConfiguration(iceServers=[]))
    )
    frames: list[tuple[int, int]] = field(default_factory=list)
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.pc.addTransceiver("video", direction="recvonly")
        self.pc.addTransceiver("audio", direction="recvonly")

        @self.pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            if track.kind == "video":
                self.tasks.append(asyncio.create_task(self._read(track)))

    async def _read(self, track: MediaStreamTrack) -> None:
        try:
            while True:
                frame = await track.recv()
                assert isinstance(frame, av.VideoFrame)
                self.frames.append((frame.width, frame.height))
        except MediaStreamError:
            self.ended.set()

    async def offer(self) -> str:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return str(self.pc.localDescription.sdp)


async def serve(app: Starlette) -> tuple[uvicorn.Server, asyncio.Task[None], str]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.01)
    return server, task, f"http://127.0.0.1:{sock.getsockname()[1]}"


def session(sid: str, host: SessionHost | None, status: SessionStatus) -> Session:
    handle = LocalHost.of(host) if host is not None else None
    return Session(sid, "key", "user", "default", "webrtc", 3, status=status, host=handle)


def test_whep_post_play_delete_and_errors() -> None:
    async def main() -> None:
        settings = Settings(ice_host_addresses="127.0.0.1")
        host = SessionHost(HostSpec("s1", "default"), settings, MonotonicClock())
        await asyncio.to_thread(host.load)
        await host.start()
        live = host.live
        assert live is not None
        manager = FakeManager()
        ok = session("s1", host, SessionStatus.READY)
        manager.sessions["s1"] = ok
        manager.sessions["s2"] = session("s2", None, SessionStatus.PREPARING)
        manager.sessions["s3"] = session("s3", None, SessionStatus.CLOSED)
        ctx = SimpleNamespace(settings=settings, manager=manager)
        server, task, base = await serve(Starlette(routes=whep_routes(ctx)))  # type: ignore[arg-type]
        viewer = Viewer()
        try:
            async with httpx.AsyncClient(base_url=base, timeout=10) as http:
                url = f"/v2/whep/s1?token={ok.play_token}"
                pre = await http.options(url, headers={"Origin": "https://player.example"})
                assert pre.status_code == 204
                assert pre.headers["access-control-allow-origin"] == "*"
                assert "POST" in pre.headers["access-control-allow-methods"]
                assert "Content-Type" in pre.headers["access-control-allow-headers"]

                offer = await viewer.offer()
                bad: list[tuple[str, dict[str, str], str, int]] = [
                    ("/v2/whep/nope?token=x", SDP, offer, 404),
                    ("/v2/whep/s1?token=wrong", SDP, offer, 403),
                    ("/v2/whep/s1", SDP, offer, 403),
                    (url, {"Content-Type": "application/json"}, offer, 415),
                    (url, SDP, "v=0\r\nnot an offer\r\n", 400),
                    (f"/v2/whep/s2?token={manager.sessions['s2'].play_token}", SDP, offer, 409),
                    (f"/v2/whep/s3?token={manager.sessions['s3'].play_token}", SDP, offer, 404),
                ]
                for path, headers, body, status in bad:
                    r = await http.post(path, headers=headers, content=body)
                    assert r.status_code == status, (path, r.status_code, r.text)
                    assert r.headers["access-control-allow-origin"] == "*"

                # the token may also come as a bearer token (what WHEP players send)
                r = await http.post(
                    "/v2/whep/s1",
                    headers={**SDP, "Authorization": f"Bearer {ok.play_token}"},
                    content=offer,
                )
                assert r.status_code == 201, r.text
                assert r.headers["content-type"].startswith("application/sdp")
                location = r.headers["location"]
                assert location.startswith("/v2/whep/s1/") and len(location) > len("/v2/whep/s1/")
                assert "Location" in r.headers["access-control-expose-headers"]
                await viewer.pc.setRemoteDescription(RTCSessionDescription(r.text, "answer"))
                deadline = time.monotonic() + 5
                while len(viewer.frames) < 10:
                    assert time.monotonic() < deadline, "no frames over WHEP"
                    await asyncio.sleep(0.02)
                assert set(viewer.frames) == {(540, 960)}
                assert live.viewers == 1

                r = await http.delete(location)
                assert r.status_code == 200
                await asyncio.wait_for(viewer.ended.wait(), 5)
                assert live.viewers == 0
                assert (await http.delete(location)).status_code == 404
                assert (await http.delete("/v2/whep/s1/unknown")).status_code == 404
        finally:
            for t in viewer.tasks:
                t.cancel()
            await viewer.pc.close()
            server.should_exit = True
            await asyncio.wait_for(task, 5)
            await host.stop()

    async def bounded() -> None:
        await asyncio.wait_for(main(), 30)

    try:
        asyncio.run(bounded())
    finally:
        use_host_addresses([])


@pytest.fixture(autouse=True)
def _no_leftover_patch() -> Any:
    yield
    use_host_addresses([])
