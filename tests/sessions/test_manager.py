"""SessionManager on a manual clock: idle close, usage booking, retention, quota — no HTTP."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from avatarcast.errors import QuotaError, SessionNotFound
from avatarcast.sessions.manager import SessionManager
from avatarcast.sessions.session import NewSession, Session, SessionStatus
from avatarcast.sessions.store import Store
from avatarcast.sessions.store_sqlite import SqliteStore
from avatarcast.settings import Settings
from avatarcast.stream.clock import ManualClock


async def _no_media(session: Session) -> None:
    return None


def _manager(tmp_path: Path) -> tuple[SessionManager, ManualClock, Store, str]:
    settings = Settings(data_dir=tmp_path, idle_timeout_s=60.0)
    store = SqliteStore(settings.db_path)
    clock = ManualClock(1000.0)
    manager = SessionManager(
        settings,
        store,
        clock,
        lambda: 1_800_000_000.0 + clock.now(),
        _no_media,
        retain_closed_s=100.0,
    )
    appkey, _ = store.create_key("k", 2)
    return manager, clock, store, appkey


async def _ready(manager: SessionManager, appkey: str, user: str) -> Session:
    s = await manager.create(
        appkey, NewSession(user_id=user, protocol="webrtc", driver_type=1, asset_key="default")
    )
    for _ in range(100):  # the media task runs on the next loop turns
        if s.status is SessionStatus.READY:
            return s
        await asyncio.sleep(0)
    raise AssertionError("session never became ready")


def test_idle_close_usage_and_retention(tmp_path: Path) -> None:
    async def scenario() -> None:
        manager, clock, store, appkey = _manager(tmp_path)
        a = await _ready(manager, appkey, "a")
        b = await _ready(manager, appkey, "b")
        clock.advance(10.0)
        manager.meter_all()
        assert store.usage(appkey).keys == {appkey: pytest.approx(20.0)}

        clock.advance(40.0)
        manager.touch(b.id)  # a drive command on b
        clock.advance(20.5)  # a: idle 70.5 s; b: 20.5 s
        await manager.reap_idle()
        assert a.status is SessionStatus.CLOSED and a.error_code == 110013
        assert a.error_message == "closed: idle for 70 s"
        assert b.status is SessionStatus.READY
        # a's seconds were booked at its close; b's wait for the next tick
        by_id = {s.session_id: s.seconds for s in store.usage(appkey).sessions}
        assert by_id[a.id] == pytest.approx(70.5) and by_id[b.id] == pytest.approx(10.0)

        assert manager.get(a.id, appkey) is a  # still visible to statsession...
        clock.advance(101.0)
        await manager.reap_idle()
        with pytest.raises(SessionNotFound):  # ...for retain_closed_s only
            manager.get(a.id, appkey)
        assert b.status is SessionStatus.CLOSED  # idle too by now

        await manager.close_all()
        store.close()

    asyncio.run(scenario())


def test_quota_counts_open_sessions_only(tmp_path: Path) -> None:
    async def scenario() -> None:
        manager, _clock, store, appkey = _manager(tmp_path)
        a = await _ready(manager, appkey, "a")
        await _ready(manager, appkey, "b")
        with pytest.raises(QuotaError):
            await manager.create(
                appkey,
                NewSession(user_id="c", protocol="webrtc", driver_type=1, asset_key="default"),
            )
        await manager.close(a.id, appkey)
        c = await _ready(manager, appkey, "c")
        assert [s.user_id for s in manager.list(appkey)] == ["b", "c"]
        assert manager.find(c.id) is c and manager.find("nope") is None
        await manager.close_all()
        assert manager.list(appkey) == []
        store.close()

    asyncio.run(scenario())


def test_live_stream_failure_after_ready_fails_the_session(tmp_path: Path) -> None:
    """Real media on the real clock; the renderer breaks mid-stream (a bad asset, say)."""
    from avatarcast.sessions.media import attach_media
    from avatarcast.stream.clock import MonotonicClock

    async def scenario() -> None:
        settings = Settings(data_dir=tmp_path, idle_timeout_s=60.0)
        store = SqliteStore(settings.db_path)
        clock = MonotonicClock()
        manager = SessionManager(
            settings,
            store,
            clock,
            lambda: 1_800_000_000.0,
            lambda s: attach_media(s, settings, clock),
        )
        appkey, _ = store.create_key("k", 2)
        s = await manager.create(
            appkey, NewSession(user_id="u", protocol="webrtc", driver_type=1, asset_key="default")
        )
        for _ in range(200):
            if s.status is SessionStatus.READY:
                break
            await asyncio.sleep(0.05)
        assert (
            s.status is SessionStatus.READY
            and s.host.host.engine is not None
            and s.host.host.live is not None
        )

        def broken() -> None:
            raise RuntimeError("renderer exploded")

        s.host.host.engine.next_frame = broken  # type: ignore[method-assign,assignment]
        # an idle session on the shared idle loop makes its frames with this one
        s.host.host.engine.skip_idle_frame = broken  # type: ignore[method-assign,assignment]
        for _ in range(100):
            if s.status is SessionStatus.FAILED:
                break
            await asyncio.sleep(0.05)
        assert s.status is SessionStatus.FAILED
        assert s.error_code == -101000 and "renderer exploded" in s.error_message
        assert manager.list(appkey) == []  # its quota is free again
        await manager.close_all()
        store.close()

    asyncio.run(scenario())
