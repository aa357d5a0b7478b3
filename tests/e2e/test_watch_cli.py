"""`avatarcast watch` records what a WHEP viewer receives: pictures and the spoken text."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import av
import numpy as np

from avatarcast.api.server import run_server_in_thread
from avatarcast.client import Client
from avatarcast.sessions.store_sqlite import SqliteStore
from avatarcast.settings import Settings
from avatarcast.stream.webrtc import use_host_addresses


def test_watch_records_the_live_stream(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path / "data", log_level="warning", ice_host_addresses="127.0.0.1"
    ).validate()
    store = SqliteStore(settings.db_path)
    appkey, token = store.create_key("watch", 2)
    store.close()
    base_url, stop = run_server_in_thread(settings)
    try:
        with Client(base_url, appkey, token) as client:
            sid = client.create_session_by_asset("default", user_id="watcher")["SessionId"]
            client.wait_ready(sid, timeout_s=30)
            client.start_session(sid)
            play_url = client.stat_session(sid)["PlayStreamAddr"]
            out = tmp_path / "live.mp4"

            watching = threading.Event()

            def speak_while_watching() -> None:
                # When the watcher joins depends on process start-up: speak a short line
                # every 1.5 s (about 1 s of speech, then silence) until it is done, so its
                # 5 s always hold both, however late it joined.
                while not watching.wait(1.5):
                    client.command(sid, "SEND_TEXT", {"Text": "Hello there."})

            talker = threading.Thread(target=speak_while_watching)
            talker.start()
            r = subprocess.run(
                [sys.executable, "-m", "avatarcast", "watch", "--url", play_url,
                 "--seconds", "5", "--out", str(out), "--ice-host-addresses", "127.0.0.1"],
                capture_output=True, text=True, timeout=60,
            )  # fmt: skip
            watching.set()
            talker.join(timeout=10)
            assert r.returncode == 0, r.stderr
            client.close_session(sid)
    finally:
        stop()
        use_host_addresses([])
    with av.open(str(out)) as c:
        frames = [f.to_ndarray(format="yuv420p") for f in c.decode(video=0)]
    with av.open(str(out)) as c:
        audio = np.concatenate([f.to_ndarray().reshape(-1) for f in c.decode(audio=0)])
    assert len(frames) >= 10  # 5 s of watching (the rate is not a test bound)
    assert frames[0].shape == (960 * 3 // 2, 540)
    # The person is there: the face is skin-coloured luma in the middle, not a blank frame.
    assert 120 < frames[0][400:440, 250:290].mean() < 230
    # The text was spoken while recording: the sound has silence (before the text; when the
    # recording starts depends on process start-up, so no fixed time) and loud speech.
    env = np.abs(audio[: audio.size - audio.size % 640]).reshape(-1, 640).mean(axis=1)
    assert (env < 0.005).sum() >= 10  # at least 0.4 s of silence
    assert env.max() > 0.05
