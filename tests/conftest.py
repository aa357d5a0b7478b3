"""Shared fixtures: a synthetic speech file with a pause, the avatar's mouth box, a
throwaway PostgreSQL server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from avatarcast.speech.audio import save_wav
from pg_server import PgServer, unavailable_reason


@pytest.fixture(scope="session")
def speech_with_pause(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, np.ndarray, tuple[int, int]]:
    """A WAV (22.05 kHz, to exercise resampling): speech, 1.2 s of silence, speech.

    Returns the path, the 16 kHz PCM the engine will see, and the pause as a sample range.
    """
    from avatarcast.speech.audio import resample
    from avatarcast.speech.tts import get_backend

    tts = get_backend("espeak")
    a = tts.synthesize("Hello there, my name is Bob, how are you today?", voice="en-us").pcm
    b = tts.synthesize("Thank you very much, and see you soon.", voice="en-us").pcm
    gap = np.zeros(int(1.2 * 16000), np.int16)
    pcm16 = np.concatenate([a, gap, b])
    path = tmp_path_factory.mktemp("audio") / "speech.wav"
    save_wav(path, resample(pcm16, 16000, 22050), 22050)
    return path, pcm16, (a.size, a.size + gap.size)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """One PostgreSQL server for the whole run (`.new_database()` gives each test its own
    database); the test is skipped when PostgreSQL is not installed."""
    reason = unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    server = PgServer.start()
    try:
        yield server
    finally:
        server.stop()
