"""A real server on a loopback port for the tests: its settings, keys, Clients, a clean stop.

`run_server_in_thread` serves; a `Store` on the same database makes the keys the tests sign
with. Importable from every test (`from server_harness import ...`): tests/conftest.py puts
this directory on sys.path.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from avatarcast.api.server import run_server_in_thread
from avatarcast.client import Client
from avatarcast.sessions.media import MediaFactory
from avatarcast.sessions.store_sqlite import SqliteStore
from avatarcast.settings import Settings
from avatarcast.stream.webrtc import use_host_addresses


class LiveServer:
    """A started server (`url`), its `settings`, `data_dir` and `store`; `stop()` ends it.

    `client()` makes a new key (`key_name`, `max_sessions` unless given) and a Client for it.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        media_factory: MediaFactory | None = None,
        key_name: str = "test",
        max_sessions: int = 4,
        timeout_s: float = 10,
    ) -> None:
        self.settings = settings
        self.data_dir = settings.data_dir
        self.key_name = key_name
        self.max_sessions = max_sessions
        self.timeout_s = timeout_s
        self.url, self._stop = run_server_in_thread(settings, media_factory=media_factory)
        self.store = SqliteStore(settings.db_path)

    def key(self, max_sessions: int | None = None) -> tuple[str, str]:
        """A new key: (appkey, accesstoken)."""
        return self.store.create_key(self.key_name, max_sessions or self.max_sessions)

    def client(self, max_sessions: int | None = None) -> Client:
        appkey, token = self.key(max_sessions)
        return Client(self.url, appkey, token, timeout_s=self.timeout_s)

    def stop(self) -> None:
        self.store.close()
        self._stop()
        if self.settings.ice_host_addresses:
            use_host_addresses([])  # the server's ICE patch is process-wide: undo it


@contextmanager
def live_server(
    settings: Settings,
    *,
    media_factory: MediaFactory | None = None,
    key_name: str = "test",
    max_sessions: int = 4,
) -> Iterator[LiveServer]:
    """A LiveServer for the `with` block."""
    server = LiveServer(
        settings, media_factory=media_factory, key_name=key_name, max_sessions=max_sessions
    )
    try:
        yield server
    finally:
        server.stop()


@contextmanager
def live_client(settings: Settings, key_name: str, max_sessions: int) -> Iterator[Client]:
    """A Client with a fresh key on a server of its own, for the `with` block."""
    with (
        live_server(settings, key_name=key_name, max_sessions=max_sessions) as server,
        server.client() as client,
    ):
        yield client
