"""RTMP output against a real RTMP server: Debian's nginx with the RTMP module, on loopback.

A session created with `Protocol: rtmp` pushes to the nginx started here; the test reads the
stream back from nginx with PyAV as any player would, and checks what it decodes: 540x960 at
25 fps with keyframes at most 2 s apart, AAC audio, and the SEI of an utterance sent with
`VideoSeiInfo` on exactly its frames (AudioStart on the first, AudioOver on the last) while
its speech is audible. Then nginx is killed mid-stream and started again on the same port: the
output reconnects, the stream plays again, and the session never stopped producing frames.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from websockets.sync.client import connect as ws_connect

from avatarcast.client import ApiError, Client
from avatarcast.codes import wire_code
from avatarcast.errors import RequestError
from avatarcast.sessions.media import attach_media
from avatarcast.sessions.session import Session
from avatarcast.settings import Settings
from avatarcast.speech.tts import get_backend
from avatarcast.stream.clock import MonotonicClock
from avatarcast.stream.rtmp import RtmpOutput, play_url, push_url
from avatarcast.stream.sei import SeiMessage, find_sei
from server_harness import live_server

NGINX = "/usr/sbin/nginx"
RTMP_MODULE = "/usr/lib/nginx/modules/ngx_rtmp_module.so"
SEI_TEXT = '{"scene": "rtmp-test", "n": 1}'

pytestmark = pytest.mark.skipif(
    not (os.path.exists(NGINX) and os.path.exists(RTMP_MODULE)),
    reason="needs Debian's nginx and libnginx-mod-rtmp (apt-get install nginx libnginx-mod-rtmp)",
)


# ---- a real RTMP server ------------------------------------------------------------------------
class Nginx:
    """A foreground nginx with the RTMP module, its own prefix, listening on 127.0.0.1:port."""

    def __init__(self, prefix: Path, port: int) -> None:
        self.prefix, self.port = prefix, port
        (prefix / "logs").mkdir(parents=True, exist_ok=True)
        self.conf = prefix / "nginx.conf"
        self.conf.write_text(
            f"load_module {RTMP_MODULE};\n"
            # One process (no master): a SIGKILL takes the whole server down at once.
            f"daemon off; master_process off; pid {prefix}/nginx.pid;\n"
            f"error_log {prefix}/logs/error.log info;\n"
            "events { worker_connections 256; }\n"
            f"rtmp {{ server {{ listen 127.0.0.1:{port}; chunk_size 4096;\n"
            "  application live { live on; record off; wait_key on; } } }\n"
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 5.0) -> None:
        self.proc = subprocess.Popen(
            [NGINX, "-c", str(self.conf), "-p", f"{self.prefix}/"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                raise RuntimeError(f"nginx exited: {err}")
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("nginx did not listen in time")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.proc.stderr:
            self.proc.stderr.close()
        self.proc = None
        # Wait until the port is free again (it is reused on restart).
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) != 0:
                    return
            time.sleep(0.05)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def nginx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Nginx]:
    server = Nginx(tmp_path_factory.mktemp("nginx"), free_port())
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


@pytest.fixture(scope="module")
def stack(nginx: Nginx, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("rtmp"),
        log_level="warning",
        ice_host_addresses="127.0.0.1",
        rtmp_ingest_url=f"rtmp://127.0.0.1:{nginx.port}/live",
        rtmp_play_url_template=f"rtmp://127.0.0.1:{nginx.port}/live/{{stream_key}}",
        rtmp_reconnect_max_s=1.0,
    ).validate()
    sessions: dict[str, Session] = {}
    clock = MonotonicClock()

    async def media(session: Session) -> None:  # the real media, with the session kept at hand
        sessions[session.id] = session
        await attach_media(session, settings, clock)

    with (
        live_server(settings, media_factory=media, key_name="e2e-rtmp") as server,
        server.client() as client,
    ):
        yield Stack(client, sessions, settings)


# ---- a player ----------------------------------------------------------------------------------
@dataclass
class Frame:
    pts_ms: int
    keyframe: bool
    arrived: float  # time.monotonic() once decoded
    width: int
    height: int
    sei: list[SeiMessage]


@dataclass
class Player:
    """Reads an RTMP URL with PyAV on a thread, decoding video and audio as they come."""

    url: str
    video: list[Frame] = field(default_factory=list)
    audio: list[tuple[int, np.ndarray]] = field(default_factory=list)  # (pts ms, samples)
    audio_rate: int = 0
    error: str = ""
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> Player:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join(10)

    def _run(self) -> None:
        try:
            with av.open(self.url, timeout=(10, 5)) as c:
                # A player's decoder: frame threads would hold frames back (latency figure).
                c.streams.video[0].codec_context.thread_type = "SLICE"
                for packet in c.demux():
                    if self._stop.is_set():
                        return
                    if packet.size == 0:
                        continue
                    data = bytes(packet)
                    for f in packet.decode():
                        if isinstance(f, av.VideoFrame):
                            sei = find_sei(data)
                            pts = int(packet.pts or 0)
                            self.video.append(
                                Frame(
                                    pts,
                                    packet.is_keyframe,
                                    time.monotonic(),
                                    f.width,
                                    f.height,
                                    sei,
                                )
                            )
                        elif isinstance(f, av.AudioFrame):
                            self.audio_rate = f.sample_rate
                            pcm = f.to_ndarray().reshape(-1)
                            self.audio.append((int(f.pts * 1000 * f.time_base), pcm))
        except Exception as exc:  # the server went away: what was read stays
            self.error = str(exc)

    def wait(self, frames: int, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while len(self.video) < frames and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(self.video) >= frames, f"only {len(self.video)} frames ({self.error})"


def rtmp_output(session: Session) -> RtmpOutput:
    (out,) = [o for o in session.host.host.outputs if isinstance(o, RtmpOutput)]
    return out


def wait_until(cond: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def send_speech(client: Client, sid: str, pcm: np.ndarray) -> None:
    """SEND_AUDIO with VideoSeiInfo: 1 s chunks, then the final packet."""
    req = "a" * 32
    step = 16000
    seq = 0
    for seq, k in enumerate(range(0, pcm.size, step), start=1):
        chunk = base64.b64encode(pcm[k : k + step].astype("<i2").tobytes()).decode()
        data = {"Audio": chunk, "Seq": seq, "IsFinal": False, "VideoSeiInfo": SEI_TEXT}
        client.command(sid, "SEND_AUDIO", data, req_id=req)
    client.command(sid, "SEND_AUDIO", {"Audio": "", "Seq": seq + 1, "IsFinal": True}, req_id=req)


# ---- the tests ---------------------------------------------------------------------------------
def test_rtmp_session_plays_back_with_sei_and_survives_a_server_restart(
    stack: Stack, nginx: Nginx
) -> None:
    c = stack.client
    created = c.create_session_by_asset("default", "rtmp-user", protocol="rtmp")
    sid = created["SessionId"]
    play = created["PlayStreamAddr"]
    assert play == f"rtmp://127.0.0.1:{nginx.port}/live/{sid}"
    c.wait_ready(sid, 15)
    c.start_session(sid)
    session = stack.sessions[sid]
    live, out = session.host.host.live, rtmp_output(session)
    assert live is not None and live.pacer is not None
    speech = get_backend("espeak").synthesize("Hello from the RTMP test.", voice="en-us").pcm
    try:
        # 1. Play it back: picture, rate, keyframes, audio; then speak with VideoSeiInfo.
        with Player(play) as player:
            player.wait(25, 15)
            send_speech(c, sid, speech)
            speech_s = speech.size / 16000
            wait_until(
                lambda: any(m.status == "AudioOver" for f in player.video for m in f.sei),
                speech_s + 8,
                "the AudioOver SEI",
            )
            time.sleep(0.5)
        first_slot = out.first_slot
        frames = player.video
        assert player.error == "", player.error
        assert {(f.width, f.height) for f in frames} == {(540, 960)}
        steps = np.diff([f.pts_ms for f in frames])
        # 25 fps timeline: consecutive slots, 40 ms apart (a loaded machine may skip slots:
        # still on the 40 ms grid, never a drift). Arrival cadence is not a test bound.
        assert np.all(steps > 0) and np.all(steps % 40 == 0), steps
        # an IDR at least every 50 frames (2 s of a stream that skipped no slot)
        keys = [i for i, f in enumerate(frames) if f.keyframe]
        assert len(keys) >= 2 and max(np.diff(keys)) <= 50, f"keyframes at frames {keys}"
        assert player.audio_rate == 48000 and len(player.audio) > 50

        # SEI: exactly the utterance's frames, AudioStart on the first, AudioOver on the last.
        with_sei = [i for i, f in enumerate(frames) if f.sei]
        assert with_sei == list(range(with_sei[0], with_sei[-1] + 1)), "one contiguous run"
        msgs = [frames[i].sei[0] for i in with_sei]
        assert all(len(frames[i].sei) == 1 for i in with_sei)
        assert {m.sei_data for m in msgs} == {SEI_TEXT}
        assert [m.status for m in msgs] == ["AudioStart"] + [""] * (len(msgs) - 2) + ["AudioOver"]
        assert abs(len(msgs) - speech.size / 640) <= 1.5
        # ... and those frames are the ones whose audio is the speech.
        start_ms, over_ms = frames[with_sei[0]].pts_ms, frames[with_sei[-1]].pts_ms

        def rms(lo: int, hi: int) -> float:
            parts = [pcm for pts, pcm in player.audio if lo <= pts < hi]
            return float(np.sqrt(np.mean(np.concatenate(parts) ** 2))) if parts else 0.0

        assert rms(start_ms, over_ms) > 0.02
        assert rms(start_ms - 1500, start_ms - 100) < 0.002
        assert first_slot is not None  # (push-to-decode latency is not a test bound)

        # 2. The server dies mid-stream and comes back on the same port. A client on the
        # command channel is told (Type 10 notices), and statsession shows the output's state.
        notices: list[dict[str, object]] = []
        ws = ws_connect(c.command_channel_url(sid), open_timeout=5, legacy=True)

        def listen() -> None:
            with contextlib.suppress(Exception):
                for raw in ws:
                    msg = json.loads(raw)
                    if msg.get("Type") == 10:
                        notices.append(msg)

        listener = threading.Thread(target=listen, daemon=True)
        listener.start()
        nginx.stop(signal.SIGKILL)
        wait_until(lambda: out.state == "reconnecting", 30, "the output to notice")
        assert out.last_error
        before = live.frames_sent  # from here on the server is down...
        # ...until a few attempts against the closed port have failed
        wait_until(lambda: out.failed_attempts >= 3, 60, "failed reconnects")
        during = live.frames_sent - before
        nginx.start()
        wait_until(lambda: out.reconnects >= 1 and out.state == "streaming", 60, "a reconnect")
        status = out.status()
        assert status["reconnects"] >= 1 and status["state"] == "streaming", status
        # The session never stopped: frames kept being published while the server was down
        # (its frame rate then is not a test bound; outputs write on their own thread).
        assert during > 0, during
        stat = c.stat_session(sid)
        assert stat["SessionStatus"] == 1
        assert [o["state"] for o in stat["Outputs"]] == ["streaming"]
        assert stat["Outputs"][0]["reconnects"] >= 1
        wait_until(lambda: any("resumed" in str(n["Message"]) for n in notices), 5, "notices")
        ws.close()
        listener.join(timeout=5)
        states = [n["State"] for n in notices]
        assert "reconnecting" in states and states[-1] == "streaming", notices
        assert all(n["Output"] == "rtmp" and n["SessionId"] == sid for n in notices)
        with Player(play) as again:
            again.wait(25, 15)
        assert {(f.width, f.height) for f in again.video} == {(540, 960)}
        assert np.all(np.diff([f.pts_ms for f in again.video]) % 40 == 0)
    finally:
        c.close_session(sid)
    assert out.state == "stopped"


def test_rtmp_without_ingest_or_custom_url_is_a_clear_100001(stack: Stack, tmp_path: Path) -> None:
    bare = Settings(data_dir=tmp_path)
    session = Session("s1", "k", "u", "default", "rtmp", 3)
    with pytest.raises(RequestError, match="CssCustomPushUrl") as info:
        play_url(session.output_target(), bare)
    assert wire_code(info.value) == 100001
    # A custom push URL wins, and is also what players open.
    custom = "rtmp://cdn.example/app/key?secret=1"
    session.extra = {"ProtocolOption": {"CssCustomPushUrl": custom}}
    cdn = replace(stack.settings, rtmp_push_hosts="cdn.example")  # allowed by the operator
    target = session.output_target()
    assert push_url(target, cdn) == custom == play_url(target, cdn)
    session.extra = {"ProtocolOption": {"CssCustomPushUrl": "http://nope"}}
    with pytest.raises(RequestError, match="rtmp://"):
        push_url(session.output_target(), bare)
    # Through the API: a server without an ingest refuses rtmp without a push URL.
    c = stack.client
    with pytest.raises(ApiError) as api_err:
        c.create_session_by_asset(
            "default",
            "rtmp-bad",
            protocol="rtmp",
            extra={"ProtocolOption": {"CssCustomPushUrl": "ftp://x"}},
        )
    assert api_err.value.code == 100001
