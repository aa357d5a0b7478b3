"""Recording output: with `record_sessions` on, a session leaves a complete MP4 when it closes."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from avatarcast.engine.timeline import SpeechEvent
from avatarcast.sessions.media import attach_media, detach_media
from avatarcast.sessions.session import Session
from avatarcast.settings import Settings
from avatarcast.speech.tts import get_backend
from avatarcast.stream.clock import MonotonicClock
from avatarcast.stream.record import RecordOutput
from avatarcast.stream.sei import find_sei


async def until(cond: Callable[[], bool], what: str, timeout_s: float = 60.0) -> None:
    """Wait for a condition; the timeout only guards against a hang."""
    deadline = time.monotonic() + timeout_s
    while not cond():
        assert time.monotonic() < deadline, f"no {what} in {timeout_s} s"
        await asyncio.sleep(0.02)


def test_recording_is_a_complete_mp4_of_the_session(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, record_sessions=True, log_level="warning").validate()
    session = Session("rec1", "k", "u", "default", "webrtc", 3)
    speech = get_backend("espeak").synthesize("Recording for the audit.", voice="en-us").pcm

    async def main() -> tuple[int, int]:
        await attach_media(session, settings, MonotonicClock())
        assert session.host.host.live is not None and session.host.host.engine is not None
        (rec,) = [o for o in session.host.host.outputs if isinstance(o, RecordOutput)]
        ended: list[int] = []
        session.host.host.live.frame_listeners.append(
            lambda f: ended.extend(f.index for e, _ in f.events if e is SpeechEvent.END)
        )
        await until(lambda: rec.frames >= 12, "half a second recorded")  # silent so far
        session.host.host.engine.push_audio(speech, "utt-1")
        session.host.host.engine.end_audio()
        await until(lambda: bool(ended), "the speech's last frame")
        last = session.host.host.live.frames_sent
        await until(lambda: rec.frames >= last - 10, "the recorder to catch up")
        assert rec.status()["state"] == "recording"
        assert not rec.path.exists() and rec.part.exists()  # not final before close
        await detach_media(session)
        return rec.frames, session.host.host.live.frames_sent

    recorded, produced = asyncio.run(main())
    path = settings.record_path / "rec1.mp4"
    assert path.exists() and not path.with_name("rec1.mp4.part").exists()
    assert 0 < recorded <= produced  # from the first keyframe after start
    with av.open(str(path)) as c:
        vs, aus = c.streams.video[0], c.streams.audio[0]
        assert (vs.codec_context.width, vs.codec_context.height) == (540, 960)
        assert aus.codec_context.sample_rate == 48000
        duration_s = float(c.duration or 0) / av.time_base
        pts = [p.pts for p in c.demux(video=0) if p.size]
    # The file's timeline is the stream's slots: frames the live stream skipped on a loaded
    # machine stay gaps (one frame is 3600 at 90 kHz), so the span counts slots, not frames.
    assert vs.time_base == Fraction(1, 90000) and pts[0] == 0
    assert all(b > a and (b - a) % 3600 == 0 for a, b in itertools.pairwise(pts))
    span_s = (pts[-1] + 3600) / 90000
    assert abs(duration_s - span_s) < 0.1, (duration_s, span_s)
    with av.open(str(path)) as c:
        pictures = list(c.decode(video=0))
    assert len(pictures) == len(pts) == recorded
    assert all(p.width == 540 and p.height == 960 for p in pictures)
    with av.open(str(path)) as c:
        pcm = np.concatenate([f.to_ndarray().reshape(-1) for f in c.decode(audio=0)])
    assert abs(pcm.size / 48000 - span_s) < 0.15  # missing audio slots are filled with silence
    # The speech is in the file: loud where it played, and the frames carry no stray SEI.
    assert float(np.sqrt(np.mean(pcm**2))) > 0.01
    assert float(np.abs(pcm[:12000]).max()) < 0.01  # the first 0.25 s were silent
    with av.open(str(path)) as c:
        assert all(find_sei(bytes(p)) == [] for p in c.demux(video=0) if p.size)
