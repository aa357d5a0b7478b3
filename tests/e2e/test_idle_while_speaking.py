"""Speaking is activity: neither the session's idle limit nor the socket's fires mid-speech.

A real server with short limits (idle_timeout_s 3, ws_idle_timeout_s 2) and one SEND_TEXT of
about 9 s of speech, sent once, nothing after it. The text must be spoken to its end
(TextOver, FinalType 1) on the same socket, the session still ready; once it has finished
and stayed quiet, the idle limit closes it as before (110013).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.sync.client import connect

from avatarcast.client import Client
from avatarcast.settings import Settings
from server_harness import live_client

LONG_TEXT = (
    "This is a long sentence that keeps the presenter speaking for quite a while, "
    "well past the idle limits of both the session and its command socket, "
    "so that neither of them may close while the words are still being spoken to viewers."
)


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Client]:
    data_dir: Path = tmp_path_factory.mktemp("data")
    settings = Settings(
        data_dir=data_dir, log_level="warning", idle_timeout_s=3.0, ws_idle_timeout_s=2.0
    ).validate()
    with live_client(settings, "idle", 2) as c:
        yield c


def test_a_long_text_is_spoken_to_its_end_past_both_idle_limits(client: Client) -> None:
    sid = client.create_session_by_asset("default", "talker")["SessionId"]
    client.wait_ready(sid, timeout_s=30)
    client.start_session(sid)
    req_id = uuid.uuid4().hex
    got: list[dict[str, Any]] = []
    with connect(client.command_channel_url(sid), open_timeout=10) as ws:
        payload = {
            "ReqId": req_id,
            "SessionId": sid,
            "Command": "SEND_TEXT",
            "Data": {"Text": LONG_TEXT},
        }
        ws.send(json.dumps({"Header": {}, "Payload": payload}))
        sent_at = time.monotonic()
        while not got or got[-1].get("SpeakStatus") != "TextOver":
            msg = json.loads(ws.recv(timeout=60))
            msg["_at"] = time.monotonic() - sent_at
            got.append(msg)
            assert msg["Type"] == 3, got  # no Type 9: neither "idle" nor "closed"
        spoken_s = got[-1]["_at"] - next(m["_at"] for m in got if m["SpeakStatus"] == "TextStart")
    # The speech outlasted both limits (else this test would prove nothing) ...
    assert spoken_s > 3.0 + 1.0, got
    assert got[-1]["FinalType"] == 1
    stat = client.stat_session(sid)
    assert (stat["SessionStatus"], stat["ErrorCode"]) == (1, 0), stat
    # ... and a quiet session still closes itself once the limit has passed after the speech.
    deadline = time.monotonic() + 20
    while client.stat_session(sid)["SessionStatus"] == 1 and time.monotonic() < deadline:
        time.sleep(0.5)
    stat = client.stat_session(sid)
    assert (stat["SessionStatus"], stat["ErrorCode"]) == (2, 110013), stat
