"""WebRTC viewing with real peers on loopback: an aiortc client receives, decodes and checks
what the session streamed (frame size and rate, the mouth moving with the speech, the audio
carrying it), with several viewers, a stalled one, and viewers leaving."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import av
import numpy as np
import pytest
from aiortc import (
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpReceiver,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from avatarcast.avatars.base import Avatar
from avatarcast.avatars.registry import load_avatar
from avatarcast.engine.live import LiveStream
from avatarcast.engine.timeline import Engine, EngineFrame, SpeechEvent
from avatarcast.errors import RequestError
from avatarcast.render.frame import FrameState
from avatarcast.settings import Settings
from avatarcast.speech.tts import get_backend
from avatarcast.speech.visemes import MouthPose, Shape
from avatarcast.stream.clock import MonotonicClock
from avatarcast.stream.encoder import VideoOptions
from avatarcast.stream.webrtc import WebRtcOutput, use_host_addresses

SETTINGS = Settings(ice_host_addresses="127.0.0.1")  # loopback only; no ICE servers
Box = tuple[int, int, int, int]  # y0, y1, x0, x1


@pytest.fixture(scope="module")
def avatar() -> Avatar:
    return load_avatar("default")


@pytest.fixture(scope="module")
def mouth_box(avatar: Avatar) -> Box:
    """Where the mouth is: the pixels that differ between a wide-open and a closed mouth."""
    wide = avatar.render(FrameState(mouth=MouthPose(Shape.D, 1.0))).y.astype(np.int16)
    shut = avatar.render(FrameState(mouth=MouthPose(Shape.A, 0.0))).y.astype(np.int16)
    ys, xs = np.nonzero(np.abs(wide - shut) > 20)
    assert ys.size > 500, "the avatar's mouth does not move?"
    return int(ys.min()) - 4, int(ys.max()) + 5, int(xs.min()) - 4, int(xs.max()) + 5


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    return get_backend("espeak").synthesize("Hello there, how are you today?", voice="en-us").pcm


@pytest.fixture(autouse=True)
def _restore_host_addresses() -> Any:
    yield
    use_host_addresses([])  # the patch is process-wide: leave aioice as we found it


def run(coro: Coroutine[Any, Any, None], timeout_s: float = 120.0) -> None:  # hang guard
    async def bounded() -> None:
        await asyncio.wait_for(coro, timeout_s)

    asyncio.run(bounded())


# ---- the two ends ----------------------------------------------------------------------------
@dataclass
class Received:
    t: float  # arrival (monotonic)
    pts: int  # RTP timestamp, 90 kHz (a random origin + the stream's slot * 3600)
    width: int
    height: int
    mouth: np.ndarray  # Y pixels of the mouth box


@dataclass
class ClientViewer:
    """A WHEP-style viewer: recvonly video + audio, decodes everything it gets."""

    box: Box
    pc: RTCPeerConnection = field(
        default_factory=lambda: RTCPeerConnection(RTCConfiguration(iceServers=[]))
    )
    video: list[Received] = field(default_factory=list)
    audio: list[tuple[float, float]] = field(default_factory=list)  # (arrival, RMS of 20 ms)
    reading: asyncio.Event = field(default_factory=asyncio.Event)
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.reading.set()
        self.pc.addTransceiver("video", direction="recvonly")
        self.pc.addTransceiver("audio", direction="recvonly")

        @self.pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            self.tasks.append(asyncio.create_task(self._read(track)))

    async def offer(self) -> str:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return str(self.pc.localDescription.sdp)

    async def accept(self, answer_sdp: str) -> None:
        await self.pc.setRemoteDescription(RTCSessionDescription(answer_sdp, "answer"))

    async def _read(self, track: MediaStreamTrack) -> None:
        try:
            while True:
                await self.reading.wait()  # a "stalled" viewer stops here
                frame = await track.recv()
                now = time.monotonic()
                if isinstance(frame, av.VideoFrame):
                    y0, y1, x0, x1 = self.box
                    y = frame.to_ndarray(format="gray")
                    self.video.append(
                        Received(now, int(frame.pts), frame.width, frame.height, y[y0:y1, x0:x1])
                    )
                elif isinstance(frame, av.AudioFrame):
                    pcm = frame.to_ndarray().astype(np.float64)
                    self.audio.append((now, float(np.sqrt(np.mean(pcm**2)))))
        except MediaStreamError:
            self.ended.set()

    async def wait_for(self, cond: Callable[[], bool], what: str, timeout_s: float = 30.0) -> None:
        """Wait until `cond()` holds; the timeout only guards against a hang."""
        deadline = time.monotonic() + timeout_s
        while not cond():
            assert time.monotonic() < deadline, f"no {what} in {timeout_s} s"
            await asyncio.sleep(0.02)

    async def wait_frames(self, n: int) -> None:
        await self.wait_for(lambda: len(self.video) >= n, f"{n} frames")

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        await self.pc.close()


@contextlib.asynccontextmanager
async def live_session(avatar: Avatar) -> AsyncIterator[tuple[LiveStream, Engine, list[Any]]]:
    """A real engine on the wall clock; yields it with a log of (time, frame index, event)
    from on_frame (called right after the frame was published)."""
    engine = Engine(avatar)
    events: list[tuple[float, int, SpeechEvent]] = []

    def on_frame(frame: EngineFrame) -> None:
        events.extend((time.monotonic(), frame.index, e) for e, _ in frame.events)

    live = LiveStream(engine, VideoOptions(), MonotonicClock(), on_frame=on_frame)
    await live.start()
    try:
        yield live, engine, events
    finally:
        await live.stop()


async def connect(viewer: ClientViewer, output: WebRtcOutput) -> str:
    answer, rid = await output.answer(await viewer.offer())
    assert "H264/90000" in answer and "opus/48000" in answer and "VP8" not in answer
    assert " 127.0.0.1 " in answer  # our one host candidate
    await viewer.accept(answer)
    return rid


def mouth_motion(frames: list[Received]) -> list[float]:
    """Mean absolute change of the mouth box between consecutive received frames."""
    return [
        float(np.abs(b.mouth.astype(np.int16) - a.mouth.astype(np.int16)).mean())
        for a, b in itertools.pairwise(frames)
    ]


# ---- tests -----------------------------------------------------------------------------------
def test_viewer_sees_the_mouth_move_and_hears_the_speech(
    avatar: Avatar, mouth_box: Box, speech: np.ndarray
) -> None:
    async def main() -> None:
        async with live_session(avatar) as (live, engine, events):
            output = WebRtcOutput(live, SETTINGS)
            viewer = ClientViewer(mouth_box)
            try:
                await connect(viewer, output)
                await viewer.wait_frames(1)
                t_first = viewer.video[0].t
                await viewer.wait_frames(40)  # idle: mouth still, audio silent
                await asyncio.to_thread(engine.say_audio, speech)
                await viewer.wait_for(lambda: len(events) >= 2, "speech start and end")
                (t_start, i_start, e_start), (t_end, i_end, e_end) = events
                assert (e_start, e_end) == (SpeechEvent.START, SpeechEvent.END)
                assert i_end - i_start + 1 == -(-speech.size // 640)  # every frame of it
                # the frames published after the speech's last one reach the viewer
                await viewer.wait_for(lambda: viewer.video[-1].t > t_end + 0.2, "later frames")

                assert {(r.width, r.height) for r in viewer.video} == {(540, 960)}
                # One frame per 40 ms of the stream's timeline (RTP clock, wraps at 2**32):
                # slots a loaded machine skipped are whole frames missing, never a drift.
                steps = [(b.pts - a.pts) % 2**32 for a, b in itertools.pairwise(viewer.video)]
                assert all(d > 0 and d % 3600 == 0 for d in steps), steps

                # Frames that arrived before the speech's first frame was sent were sent
                # before it; frames arriving inside the speech (after loopback latency) show it.
                before = [r for r in viewer.video if t_first + 0.2 < r.t < t_start]
                during = [r for r in viewer.video if t_start + 0.15 < r.t < t_end]
                still, moving = mouth_motion(before), mouth_motion(during)
                assert len(still) > 25 and len(moving) > 15
                assert float(np.percentile(still, 95)) < 1.5, still
                assert float(np.mean(moving)) > 3.0 and max(moving) > 10.0, moving

                quiet = [rms for t, rms in viewer.audio if t_first + 0.2 < t < t_start]
                loud = [rms for t, rms in viewer.audio if t_start + 0.15 < t < t_end]
                assert len(quiet) > 50 and len(loud) > 30
                assert max(quiet) < 30, max(quiet)
                assert np.mean(np.array(loud) > 300) > 0.5 and max(loud) > 2000
            finally:
                await viewer.close()
                await output.close_all()

    run(main())


def test_two_viewers_and_a_stalled_one_does_not_slow_the_other(
    avatar: Avatar, mouth_box: Box
) -> None:
    async def main() -> None:
        async with live_session(avatar) as (live, _engine, _events):
            output = WebRtcOutput(live, SETTINGS)
            a, b = ClientViewer(mouth_box), ClientViewer(mouth_box)
            # A consumer on the server that never reads: the worst kind of slow viewer.
            stuck = live.video.subscribe(max_queue=10)
            try:
                await connect(a, output)
                await connect(b, output)
                await a.wait_frames(5)
                await b.wait_frames(5)
                assert output.viewers == 2 and live.viewers == 3
                b.reading.clear()  # viewer b stops reading its tracks
                b_frames, a_frames = len(b.video), len(a.video)
                published = live.frames_sent
                # 3 s of stream time later (counted in frames, however long that takes)...
                await a.wait_for(lambda: live.frames_sent >= published + 75, "75 more frames")
                # ...viewer a has kept receiving, b got nothing more, and the server-side
                # consumer that never reads holds at most its 10 frames.
                await a.wait_for(lambda: len(a.video) >= a_frames + 50, "frames at viewer a")
                assert len(b.video) <= b_frames + 1
                assert stuck.queued <= 10 and stuck.dropped > 50
            finally:
                stuck.close()
                await a.close()
                await b.close()
                await output.close_all()

    run(main())


def test_viewers_leave_on_close_on_hangup_and_when_the_stream_ends(
    avatar: Avatar, mouth_box: Box
) -> None:
    async def main() -> None:
        viewers = [ClientViewer(mouth_box) for _ in range(3)]
        try:
            async with live_session(avatar) as (live, _engine, _events):
                output = WebRtcOutput(live, SETTINGS)
                rids = [await connect(v, output) for v in viewers]
                for v in viewers:
                    await v.wait_frames(3)
                # 1. the server closes one (WHEP DELETE)
                assert await output.close(rids[0])
                assert not await output.close(rids[0])
                await asyncio.wait_for(viewers[0].ended.wait(), 30)
                # 2. a viewer hangs up: the server notices and drops it
                await viewers[1].close()
                await viewers[0].wait_for(lambda: output.viewers == 1, "the hang-up noticed")
                assert output.viewer(rids[1]) is None
            # 3. the live stream stopped: the last viewer is disconnected
            await asyncio.wait_for(viewers[2].ended.wait(), 30)
            await viewers[0].wait_for(lambda: output.viewers == 0, "the last viewer gone")
            assert output.closed
            with pytest.raises(Exception, match="ended"):
                await output.answer(await ClientViewer(mouth_box).offer())
        finally:
            for v in viewers:
                await v.close()

    run(main())


def test_bad_offers_are_refused(avatar: Avatar, mouth_box: Box) -> None:
    async def main() -> None:
        async with live_session(avatar) as (live, _engine, _events):
            output = WebRtcOutput(live, SETTINGS)
            with pytest.raises(RequestError):
                await output.answer("hello")
            vp8_only = ClientViewer(mouth_box)
            caps = RTCRtpReceiver.getCapabilities("video")
            assert caps is not None
            vp8 = [c for c in caps.codecs if c.mimeType == "video/VP8"]
            vp8_only.pc.getTransceivers()[0].setCodecPreferences(vp8)
            with pytest.raises(RequestError):
                await output.answer(await vp8_only.offer())
            await vp8_only.close()
            assert output.viewers == 0 and live.viewers == 0

    run(main())
