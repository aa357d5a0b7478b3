"""An interrupt empties every output's queue: the next frame a viewer's track hands over is
made after the interrupt (a keyframe with the mouth closed, silent audio), not the speech that
was queued for it.

The whole server-side path runs: a session's real media (engine, drive channel, live stream)
on a stepped manual clock, the interrupt sent to the drive channel as the client sends it,
and the WebRTC tracks that aiortc's sender reads (`H264Track`, `OpusTrack`) held by a viewer
that fell behind. What the tracks hand over is decoded and checked.
"""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from avatarcast.avatars.registry import load_avatar
from avatarcast.engine.live import LiveStream
from avatarcast.engine.timeline import REST, Engine, EngineFrame
from avatarcast.sessions.media import attach_media, detach_media
from avatarcast.sessions.session import Session, SessionStatus
from avatarcast.settings import Settings
from avatarcast.speech.tts import get_backend
from avatarcast.stream.clock import ManualClock
from avatarcast.stream.encoder import VideoOptions
from avatarcast.stream.webrtc import H264Track, OpusTrack

FRAME_S = 0.04


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    text = "I am going to tell you all about the amazing things in our shop today."
    return get_backend("espeak").synthesize(text, voice="en-us").pcm


def run(coro: Coroutine[Any, Any, None]) -> None:
    async def bounded() -> None:
        await asyncio.wait_for(coro, 60)

    asyncio.run(bounded())


class Frames:
    """The engine frames the live stream made, in order (its `on_frame` hook, chained)."""

    def __init__(self, live: LiveStream) -> None:
        self.made: list[EngineFrame] = []
        self._inner = live.on_frame
        self._new = asyncio.Event()
        live.on_frame = self._on_frame

    def _on_frame(self, frame: EngineFrame) -> None:
        if self._inner is not None:
            self._inner(frame)
        self.made.append(frame)
        self._new.set()

    async def step(self, clock: ManualClock, n: int = 1) -> None:
        """Let `n` more frames be made: move the clock one frame at a time."""
        for _ in range(n):
            want = len(self.made) + 1
            clock.advance(FRAME_S)
            while len(self.made) < want:
                self._new.clear()
                await self._new.wait()


def decode_h264(packet: av.Packet) -> np.ndarray:
    """Luma of one access unit, decoded on its own (it must be a keyframe)."""
    dec = av.CodecContext.create("h264", "r")
    frames = dec.decode(av.Packet(bytes(packet))) + dec.decode(None)
    assert len(frames) == 1, "not decodable on its own: not a keyframe"
    frame = frames[0]
    return frame.to_ndarray(format="yuv420p")[: frame.height]  # Y as coded (limited range)


def decode_opus(packets: list[av.Packet]) -> np.ndarray:
    dec = av.CodecContext.create("libopus", "r")
    dec.sample_rate, dec.layout = 16000, "mono"  # type: ignore[attr-defined]
    out = [f.to_ndarray().reshape(-1) for p in packets for f in dec.decode(av.Packet(bytes(p)))]
    return np.concatenate(out)


def test_interrupt_flushes_the_viewer_queues_of_a_session(
    tmp_path: Path, speech: np.ndarray
) -> None:
    settings = Settings(data_dir=tmp_path, log_level="warning").validate()
    session = Session("flush1", "k", "u", "default", "webrtc", 3, status=SessionStatus.READY)
    session.started = True

    async def main() -> None:
        clock = ManualClock(100.0, auto_advance=False)
        await attach_media(session, settings, clock)
        live, engine, drive = session.host.host.live, session.host.host.engine, session.drive
        assert live is not None and engine is not None and drive is not None
        frames = Frames(live)
        sent: list[dict[str, Any]] = []

        async def to_client(message: dict[str, Any]) -> None:
            sent.append(message)

        drive.attach(to_client)
        video, audio = H264Track(live, queue_ms=400), OpusTrack(live, queue_ms=400)
        try:
            # The viewer connects (its first recv subscribes and asks for an IDR), reads
            # one frame, then falls behind while the speech plays: 8 frames queue up.
            first_v = asyncio.create_task(video.recv())
            first_a = asyncio.create_task(audio.recv())
            while not (first_v.done() and first_a.done()):  # the IDR is rate-limited
                await frames.step(clock)
            assert first_v.result().is_keyframe
            engine.say_audio(speech)
            await frames.step(clock, 8)
            queued = [f for f in frames.made[-8:]]
            assert all(f.audio.any() for f in queued[2:])  # speech was waiting for the viewer
            assert live.video.subscribers >= 1

            # The client interrupts, as on the wire (a bare SEND_AUDIO Interrupt).
            bare: dict[str, Any] = {
                "Header": {},
                "Payload": {
                    "ReqId": uuid.uuid4().hex,
                    "SessionId": session.id,
                    "Command": "SEND_AUDIO",
                    "Data": {"Interrupt": True},
                },
            }
            await drive.handle_raw(json.dumps(bare))
            await drive.flush()
            assert not [m for m in sent if m["Type"] == 9], [m.get("ErrorMessage") for m in sent]
            cut_at = len(frames.made)  # frames made from here on are after the interrupt
            await frames.step(clock, 2)

            pv = await asyncio.wait_for(video.recv(), 5)
            pa = [await asyncio.wait_for(audio.recv(), 5) for _ in range(2)]
            after = frames.made[cut_at]
            # The first picture after the interrupt: a keyframe of the first frame made
            # after it, whose mouth is at rest, with silence.
            assert pv.is_keyframe and pv.pts == after.index * 3600
            assert [p.pts for p in pa] == [after.index * 640, after.index * 640 + 320]
            assert after.mouth == REST and not after.audio.any()
            luma = decode_h264(pv)
            expected = after.video.y
            assert float(np.abs(luma.astype(np.int16) - expected).mean()) < 2.0
            # Silence, after the encoder's few ms of lookahead into the cut speech.
            pcm = decode_opus(pa).astype(np.float64)
            speech_rms = float(np.sqrt(np.mean(speech.astype(np.float64) ** 2)))
            assert float(np.sqrt(np.mean(pcm**2))) < 0.15 * speech_rms
            assert float(np.sqrt(np.mean(pcm[320:] ** 2))) < 0.05 * speech_rms
            assert live.flushes == 1
            # An interrupt with nothing speaking cuts nothing and flushes nothing.
            bare["Payload"]["ReqId"] = uuid.uuid4().hex
            await drive.handle_raw(json.dumps(bare))
            await drive.flush()
            assert live.flushes == 1 and not [m for m in sent if m["Type"] == 9]
        finally:
            video.stop()
            audio.stop()
            await detach_media(session)

    run(main())


def test_a_frame_being_made_when_the_interrupt_comes_is_not_published(speech: np.ndarray) -> None:
    """The frame job on the worker thread may have rendered the speech before the interrupt:
    the live stream drops it and makes the next frame an IDR, so nothing stale goes out."""
    engine = Engine(load_avatar("default"))
    engine.say_audio(speech)
    cut = 12  # interrupted while frame 12 (speech) is being encoded
    made: list[EngineFrame] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        done = asyncio.Event()

        def interrupt() -> None:
            engine.interrupt()
            live.flush()

        def sei_for(frame: EngineFrame) -> bytes | None:  # on the worker, mid-job
            if frame.index == cut:
                handled = threading.Event()
                loop.call_soon_threadsafe(lambda: (interrupt(), handled.set()))
                assert handled.wait(10)
            return None

        def on_frame(frame: EngineFrame) -> None:
            made.append(frame)
            if len(made) == cut + 6:
                done.set()

        live = LiveStream(
            engine, VideoOptions(), ManualClock(100.0), on_frame=on_frame, sei_for=sei_for
        )
        video = live.video.subscribe(max_queue=10_000)
        audio = live.audio.subscribe(max_queue=10_000)
        await live.start()
        await done.wait()
        await live.stop()
        assert live.discarded_frames == 1 and live.flushes == 1
        # Frames 0..11 were queued and flushed; 12 was made with the speech but never sent.
        assert made[cut].audio.any() and made[cut].utterance_id is not None
        first_v, first_a = video.get_nowait(), audio.get_nowait()
        assert first_v is not None and first_a is not None
        assert (first_v.index, first_v.keyframe, first_a.index) == (cut + 1, True, cut + 1)
        assert made[cut + 1].mouth == REST and not made[cut + 1].audio.any()
        luma = decode_h264(first_v.packets[0])
        assert float(np.abs(luma.astype(np.int16) - made[cut + 1].video.y).mean()) < 2.0
        # Every frame was still seen by on_frame (the drive channel counts on it).
        assert [f.index for f in made] == list(range(len(made)))

    run(main())
