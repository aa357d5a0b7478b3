"""The command channel against the real server on loopback: WebSocket and HTTP, real time.

A real server (uvicorn in a thread), a real session with its live stream, a real WebSocket
client. Checks the order and FinalType of the statuses, that AudioOver comes when the speech
has been shown (not when it was received), errors as Type 9 without losing the stream, the
HTTP `command` form, one socket per session and the replay on reconnect.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from avatarcast.settings import Settings
from avatarcast.speech.tts import get_backend
from server_harness import live_client

Msg = dict[str, Any]
CHUNK_BYTES = 5120  # 160 ms


SPOKEN = "Bob made a map of the bay."


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    return get_backend("espeak").synthesize(SPOKEN, voice="en-us").pcm


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    data_dir: Path = tmp_path_factory.mktemp("data")
    settings = Settings(data_dir=data_dir, log_level="warning").validate()
    with live_client(settings, "e2e-drive", 8) as c:
        yield c


def _session(client: Any, *, start: bool = True, **kw: Any) -> str:
    sid: str = client.create_session_by_asset("default", uuid.uuid4().hex, **kw)["SessionId"]
    client.wait_ready(sid, timeout_s=30)
    if start:
        client.start_session(sid)
    return sid


def _send(ws: ClientConnection, sid: str, req_id: str, command: str, data: Msg) -> None:
    payload = {"ReqId": req_id, "SessionId": sid, "Command": command, "Data": data}
    ws.send(json.dumps({"Header": {}, "Payload": payload}))


def _until(ws: ClientConnection, done: Callable[[Msg], bool], timeout_s: float = 15) -> list[Msg]:
    """Messages (each stamped with its arrival time) until `done(msg)` is true."""
    got: list[Msg] = []
    deadline = time.monotonic() + timeout_s
    while True:
        msg = json.loads(ws.recv(timeout=max(0.01, deadline - time.monotonic())))
        msg["_at"] = time.monotonic()
        got.append(msg)
        if done(msg):
            return got


def _over(req_id: str) -> Callable[[Msg], bool]:
    return lambda m: m["ReqId"] == req_id and m["SpeakStatus"] in ("AudioOver", "TextOver")


def _statuses(msgs: list[Msg], req_id: str) -> list[tuple[str, int | None]]:
    return [
        (m["SpeakStatus"], m.get("FinalType"))
        for m in msgs
        if m["Type"] == 3 and m["ReqId"] == req_id
    ]


def _recv_until(ws: ClientConnection, deadline: float, got: list[Msg]) -> None:
    """Collect messages (stamped with their arrival time) until the clock reaches `deadline`."""
    while (wait := deadline - time.monotonic()) > 0:
        try:
            msg = json.loads(ws.recv(timeout=wait))
        except TimeoutError:
            return
        msg["_at"] = time.monotonic()
        got.append(msg)


def _send_speech(ws: ClientConnection, sid: str, req_id: str, pcm: np.ndarray) -> list[Msg]:
    """As the spec paces it: 6 chunks at once, then one every 120 ms, then the final.

    Reads while it waits, so statuses are stamped when they arrive, not after the last send.
    """
    raw = pcm.astype("<i2").tobytes()
    chunks = [raw[i : i + CHUNK_BYTES] for i in range(0, len(raw), CHUNK_BYTES)]
    got: list[Msg] = []
    start = time.monotonic()
    for seq, chunk in enumerate(chunks, 1):
        _recv_until(ws, start + max(0, seq - 6) * 0.12, got)
        data = {"Audio": base64.b64encode(chunk).decode(), "Seq": seq, "IsFinal": False}
        _send(ws, sid, req_id, "SEND_AUDIO", data)
    _send(ws, sid, req_id, "SEND_AUDIO", {"Audio": "", "Seq": len(chunks) + 1, "IsFinal": True})
    return got


def test_audio_text_and_http_statuses_in_order(client: Any, speech: np.ndarray) -> None:
    sid = _session(client)
    with connect(client.command_channel_url(sid)) as ws:
        r = uuid.uuid4().hex
        got = _send_speech(ws, sid, r, speech)
        got += _until(ws, _over(r))
        assert _statuses(got, r) == [
            ("WaitingAudioStart", None),
            ("AudioStart", None),
            ("WaitingAudioOver", None),
            ("AudioOver", 1),
        ]
        at = {m["SpeakStatus"]: m["_at"] for m in got if m["ReqId"] == r}
        shown_s = at["AudioOver"] - at["AudioStart"]
        duration_s = speech.size / 16000
        # AudioOver follows the last frame on the stream, i.e. after the speech has played
        # (all of it was sent ~0.7 s before its end). One-sided: a loaded machine may be
        # late, never early.
        assert shown_s > duration_s - 0.4, (shown_s, duration_s)

        t = uuid.uuid4().hex
        _send(ws, sid, t, "SEND_TEXT", {"Text": "Hello there.", "Interrupt": False})
        got = _until(ws, _over(t))
        assert [s for s, _ in _statuses(got, t)] == [
            "WaitingTextStart",
            "TextStart",
            "WaitingTextOver",
            "TextOver",
        ]

        h = uuid.uuid4().hex
        out = client.command(sid, "SEND_TEXT", {"Text": "A map."}, req_id=h)
        assert out["ReqId"] == h and out["SessionId"] == sid
        got = _until(ws, _over(h))  # statuses of an HTTP command come on the socket
        assert _statuses(got, h)[-1] == ("TextOver", 1)
        assert client.stat_session(sid)["SpeakStatus"] == "TextOver"


def test_a_bad_chunk_gets_type_9_and_the_utterance_still_plays(
    client: Any, speech: np.ndarray
) -> None:
    sid = _session(client)
    with connect(client.command_channel_url(sid)) as ws:
        r = uuid.uuid4().hex
        first = base64.b64encode(speech[:2560].astype("<i2").tobytes()).decode()
        _send(ws, sid, r, "SEND_AUDIO", {"Audio": first, "Seq": 1, "IsFinal": False})
        _send(ws, sid, r, "SEND_AUDIO", {"Audio": "not base64!", "Seq": 2, "IsFinal": False})
        ws.send("this is not JSON")
        got = _until(ws, lambda m: m["Type"] == 9 and m["ReqId"] == "")
        errors = [(m["ErrorCode"], m["ReqId"], m["Seq"]) for m in got if m["Type"] == 9]
        assert errors == [(100001, r, 2), (100001, "", 0)]
        rest = base64.b64encode(speech[2560:].astype("<i2").tobytes()).decode()
        _send(ws, sid, r, "SEND_AUDIO", {"Audio": rest, "Seq": 2, "IsFinal": True})
        got += _until(ws, _over(r))
        assert _statuses(got, r)[-1] == ("AudioOver", 1)
        at = {m["SpeakStatus"]: m["_at"] for m in got if m["ReqId"] == r}
        assert at["AudioOver"] - at["AudioStart"] > speech.size / 16000 - 0.2  # all of it


def test_stream_max_interval_ends_the_utterance(client: Any, speech: np.ndarray) -> None:
    sid = _session(client, stream_max_interval_ms=2000)
    with connect(client.command_channel_url(sid)) as ws:
        r = uuid.uuid4().hex
        for seq in (1, 2):
            part = speech[(seq - 1) * 2560 : seq * 2560].astype("<i2").tobytes()
            data = {"Audio": base64.b64encode(part).decode(), "Seq": seq, "IsFinal": False}
            _send(ws, sid, r, "SEND_AUDIO", data)
        sent = time.monotonic()
        got = _until(ws, _over(r))
        assert _statuses(got, r)[-1] == ("AudioOver", 2)
        assert got[-1]["_at"] - sent > 1.9


def test_not_started_is_refused_with_110016(client: Any) -> None:
    sid = _session(client, start=False)
    with connect(client.command_channel_url(sid)) as ws:
        msg = json.loads(ws.recv(timeout=5))
        assert msg["Type"] == 9 and msg["ErrorCode"] == 110016
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=5)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008


def test_reconnect_replaces_the_old_socket_and_replays(client: Any, speech: np.ndarray) -> None:
    sid = _session(client)
    ids = [uuid.uuid4().hex for _ in range(4)]
    with connect(client.command_channel_url(sid)) as old:
        first: list[Msg] = []
        for r in ids:
            first += _send_speech(old, sid, r, speech[:4000])
        first += _until(old, _over(ids[-1]))
        with connect(client.command_channel_url(sid)) as new:
            bye = _until(old, lambda m: m["Type"] == 9)[-1]
            assert "replaced" in bye["ErrorMessage"]
            with pytest.raises(ConnectionClosed):
                old.recv(timeout=5)
            expected = [
                {k: v for k, v in m.items() if k != "_at"}
                for m in first
                if m["Type"] == 3 and m["ReqId"] in ids[1:]
            ]
            replay = [json.loads(new.recv(timeout=5)) for _ in expected]
            assert replay == expected
            # The new socket drives the session.
            r = uuid.uuid4().hex
            _send(new, sid, r, "SEND_TEXT", {"Text": "Hi.", "Interrupt": True})
            assert _statuses(_until(new, _over(r)), r)[-1] == ("TextOver", 1)


def test_say_paces_audio_and_text_and_reports_errors(
    client: Any, speech: np.ndarray, tmp_path: Path
) -> None:
    from avatarcast.cli.say import audio_messages, run_say
    from avatarcast.speech.audio import save_wav

    sid = _session(client)
    wav = tmp_path / "speech.wav"
    save_wav(wav, speech, 16000)
    args = (client.base_url, client.appkey, client._accesstoken, sid)
    lines: list[str] = []
    errors: list[str] = []
    assert run_say(*args, audio_path=wav, out=lines.append, err=errors.append) == 0
    statuses = [(json.loads(x)["SpeakStatus"], json.loads(x).get("FinalType")) for x in lines]
    assert statuses == [
        ("WaitingAudioStart", None),
        ("AudioStart", None),
        ("WaitingAudioOver", None),
        ("AudioOver", 1),
    ]
    lines.clear()
    # Audio with the words it says (Data.Text on the first chunk): plays, no error.
    assert run_say(*args, audio_path=wav, text=SPOKEN, out=lines.append, err=errors.append) == 0
    assert json.loads(lines[-1])["SpeakStatus"] == "AudioOver" and errors == []
    sent = [
        json.loads(m)["Payload"]["Data"] for _, m in audio_messages(b"\0" * 20000, "r", sid, "Hi")
    ]
    assert sent[0]["Text"] == "Hi" and all("Text" not in d for d in sent[1:])
    lines.clear()
    assert run_say(*args, text="Hello.", out=lines.append, err=errors.append) == 0
    assert json.loads(lines[-1])["SpeakStatus"] == "TextOver" and errors == []
    # A session that was not started: one line, non-zero.
    other = _session(client, start=False)
    code = run_say(*args[:3], other, text="Hello.", out=lines.append, err=errors.append)
    assert code == 1 and len(errors) == 1 and "110016" in errors[0]
    assert run_say(*args, audio_path=tmp_path / "missing.wav", err=errors.append) == 2


def test_interrupt_ends_the_speech_at_once(client: Any, speech: np.ndarray) -> None:
    sid = _session(client)
    with connect(client.command_channel_url(sid)) as ws:
        r = uuid.uuid4().hex
        long = np.concatenate([speech] * 3)
        got = _send_speech(ws, sid, r, long)
        if not any(m["SpeakStatus"] == "AudioStart" for m in got):
            got += _until(ws, lambda m: m["SpeakStatus"] == "AudioStart")
        cut = time.monotonic()
        _send(ws, sid, uuid.uuid4().hex, "SEND_AUDIO", {"Interrupt": True})
        got += _until(ws, _over(r))
        assert _statuses(got, r)[-1] == ("AudioOver", 3)
        # No waiting for the rest: AudioOver long before the speech would have ended (the
        # interrupt's latency is a figure of benchmarks/latency.py, not a test bound).
        assert got[-1]["_at"] - cut < long.size / 16000 - 2.0


def test_a_silent_socket_is_dropped_and_the_session_lives_on(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, log_level="warning", ws_idle_timeout_s=0.5)
    with live_client(settings.validate(), "e2e-idle", 2) as c:
        sid = _session(c)
        with connect(c.command_channel_url(sid)) as ws:
            _send(ws, sid, uuid.uuid4().hex, "SEND_HEARTBEAT", {"Text": "PING"})
            bye = json.loads(ws.recv(timeout=5))  # no reply to PING; then the drop
            assert bye["Type"] == 9 and "no message for 0.5 s" in bye["ErrorMessage"]
            with pytest.raises(ConnectionClosed):
                ws.recv(timeout=5)
        assert c.stat_session(sid)["SessionStatus"] == 1
