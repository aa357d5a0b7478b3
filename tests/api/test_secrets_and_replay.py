"""No secret in a log line; optional replay protection (a signed nonce, used once).

A real server logging at info (uvicorn's access log on). The records are read where any
handler reads them: masked before formatting, so a signature or a play token never reaches a
log file, whatever the handler.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from websockets.sync.client import connect

from avatarcast.api.auth import NonceBook
from avatarcast.api.server import run_server_in_thread
from avatarcast.client import SESSION_BASE, ApiError, Client, new_req_id
from avatarcast.errors import AuthError
from avatarcast.logmask import mask
from avatarcast.sessions.store_sqlite import SqliteStore
from avatarcast.settings import Settings


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def server(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[tuple[Client, _Lines]]:
    replay_nonce = bool(getattr(request, "param", False))
    settings = Settings(data_dir=tmp_path, log_level="info", replay_nonce=replay_nonce)
    store = SqliteStore(settings.db_path)
    appkey, token = store.create_key("logs", 2)
    store.close()
    url, stop = run_server_in_thread(settings)
    lines = _Lines()
    loggers = [logging.getLogger(n) for n in ("uvicorn.access", "uvicorn.error", "")]
    for lg in loggers:
        lg.addHandler(lines)
    try:
        with Client(url, appkey, token, nonce=replay_nonce) as c:
            yield c, lines
    finally:
        for lg in loggers:
            lg.removeHandler(lines)
        stop()


def test_the_access_log_masks_signatures_and_play_tokens(server: tuple[Client, _Lines]) -> None:
    client, lines = server
    url = client.signed_url(SESSION_BASE + "listsessionofuin")
    signature = httpx.URL(url).params["signature"]
    assert httpx.post(url, json={"Payload": {"ReqId": new_req_id()}}).status_code == 200
    made = client.create_session_by_asset("default", "logs")
    play_token = made["PlayStreamAddr"].split("token=")[1]
    httpx.post(made["PlayStreamAddr"], content=b"v=0", headers={"Content-Type": "text/plain"})
    channel = client.command_channel_url(made["SessionId"])
    with connect(channel, open_timeout=10) as ws:
        ws.recv(timeout=10)  # 110016: not started; the socket was accepted and logged
    client.close_session(made["SessionId"])

    text = "\n".join(lines.lines)
    assert "listsessionofuin" in text and "/v2/whep/" in text and "commandchannel" in text
    for secret in (signature, quote(signature, safe=""), play_token):
        assert secret not in text
    assert "signature=***" in text and "token=***" in text


def test_mask_keeps_what_is_not_secret() -> None:
    line = "GET /x?appkey=k&timestamp=1&signature=a%2Bb%3D&token=t&design=1 play_token=p"
    assert (
        mask(line) == "GET /x?appkey=k&timestamp=1&signature=***&token=***&design=1 play_token=***"
    )


@pytest.mark.parametrize("server", [True], indirect=True)
def test_with_replay_nonce_each_signed_url_is_used_once(server: tuple[Client, _Lines]) -> None:
    client, _ = server
    assert client.list_sessions() == []  # the client adds a fresh nonce to each URL
    assert client.list_sessions() == []
    url = client.signed_url(SESSION_BASE + "listsessionofuin")
    body = {"Payload": {"ReqId": new_req_id()}}
    first = httpx.post(url, json=body).json()["Header"]
    again = httpx.post(url, json=body).json()["Header"]
    assert first["Code"] == 0
    assert (again["Code"], again["Message"]) == (
        100005,
        "nonce already used: every signed URL may be used once",
    )
    client.nonce = False
    with pytest.raises(ApiError) as info:
        client.list_sessions()
    assert info.value.code == 100005 and "nonce" in info.value.message


def test_nonce_book_forgets_a_nonce_once_its_timestamp_has_expired() -> None:
    book = NonceBook(max_skew_s=300, max_entries=2)
    params = {"nonce": "n" * 16, "timestamp": "1000"}
    book.use("k", params, now_unix=1000)
    with pytest.raises(AuthError):
        book.use("k", params, now_unix=1200)
    book.use("other-key", params, now_unix=1200)  # nonces are per key
    book.use("k", params, now_unix=1301)  # the URL itself is refused by its timestamp by now
    with pytest.raises(AuthError, match="16 to 64"):
        book.use("k", {"nonce": "short", "timestamp": "1000"}, now_unix=1000)
