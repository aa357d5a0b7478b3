"""Recording output: with `record_sessions` on, a session leaves a complete MP4 when it closes."""

from __future__ import annotations

import asyncio
from pathlib import Path

import av
import numpy as np

from avatarcast.sessions.media import attach_media, detach_media
from avatarcast.sessions.session import Session
from avatarcast.settings import Settings
from avatarcast.speech.tts import get_backend
from avatarcast.stream.clock import MonotonicClock
from avatarcast.stream.record import RecordOutput
from avatarcast.stream.sei import find_sei


def test_recording_is_a_complete_mp4_of_the_session(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, record_sessions=True, log_level="warning").validate()
    session = Session("rec1", "k", "u", "default", "webrtc", 3)
    speech = get_backend("espeak").synthesize("Recording for the audit.", voice="en-us").pcm

    async def main() -> tuple[int, int]:
        await attach_media(session, settings, MonotonicClock())
        assert session.live is not None and session.engine is not None
        (rec,) = [o for o in session.outputs if isinstance(o, RecordOutput)]
        await asyncio.sleep(0.5)
        session.engine.push_audio(speech, "utt-1")
        session.engine.end_audio()
        await asyncio.sleep(speech.size / 16000 + 1.0)
        assert rec.status()["state"] == "recording"
        assert not rec.path.exists() and rec.part.exists()  # not final before close
        await detach_media(session)
        return rec.frames, session.live.frames_sent

    recorded, produced = asyncio.run(main())
    path = settings.record_path / "rec1.mp4"
    assert path.exists() and not path.with_name("rec1.mp4.part").exists()
    assert produced - 10 <= recorded <= produced  # from the first keyframe after start
    with av.open(str(path)) as c:
        vs, aus = c.streams.video[0], c.streams.audio[0]
        assert (vs.codec_context.width, vs.codec_context.height) == (540, 960)
        assert aus.codec_context.sample_rate == 48000
        duration_s = float(c.duration or 0) / av.time_base
        assert abs(duration_s - recorded / 25) < 0.15, duration_s
        pictures = list(c.decode(video=0))
    assert len(pictures) == recorded
    assert all(p.width == 540 and p.height == 960 for p in pictures)
    with av.open(str(path)) as c:
        pcm = np.concatenate([f.to_ndarray().reshape(-1) for f in c.decode(audio=0)])
    assert abs(pcm.size / 48000 - recorded / 25) < 0.15
    # The speech is in the file: loud where it played, and the frames carry no stray SEI.
    assert float(np.sqrt(np.mean(pcm**2))) > 0.01
    assert float(np.abs(pcm[:12000]).max()) < 0.01  # the first 0.25 s were silent
    with av.open(str(path)) as c:
        assert all(find_sei(bytes(p)) == [] for p in c.demux(video=0) if p.size)
