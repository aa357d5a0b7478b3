"""LiveKit output, offline (no LiveKit server can run here): tokens, the play URL, the I420
conversion, the publishing loop against the SDK's real sources and tracks (read back through
the SDK's own VideoStream/AudioStream) with a stand-in room, and a real connect failure on a
closed local port while the session keeps streaming.

Not covered (needs a server): joining a room, publishing to it, a remote viewer receiving."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

import jwt
import numpy as np
import pytest
from livekit import api, rtc
from livekit.api.access_token import Claims

from avatarcast.avatars.registry import load_avatar
from avatarcast.codes import wire_code
from avatarcast.engine.live import LiveStream
from avatarcast.engine.timeline import Engine, EngineFrame
from avatarcast.errors import RequestError
from avatarcast.render.frame import FrameState, YuvFrame
from avatarcast.sessions.manager import SessionManager
from avatarcast.sessions.session import NewSession, Session, SessionStatus
from avatarcast.sessions.store_sqlite import SqliteStore
from avatarcast.settings import Settings
from avatarcast.stream import livekit
from avatarcast.stream.clock import ManualClock, MonotonicClock
from avatarcast.stream.encoder import VideoOptions

KEY, SECRET = "APIdevkey", "a-test-secret-that-is-long-enough-for-hs256"
SETTINGS = Settings(
    livekit_url="ws://lk.example.test:7880",
    livekit_api_key=KEY,
    livekit_api_secret=SECRET,
    livekit_viewer_token_ttl_s=900,
)
CFG = livekit.config(SETTINGS)


def _session(**option: Any) -> Session:
    extra = {"ProtocolOption": option} if option else {}
    return Session(
        id="0123456789abcdef0123456789abcdef",
        appkey="k",
        user_id="alice",
        asset_key="default",
        protocol="trtc",
        driver_type=3,
        extra=extra,
    )


def _claims(token: str) -> Claims:
    return api.TokenVerifier(KEY, SECRET).verify(token)


def _lifetime(token: str) -> int:
    raw = jwt.decode(token, options={"verify_signature": False})
    return int(raw["exp"]) - int(raw["nbf"])


def run(coro: Coroutine[Any, Any, None], timeout_s: float = 20.0) -> None:
    async def bounded() -> None:
        await asyncio.wait_for(coro, timeout_s)

    asyncio.run(bounded())


async def until(cond: Callable[[], bool], timeout_s: float, what: str) -> None:
    """Wait for a condition; `timeout_s` only guards against a hang."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not cond():
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


# ---- tokens and the play URL -----------------------------------------------------------------
def test_publisher_and_viewer_tokens_carry_their_grants() -> None:
    pub = livekit.publisher_token(CFG, "lobby", "alice")
    c = _claims(pub)
    assert c.identity == "alice" and c.video is not None
    assert c.video.room == "lobby" and c.video.room_join is True
    assert c.video.can_publish is True and c.video.can_subscribe is False
    assert _lifetime(pub) == livekit.PUBLISHER_TOKEN_TTL_S

    view = livekit.viewer_token(CFG, "lobby", "viewer-x")
    v = _claims(view)
    assert v.identity == "viewer-x" and v.video is not None
    assert v.video.room == "lobby" and v.video.room_join is True
    assert v.video.can_publish is False and v.video.can_publish_data is False
    assert v.video.can_subscribe is True
    assert _lifetime(view) == 900

    with pytest.raises(jwt.InvalidSignatureError):  # signed with the configured secret only
        api.TokenVerifier(KEY, SECRET + "x").verify(view)


def test_play_url_carries_server_room_and_a_viewer_token() -> None:
    session = _session(RoomName="lobby")
    url = livekit.play_url(session.output_target(), SETTINGS)
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == SETTINGS.livekit_url
    q = parse_qs(parts.query)
    assert q["room"] == ["lobby"]
    claims = _claims(q["token"][0])
    assert claims.identity == f"viewer-{session.id}"
    assert claims.video is not None and claims.video.room == "lobby"
    assert claims.video.can_publish is False

    # Default room: the session's own; a URL that has a query already gets '&'.
    q2 = parse_qs(urlsplit(livekit.play_url(_session().output_target(), SETTINGS)).query)
    assert q2["room"] == [f"avatarcast-{session.id}"]
    with_query = Settings(**{**SETTINGS.__dict__, "livekit_url": "wss://lk.test/?region=eu"})
    assert "/?region=eu&room=avatarcast-" in livekit.play_url(
        _session().output_target(), with_query
    )


def test_unconfigured_server_and_bad_room_are_100001() -> None:
    for settings in (
        Settings(),
        Settings(livekit_url="ws://x:7880", livekit_api_key=KEY),
        Settings(livekit_url="rtmp://x", livekit_api_key=KEY, livekit_api_secret=SECRET),
    ):
        with pytest.raises(RequestError, match="LiveKit is not configured") as info:
            livekit.play_url(_session().output_target(), settings)
        assert wire_code(info.value) == 100001
        assert not livekit.configured(settings)
    assert livekit.configured(SETTINGS)
    for bad in ("", 42, "r" * 129):
        with pytest.raises(RequestError, match="RoomName"):
            livekit.play_url(_session(RoomName=bad).output_target(), SETTINGS)


def test_createsession_trtc_without_livekit_settings_fails_at_once(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = SqliteStore(Settings(data_dir=tmp_path).db_path)
        appkey, _ = store.create_key("k", 2)

        async def no_media(session: Session) -> None:
            return None

        manager = SessionManager(
            Settings(data_dir=tmp_path), store, MonotonicClock(), lambda: 0.0, no_media
        )
        with pytest.raises(RequestError, match="LiveKit is not configured"):
            await manager.create(
                appkey, NewSession(user_id="u", protocol="trtc", driver_type=1, asset_key="default")
            )
        assert manager.open_count() == 0  # nothing registered, no quota used
        store.close()

    run(scenario())


# ---- frame conversion ------------------------------------------------------------------------
def test_video_frame_is_the_yuv_frame_as_i420() -> None:
    w, h = 64, 32
    frame = YuvFrame.blank(w, h)
    frame.y[:] = np.arange(w, dtype=np.uint8)[None, :] + 100  # a ramp: catches stride errors
    frame.y[:, : w // 2] = 81  # left half: BT.601 limited-range pure red (81, 90, 240)
    frame.u[:, : w // 4] = 90
    frame.v[:, : w // 4] = 240
    vf = livekit.video_frame(frame)
    assert (vf.width, vf.height, vf.type) == (w, h, rtc.VideoBufferType.I420)
    planes = [vf.get_plane(i) for i in range(3)]
    assert all(p is not None for p in planes)
    y, u, v = (np.frombuffer(p, np.uint8) for p in planes if p is not None)
    assert np.array_equal(y.reshape(h, w), frame.y)
    assert np.array_equal(u.reshape(h // 2, w // 2), frame.u)
    assert np.array_equal(v.reshape(h // 2, w // 2), frame.v)
    # The SDK reads it as the colours we meant: red on the left.
    rgba = np.frombuffer(vf.convert(rtc.VideoBufferType.RGBA).data, np.uint8).reshape(h, w, 4)
    r, g, b = (int(c) for c in rgba[h // 2, w // 8, :3])
    assert r > 230 and g < 25 and b < 25, (r, g, b)

    pcm = (np.arange(640) - 320).astype(np.int16)
    af = livekit.audio_frame(pcm)
    assert (af.sample_rate, af.num_channels, af.samples_per_channel) == (16000, 1, 640)
    assert np.array_equal(np.frombuffer(af.data, np.int16), pcm)


# ---- the publishing loop ---------------------------------------------------------------------
class FakeParticipant:
    def __init__(self) -> None:
        self.published: list[tuple[rtc.LocalTrack, rtc.TrackPublishOptions]] = []

    async def publish_track(
        self, track: rtc.LocalTrack, options: rtc.TrackPublishOptions
    ) -> object:
        self.published.append((track, options))
        return object()


class FakeRoom:
    """Stands in for rtc.Room: records the join and publications, emits events on demand."""

    made: ClassVar[list[FakeRoom]] = []

    def __init__(self) -> None:
        self.handlers: dict[str, list[Callable[..., Any]]] = {}
        self.local_participant = FakeParticipant()
        self.joined: tuple[str, str] | None = None
        self.left = False
        FakeRoom.made.append(self)

    def on(self, event: str, callback: Callable[..., Any]) -> Callable[..., Any]:
        self.handlers.setdefault(event, []).append(callback)
        return callback

    def emit(self, event: str, *args: Any) -> None:
        for cb in self.handlers.get(event, []):
            cb(*args)

    async def connect(self, url: str, token: str, options: rtc.RoomOptions) -> None:
        self.joined = (url, token)

    async def disconnect(self) -> None:
        self.left = True


def test_publishing_loop_feeds_the_sdk_tracks_and_rejoins() -> None:
    avatar = load_avatar("default")
    reference = avatar.render(FrameState()).y.astype(np.int16)
    drive_frames: list[int] = []

    async def scenario() -> None:
        FakeRoom.made.clear()
        live = LiveStream(
            Engine(avatar),
            VideoOptions(width=avatar.width, height=avatar.height),
            MonotonicClock(),
            on_frame=lambda f: drive_frames.append(f.index),
        )
        await live.start()
        drive_on_frame = live.on_frame
        out = livekit.LiveKitOutput(
            live, CFG, "lobby", "alice", room_factory=FakeRoom, backoff_s=(0.05,)
        )
        await out.start()
        await until(lambda: out.state == "connected", 30, "the first join")
        room = FakeRoom.made[0]
        assert room.joined is not None and room.joined[0] == SETTINGS.livekit_url
        assert _claims(room.joined[1]).identity == "alice"
        (vt, vopts), (at, aopts) = room.local_participant.published
        assert isinstance(vt, rtc.LocalVideoTrack) and isinstance(at, rtc.LocalAudioTrack)
        assert vopts.source == rtc.TrackSource.SOURCE_CAMERA and not vopts.simulcast
        assert vopts.video_encoding.max_framerate == 25
        assert aopts.source == rtc.TrackSource.SOURCE_MICROPHONE

        # What the SDK got, read back from the published tracks themselves.
        vstream = rtc.VideoStream(vt, format=rtc.VideoBufferType.I420)
        astream = rtc.AudioStream(at, sample_rate=16000, num_channels=1)
        ev = await asyncio.wait_for(vstream.__anext__(), 30)
        assert (ev.frame.width, ev.frame.height) == (avatar.width, avatar.height)
        plane = ev.frame.get_plane(0)
        assert plane is not None
        got = np.frombuffer(plane, np.uint8).reshape(avatar.height, avatar.width)
        # The idle pose, up to breathing and a few px of head sway.
        assert float(np.abs(got.astype(np.int16) - reference).mean()) < 6.0
        aev = await asyncio.wait_for(astream.__anext__(), 30)
        assert aev.frame.sample_rate == 16000
        assert np.abs(np.frombuffer(aev.frame.data, np.int16)).max() < 50  # idle: silence

        # Every frame the stream publishes goes to the SDK (counted in frames, not seconds).
        v0, a0, f0 = out.video_frames, out.audio_frames, live.frames_sent
        await until(lambda: live.frames_sent >= f0 + 25, 30, "25 more frames")
        assert out.video_frames - v0 == live.frames_sent - f0  # same loop turn: exact
        await until(lambda: out.audio_frames >= a0 + 20, 30, "the audio of those frames")

        # Lost connection: leave the old room, back off, join a fresh one.
        room.emit("reconnecting")
        assert out.status()["state"] == "reconnecting"
        room.emit("disconnected", "SIGNAL_CLOSE")
        await until(lambda: out.connects == 2, 30, "the rejoin")
        assert room.left and len(FakeRoom.made) == 2
        st = out.status()
        assert st["state"] == "connected" and st["failures"] == 1
        assert "disconnected" in st["last_error"] and st["room"] == "lobby"
        v1 = out.video_frames
        await until(lambda: out.video_frames > v1, 30, "frames to the fresh room")

        await vstream.aclose()
        await astream.aclose()
        await asyncio.wait_for(out.stop(), 30)  # a hang guard, not a speed check
        assert out.status()["state"] == "stopped" and FakeRoom.made[1].left
        assert live.on_frame is drive_on_frame  # the drive channel's hook is given back
        n = len(drive_frames)
        await until(lambda: len(drive_frames) > n, 30, "frames after the output stopped")
        assert live.running  # the session streams on
        await live.stop()

    run(scenario(), 120)
    assert drive_frames == list(range(len(drive_frames)))  # never starved by the output


def test_an_interrupt_empties_the_sdk_audio_buffer() -> None:
    """The SDK keeps up to 200 ms of audio: an interrupt clears it with the fan-out queues."""
    avatar = load_avatar("default")

    async def scenario() -> None:
        FakeRoom.made.clear()
        engine = Engine(avatar)
        live = LiveStream(
            engine, VideoOptions(width=avatar.width, height=avatar.height), ManualClock(100.0)
        )
        await live.start()
        out = livekit.LiveKitOutput(live, CFG, "lobby", "alice", room_factory=FakeRoom)
        await out.start()
        try:
            await until(lambda: out.audio_queued_s > 0.1, 10, "the SDK's audio buffer to fill")
            live.flush()
            assert out.audio_queued_s == 0.0
        finally:
            await asyncio.wait_for(out.stop(), 30)  # a hang guard, not a speed check
            await live.stop()
        assert not live.flush_listeners  # stop() detached the output

    run(scenario(), 120)


class HeldAudioSource:
    """An SDK audio source whose capture finishes when the test says so."""

    queued_duration = 0.0

    def __init__(self) -> None:
        self.pending: asyncio.Future[None] | None = None

    async def capture_frame(self, frame: rtc.AudioFrame) -> None:
        self.pending = asyncio.get_running_loop().create_future()
        await self.pending

    def clear_queue(self) -> None:
        pass

    async def aclose(self) -> None:
        pass


@pytest.mark.parametrize("steps", [0, 1, 2, 3])
def test_stop_returns_when_a_capture_finishes_as_it_is_cancelled(steps: int) -> None:
    """A capture that completes in the loop steps around stop()'s cancel: Python 3.11's
    wait_for then returns the result and drops the cancellation, and the audio pump used to
    go on forever (stop() never returned; seen as a rare hang in CI)."""
    avatar = load_avatar("default")

    async def scenario() -> None:
        FakeRoom.made.clear()
        live = LiveStream(
            Engine(avatar),
            VideoOptions(width=avatar.width, height=avatar.height),
            ManualClock(100.0),
        )
        await live.start()
        out = livekit.LiveKitOutput(live, CFG, "lobby", "alice", room_factory=FakeRoom)
        await out.start()
        real = out._audio_source
        assert real is not None
        held = HeldAudioSource()
        try:
            await until(lambda: out.publishing, 10, "the join")
            out._audio_source = held  # type: ignore[assignment]
            await until(lambda: held.pending is not None, 10, "an audio capture")
            assert held.pending is not None
            held.pending.set_result(None)
            for _ in range(steps):
                await asyncio.sleep(0)
            stopping = asyncio.create_task(out.stop())
            # A hang guard, not a speed check (stop() takes milliseconds). asyncio.wait
            # cancels nothing: the old stop() swallowed a wait_for guard's cancellation.
            done, _ = await asyncio.wait({stopping}, timeout=15)
            if not done:
                stopping.cancel()
            assert done, "stop() did not return"
        finally:
            await live.stop()
            await real.aclose()
        assert out.status()["state"] == "stopped"
        assert not live.flush_listeners

    run(scenario(), 60)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unreachable_server_is_reported_and_the_session_streams_on() -> None:
    avatar = load_avatar("default")
    cfg = livekit.LiveKitConfig(f"ws://127.0.0.1:{_closed_port()}", KEY, SECRET, 60)

    async def scenario() -> None:
        frames: list[EngineFrame] = []
        live = LiveStream(
            Engine(avatar),
            VideoOptions(width=avatar.width, height=avatar.height),
            MonotonicClock(),
            on_frame=frames.append,
        )
        await live.start()
        out = livekit.LiveKitOutput(
            live, cfg, "lobby", "alice", backoff_s=(0.2,), connect_timeout_s=2.0
        )
        await asyncio.wait_for(out.start(), 1)  # returns at once, whatever the server does
        await until(lambda: out.failures >= 2, 60, "two failed joins")
        st = out.status()
        assert st["state"] in ("waiting", "connecting") and st["connects"] == 0
        assert "refused" in st["last_error"].lower(), st
        assert st["video_frames"] == 0 and st["audio_frames"] == 0
        n = len(frames)
        await until(lambda: len(frames) >= n + 25, 30, "frames while the output retries")
        await asyncio.wait_for(out.stop(), 30)  # a hang guard, not a speed check
        assert out.status()["state"] == "stopped"
        await live.stop()

    run(scenario(), 120)


def test_trtc_session_with_unreachable_server_comes_up_and_reports(tmp_path: Path) -> None:
    """The real media path: the output is made by the hook and the session is ready anyway."""
    settings = Settings(
        data_dir=tmp_path,
        livekit_url=f"ws://127.0.0.1:{_closed_port()}",
        livekit_api_key=KEY,
        livekit_api_secret=SECRET,
    )

    async def scenario() -> None:
        store = SqliteStore(settings.db_path)
        appkey, _ = store.create_key("k", 2)
        manager = SessionManager(settings, store, MonotonicClock(), lambda: 0.0)
        s = await manager.create(
            appkey,
            NewSession(
                user_id="bob",
                protocol="trtc",
                driver_type=1,
                asset_key="default",
                extra={"ProtocolOption": {"RoomName": "stage"}},
            ),
        )
        q = parse_qs(urlsplit(s.play_url).query)
        assert q["room"] == ["stage"]
        await until(lambda: s.status is SessionStatus.READY, 15, "the session to be ready")
        (out,) = s.host.host.outputs
        await until(lambda: out.status()["failures"] >= 1, 10, "a failed join")
        st = out.status()
        assert st["name"] == "livekit" and st["identity"] == "bob" and st["room"] == "stage"
        assert s.host.host.live is not None and s.host.host.live.running
        await manager.close_all()
        assert out.status()["state"] == "stopped"
        store.close()

    run(scenario(), 120)
