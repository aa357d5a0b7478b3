"""What outlives a restart, and what API processes share: the `Store` interface.

API keys, projects, usage records and the session table. Two implementations with the same
semantics (the same tests run on both): `SqliteStore` (`store_sqlite`, one file in the data
directory, the default) and `PgStore` (`store_pg`, PostgreSQL, which several API processes of a
cluster share). `open_store(settings)` picks one by `Settings.store_url`.

Usage is kept per session and per hour (`hour_unix`), added as it accrues: a crash loses at most
one ticker period, and `--since` filtering is exact to the hour, which is how it is billed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from avatarcast.sessions.store_sql import redact_url
from avatarcast.sessions.store_types import (
    KeyInfo,
    Project,
    SessionRecord,
    SessionUsage,
    UsageReport,
)

if TYPE_CHECKING:
    from avatarcast.settings import Settings

__all__ = [
    "KeyInfo",
    "Project",
    "SessionRecord",
    "SessionUsage",
    "Store",
    "UsageReport",
    "open_store",
    "redact_url",
]

PG_SCHEMES = ("postgresql://", "postgres://")


class Store(Protocol):
    """Keys, projects, usage and sessions; every method is one transaction."""

    def close(self) -> None: ...

    # ---- keys
    def create_key(
        self, name: str, max_sessions: int, now_unix: float = 0.0
    ) -> tuple[str, str]: ...
    def list_keys(self) -> list[KeyInfo]: ...
    def revoke_key(self, appkey: str) -> bool: ...
    def accesstoken_of(self, appkey: str) -> str | None: ...
    def max_sessions_of(self, appkey: str) -> int: ...

    # ---- projects
    def create_project(
        self,
        name: str,
        asset_key: str,
        *,
        voice: str | None = None,
        appkey: str | None = None,
        defaults: dict[str, Any] | None = None,
        now_unix: float = 0.0,
    ) -> Project: ...
    def get_project(self, project_id: str) -> Project | None: ...
    def list_projects(self) -> list[Project]: ...

    # ---- usage
    def add_usage(
        self, session_id: str, appkey: str, user_id: str, seconds: float, now_unix: float
    ) -> None: ...
    def usage(self, appkey: str | None = None, since_unix: float | None = None) -> UsageReport: ...

    # ---- sessions (shared by the API processes of a cluster)
    def create_session(self, rec: SessionRecord) -> list[SessionRecord]: ...
    def get_session(self, session_id: str) -> SessionRecord | None: ...
    def list_sessions(
        self, appkey: str | None = None, *, open_only: bool = True
    ) -> list[SessionRecord]: ...
    def mark_ready(self, session_id: str, now_unix: float) -> bool: ...
    def set_worker(self, session_id: str, worker: str, node: str) -> None: ...
    def set_started(self, session_id: str) -> None: ...
    def touch_session(self, session_id: str, now_unix: float) -> None: ...
    def end_session(
        self,
        session_id: str,
        status: int,
        code: int,
        message: str,
        now_unix: float,
        *,
        usage_until_unix: float | None = None,
    ) -> SessionRecord | None: ...
    def meter_sessions(self, session_ids: list[str], now_unix: float) -> float: ...
    def forget_sessions(self, ended_before_unix: float) -> int: ...


def open_store(settings: Settings) -> Store:
    """The store `settings` names: SQLite in the data directory when `store_url` is empty,
    PostgreSQL for a `postgresql://` URL."""
    url = settings.store_url
    if not url:
        from avatarcast.sessions.store_sqlite import SqliteStore

        return SqliteStore(settings.db_path)
    if url.startswith(PG_SCHEMES):
        from avatarcast.sessions.store_pg import PgStore  # psycopg only when asked for

        return PgStore(url)
    raise ValueError(
        f"store_url must be empty (SQLite in the data directory) or a postgresql:// URL, "
        f"not {redact_url(url)!r}"
    )
