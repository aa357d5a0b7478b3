"""A session's media honours the settings: the TTS backend it speaks with, the Opus bitrate."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from avatarcast.engine.host import build_engine
from avatarcast.sessions.media import attach_media, detach_media
from avatarcast.sessions.session import Session
from avatarcast.settings import Settings
from avatarcast.speech import tts
from avatarcast.speech.espeak import EspeakBackend
from avatarcast.stream.clock import ManualClock

TEXT = "Bob made a map of the bay."


def test_tts_backend_setting_is_the_backend_the_session_speaks_with(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A second real backend: espeak configured with half a second of silence at each end,
    # so its speech is recognisably its own (0.9 s longer than the default's).
    monkeypatch.setitem(tts._FACTORIES, "espeak-padded", lambda: EspeakBackend(edge_silence_s=0.5))
    session = Session("tts1", "k", "u", "default", "webrtc", 3)

    async def spoken(backend: str) -> np.ndarray:
        settings = Settings(data_dir=tmp_path, tts_backend=backend).validate()
        engine = await asyncio.to_thread(build_engine, session.host_spec(), settings)
        assert engine.tts is tts.get_backend(backend)
        return engine.say_text(TEXT).pcm

    plain, padded = asyncio.run(spoken("espeak")), asyncio.run(spoken("espeak-padded"))
    assert (padded.size - plain.size) / 16000 == pytest.approx(0.9, abs=0.05)
    # The padding is silence: the voice in between is the same espeak voice.
    assert not padded[: 8000 - 800].any() and plain[800:1600].any()


def _speech_kbps(bitrate_kbps: int, tmp_path: Path, speech: np.ndarray) -> float:
    """The Opus bitrate of the speech frames a session publishes (from packet sizes)."""
    settings = Settings(data_dir=tmp_path, audio_bitrate_kbps=bitrate_kbps).validate()
    session = Session(f"ab{bitrate_kbps}", "k", "u", "default", "webrtc", 3)

    async def main() -> float:
        await attach_media(session, settings, ManualClock(100.0))
        assert session.host.host.live is not None and session.host.host.engine is not None
        sub = session.host.host.live.audio.subscribe(max_queue=10_000)
        session.host.host.live.want_opus()  # as a WebRTC viewer does
        session.host.host.engine.say_audio(speech)
        n_frames = -(-speech.size // 640)
        sizes: list[int] = []
        chunks = 0
        while len(sizes) < 2 * n_frames:  # the speech's 20 ms packets, from its first sound
            chunk = await asyncio.wait_for(sub.get(), 30)
            chunks += 1
            assert chunks < 4 * n_frames + 250, "the speech's Opus packets never came"
            if sizes or chunk.pcm.any():
                sizes.extend(p.size for p in chunk.opus)
        await detach_media(session)
        return sum(sizes) * 8 / (len(sizes) * 0.020) / 1000

    return asyncio.run(main())


def test_audio_bitrate_setting_reaches_the_opus_encoder(tmp_path: Path) -> None:
    speech = tts.get_backend("espeak").synthesize(TEXT * 2, voice="en-us").pcm
    low = _speech_kbps(16, tmp_path, speech)
    high = _speech_kbps(64, tmp_path, speech)
    # Constrained VBR lands near its target on speech; before, both were ~26 kbps (32 kbps).
    assert 10 < low < 20, low
    assert 45 < high < 72, high
