"""`avatarcast say`: drive a started session over its command channel and print the statuses.

Audio goes as the spec paces it: 160 ms chunks, the first 6 at once, then one every 120 ms
(real-time factor 0.75), then the final packet. Deadlines are absolute (start + n × 120 ms),
and the time between sends is spent reading statuses, so they print as they arrive.
Exit status: 0 once the utterance is over (AudioOver/TextOver), 1 on a Type 9 or a lost
connection (one line saying why), 2 when the input file cannot be used.
"""

from __future__ import annotations

import base64
import json
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI
from websockets.sync.client import ClientConnection, connect

from avatarcast import SAMPLE_RATE_HZ
from avatarcast.api.auth import sign
from avatarcast.errors import InputError

CHANNEL_PATH = "/v2/ws/ivh/interactdriver/interactdriverservice/commandchannel"
CHUNK_MS = 160
BURST_CHUNKS = 6
PACE_MS = 120
SLACK_S = 30.0  # beyond the speech itself, how long to wait for its end
Print = Callable[[str], None]


def _stderr(line: str) -> None:
    print(line, file=sys.stderr)


def channel_url(base_url: str, appkey: str, accesstoken: str, session_id: str) -> str:
    """The signed ws:// (or wss://) URL of a session's command channel."""
    params = {"appkey": appkey, "requestid": session_id, "timestamp": str(int(time.time()))}
    params["signature"] = sign(params, accesstoken)
    base = base_url.rstrip("/")
    if base.startswith("http"):
        base = "ws" + base[4:]
    return f"{base}{CHANNEL_PATH}?{urlencode(params)}"


def _message(req_id: str, session_id: str, command: str, data: dict[str, Any]) -> str:
    payload = {"ReqId": req_id, "SessionId": session_id, "Command": command, "Data": data}
    return json.dumps({"Header": {}, "Payload": payload}, ensure_ascii=False)


def audio_messages(
    pcm_bytes: bytes, req_id: str, session_id: str, text: str | None = None
) -> Iterator[tuple[float, str]]:
    """(send time in s from the start, message) for each chunk and the final packet.

    `text` (ours): the words the audio speaks, sent on the first chunk as `Data.Text`."""
    size = SAMPLE_RATE_HZ * 2 * CHUNK_MS // 1000  # 5120 bytes
    n = -(-len(pcm_bytes) // size)
    for i in range(n):
        at = max(0, i - BURST_CHUNKS + 1) * PACE_MS / 1000
        chunk = base64.b64encode(pcm_bytes[i * size : (i + 1) * size]).decode("ascii")
        data: dict[str, Any] = {"Audio": chunk, "Seq": i + 1, "IsFinal": False}
        if i == 0 and text:
            data["Text"] = text
        yield at, _message(req_id, session_id, "SEND_AUDIO", data)
    at = max(0, n - BURST_CHUNKS + 1) * PACE_MS / 1000
    final = {"Audio": "", "Seq": n + 1, "IsFinal": True}
    yield at, _message(req_id, session_id, "SEND_AUDIO", final)


class _Done(Exception):
    def __init__(self, status: int) -> None:
        self.status = status


def _read_until(ws: ClientConnection, deadline: float, req_id: str, out: Print, err: Print) -> None:
    """Print statuses of `req_id` until `deadline`; _Done once it is over or failed."""
    while True:
        # timeout 0 still returns what is already buffered (a refusal sent before we spoke)
        wait = max(0.0, deadline - time.monotonic())
        try:
            raw = ws.recv(timeout=wait)
        except TimeoutError:
            return
        msg = json.loads(raw)
        if not isinstance(msg, dict) or msg.get("ReqId") not in (req_id, ""):
            continue  # statuses replayed for earlier requests
        if msg.get("Type") == 9:
            err(f"avatarcast: error: {msg.get('ErrorCode')} {msg.get('ErrorMessage')}")
            raise _Done(1)
        out(json.dumps(msg, ensure_ascii=False))
        if msg.get("SpeakStatus") in ("AudioOver", "TextOver"):
            raise _Done(0)


def run_say(
    base_url: str,
    appkey: str,
    accesstoken: str,
    session_id: str,
    audio_path: str | Path | None = None,
    text: str | None = None,
    voice: str | None = None,
    out: Print = print,
    *,
    err: Print = _stderr,
) -> int:
    """Send one utterance (an audio file, or a text for the server's TTS); print its statuses.

    With both `audio_path` and `text`, the text is what the audio says (the mouth follows the
    words). `voice` (with `text` alone) asks the server for that TTS voice.
    """
    if audio_path is None and text is None:
        err("avatarcast: error: give an audio file, a text, or both")
        return 2
    req_id = uuid.uuid4().hex
    if audio_path is not None:
        from avatarcast.speech.audio import load_audio

        try:
            pcm = load_audio(audio_path)
        except InputError as exc:
            err(f"avatarcast: error: {exc.message}")
            return 2
        plan = list(audio_messages(pcm.astype("<i2").tobytes(), req_id, session_id, text))
        budget_s = pcm.size / SAMPLE_RATE_HZ + plan[-1][0] + SLACK_S
    else:
        data: dict[str, Any] = {"Text": text, "Interrupt": False}
        if voice:
            data["Voice"] = voice
        plan = [(0.0, _message(req_id, session_id, "SEND_TEXT", data))]
        budget_s = len(text or "") * 0.1 + SLACK_S  # ~10 characters a second, spoken
    try:
        with connect(channel_url(base_url, appkey, accesstoken, session_id)) as ws:
            start = time.monotonic()
            for at, message in plan:
                _read_until(ws, start + at, req_id, out, err)
                ws.send(message)
            _read_until(ws, start + budget_s, req_id, out, err)
            err(f"avatarcast: error: no end of speech after {budget_s:.0f} s")
            return 1
    except _Done as done:
        return done.status
    except ConnectionClosed as exc:
        try:  # the server may have said why in a Type 9 before closing
            _read_until(ws, 0.0, req_id, out, err)
        except _Done as done:
            return done.status
        except ConnectionClosed:
            pass
        reason = f" ({exc.rcvd.reason})" if exc.rcvd and exc.rcvd.reason else ""
        err(f"avatarcast: error: the server closed the command channel{reason}")
        return 1
    except (OSError, InvalidHandshake, InvalidURI) as exc:
        err(f"avatarcast: error: cannot open the command channel: {exc}")
        return 1
