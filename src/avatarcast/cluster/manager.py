"""Sessions on a Ray cluster: the registry every API process of the cluster shares.

The session table is in the shared store (PostgreSQL for several API processes): any API
process answers any call for any session, reading the row and reaching the session's worker
through Ray (`ClusterPool`). Nothing about a session is kept only in one API process's
memory, except the bring-up of the sessions it created.

- **create**: the checks of every manager (`check_new_session`), placement on a worker with
  room that has the avatar loaded, else the least loaded (CapacityError 100008 when none
  has), then the row, inserted in one transaction with the key's quota check
  (`Store.create_session`: no two API processes can pass a key's limit together); the media
  come up in the background (status 3 → 1).
- **reaping**, by every API process once a second (each change is a conditional update in
  the store, so whichever process gets there first does it once): a worker that died fails
  its sessions (status 4 with the reason; usage booked to its last report; the quota is free
  because the row is no longer open); a session whose media failed, or idle past
  `idle_timeout_s` as its worker measures it, ends; a session stuck preparing because the API
  process bringing it up went away fails.
- **usage** is booked from the workers' reports every `usage_interval_s` (`meter_sessions`:
  each second counted once, whichever process books it).
- Shutting down one API process closes nothing: the sessions stream on and the other API
  processes serve them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from typing import Any

from avatarcast.cluster.pool import ClusterPool, ClusterWorker
from avatarcast.cluster.remote import ClusterHost, RemoteDrive
from avatarcast.codes import IDLE_CLOSED, STREAM_CREATE_TIMEOUT, wire_code
from avatarcast.errors import (
    CapacityError,
    MediaWorkerError,
    SessionClosed,
    SessionNotFound,
    SessionNotReady,
)
from avatarcast.sessions.manager import check_new_session, play_url_of
from avatarcast.sessions.session import NewSession, Session, SessionStatus
from avatarcast.sessions.store import SessionRecord, Store
from avatarcast.settings import Settings
from avatarcast.stream.clock import Clock

log = logging.getLogger(__name__)

REAP_EVERY_S = 1.0
ORPHAN_GRACE_S = 15.0  # preparing longer than the media timeout plus this: its creator is gone
FORGET_EVERY_S = 60.0


class ClusterManager:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        clock: Clock,
        now_unix: Callable[[], float],
        pool: ClusterPool,
        *,
        media_timeout_s: float = 30.0,
        retain_closed_s: float = 3600.0,
        usage_interval_s: float = 2.0,
    ) -> None:
        self.settings = settings
        self.store = store
        self.clock = clock
        self.now_unix = now_unix
        self.pool = pool
        pool.on_dead = self._worker_died
        self.media_timeout_s = media_timeout_s
        self.retain_closed_s = retain_closed_s
        self.usage_interval_s = usage_interval_s
        self._bring_up: dict[str, asyncio.Task[None]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    # ---- sessions as the routes see them ------------------------------------------------
    def _status_of(self, rec: SessionRecord) -> Callable[[], dict[str, Any] | None]:
        return lambda: self.pool.session_status(rec.session_id, rec.worker)

    def _session(self, rec: SessionRecord) -> Session:
        session = Session(
            id=rec.session_id,
            appkey=rec.appkey,
            user_id=rec.user_id,
            asset_key=rec.asset_key,
            protocol=rec.protocol,
            driver_type=rec.driver_type,
            project_id=rec.project_id,
            status=SessionStatus(rec.status),
            started=rec.started,
            created_at=rec.created_unix,
            last_activity=rec.last_activity_unix,
            error_code=rec.error_code,
            error_message=rec.error_message,
            alpha=rec.alpha,
            stream_max_interval_ms=rec.stream_max_interval_ms,
            voice=rec.voice,
            extra=dict(rec.extra),
            play_url=rec.play_url,
            play_token=rec.play_token,
        )
        if rec.worker and rec.status == SessionStatus.READY:
            status = self._status_of(rec)
            session.host = ClusterHost(self.pool, rec.worker, rec.session_id, status)
            session.drive = RemoteDrive(self.pool, rec.worker, rec.session_id, status)
        return session

    def get(self, session_id: str, appkey: str) -> Session:
        rec = self.store.get_session(session_id)
        if rec is None or rec.appkey != appkey:
            raise SessionNotFound(f"session {session_id!r} does not exist")
        return self._session(rec)

    async def stat(self, session_id: str, appkey: str) -> Session:
        """`get`, with the session's state read from its worker now (the reports are up to a
        second old)."""
        session = self.get(session_id, appkey)
        host = session.host
        if isinstance(host, ClusterHost):
            with contextlib.suppress(Exception):
                fresh = await self.pool.call(host.worker, "session_status", session_id, timeout=2.0)
                worker = self.pool.workers.get(host.worker)
                if isinstance(fresh, dict) and worker is not None:
                    worker.meter.status[session_id] = fresh
        return session

    def find(self, session_id: str) -> Session | None:
        rec = self.store.get_session(session_id)
        return self._session(rec) if rec is not None else None

    def list(
        self, appkey: str, project_id: str | None = None, asset_key: str | None = None
    ) -> list[Session]:
        return [
            self._session(r)
            for r in self.store.list_sessions(appkey)
            if (project_id is None or r.project_id == project_id)
            and (asset_key is None or r.asset_key == asset_key)
        ]

    def open_count(self) -> int:
        return len(self.store.list_sessions(None))

    def media_status(self) -> dict[str, Any]:
        sessions = []
        for rec in self.store.list_sessions(None):
            st = self.pool.session_status(rec.session_id, rec.worker) or {}
            sessions.append(
                {
                    "SessionId": rec.session_id,
                    "Status": rec.status,
                    "Worker": rec.worker,
                    "Node": rec.node,
                    "FramesSent": st.get("FramesSent", 0),
                    "LateFrames": st.get("LateFrames", 0),
                    "Viewers": st.get("Viewers", 0),
                    "Speaking": bool(st.get("Speaking", False)),
                    "OnIdleLoop": bool(st.get("OnIdleLoop", False)),
                }
            )
        return {
            "Cluster": True,  # Workers are the cluster's (none up yet: an empty list)
            "Workers": self.pool.status(),
            "Sessions": sessions,
            "Capacity": {
                "MaxLoad": self.settings.worker_max_load,
                "MaxSessionsPerWorker": self.settings.worker_max_sessions,
                "Full": self.pool.full(),
            },
        }

    # ---- create -------------------------------------------------------------------------
    async def create(self, appkey: str, request: NewSession) -> Session:
        request = await check_new_session(self.settings, self.store, appkey, request)
        asset_key, user_id = request.asset_key or "", request.user_id
        try:
            worker = self.pool.place(asset_key)
        except CapacityError:  # a new stream of a UserId replaces its old one: no more load
            if not any(r.user_id == user_id for r in self.store.list_sessions(appkey)):
                raise
            worker = self.pool.place(asset_key, force=True)
        session = request.session(appkey, self.now_unix())
        session.play_url = play_url_of(session, self.settings)
        rec = SessionRecord(
            session_id=session.id,
            appkey=appkey,
            user_id=user_id,
            asset_key=asset_key,
            protocol=session.protocol,
            driver_type=session.driver_type,
            project_id=session.project_id,
            created_unix=session.created_at,
            last_activity_unix=session.last_activity,
            alpha=session.alpha,
            stream_max_interval_ms=session.stream_max_interval_ms,
            voice=session.voice,
            extra=session.extra,
            play_url=session.play_url,
            play_token=session.play_token,
            worker=worker.name,
            node=worker.node,
        )
        try:
            replaced = await asyncio.to_thread(self.store.create_session, rec)
        except BaseException:
            worker.meter.release()
            raise
        for old in replaced:
            self._spawn(self._stop_media(old), f"replace-{old.session_id}")
        task = asyncio.create_task(self._start_media(session, worker), name=f"media-{session.id}")
        self._bring_up[session.id] = task
        log.info("session %s created for key %s on %s", session.id, appkey, worker.name)
        return session

    def _spawn(self, coro: Any, name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _start_media(self, session: Session, worker: ClusterWorker) -> None:
        sid = session.id
        try:
            await asyncio.wait_for(
                self.pool.call(
                    worker,
                    "open",
                    session.host_spec(),
                    session.stream_max_interval_ms,
                    timeout=self.media_timeout_s + 5,
                ),
                self.media_timeout_s,
            )
        except asyncio.CancelledError:
            worker.meter.release()
            raise
        except Exception as exc:
            worker.meter.release()
            timeout = isinstance(exc, TimeoutError)
            code = STREAM_CREATE_TIMEOUT if timeout else wire_code(exc)
            reason = "stream creation timed out" if timeout else str(exc) or type(exc).__name__
            log.warning("session %s: media failed on %s: %s", sid, worker.name, reason)
            self.store.end_session(sid, int(SessionStatus.FAILED), code, reason, self.now_unix())
            with contextlib.suppress(Exception):
                await self.pool.call(worker, "close", sid, timeout=10.0)
            return
        finally:
            self._bring_up.pop(sid, None)
        worker.meter.release()
        if self.store.mark_ready(sid, self.now_unix()):
            log.info("session %s ready on %s", sid, worker.name)
            return
        with contextlib.suppress(Exception):  # closed while it came up
            await self.pool.call(worker, "close", sid, timeout=10.0)

    async def _stop_media(self, rec: SessionRecord) -> None:
        task = self._bring_up.pop(rec.session_id, None)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if rec.worker:
            with contextlib.suppress(Exception):
                await self.pool.call(rec.worker, "close", rec.session_id, timeout=15.0)

    # ---- start / close ------------------------------------------------------------------
    def start(self, session_id: str, appkey: str) -> Session:
        session = self.get(session_id, appkey)
        if session.status is SessionStatus.CLOSED:
            raise SessionClosed(f"session {session_id!r} is closed")
        if session.status is not SessionStatus.READY:
            state = "failed" if session.status is SessionStatus.FAILED else "still preparing"
            raise SessionNotReady(f"session {session_id!r} is {state} (status {session.status})")
        self.store.set_started(session_id)
        self.store.touch_session(session_id, self.now_unix())
        session.started = True
        host = session.host
        if isinstance(host, ClusterHost):  # its idle time counts from now
            self._spawn(self._touch(host.worker, session_id), f"touch-{session_id}")
        return session

    async def _touch(self, worker: str, session_id: str) -> None:
        with contextlib.suppress(Exception):
            await self.pool.call(worker, "touch", session_id, timeout=5.0)

    def touch(self, session_id: str) -> None:
        """Activity is measured by the session's worker (drive commands, heartbeats)."""

    async def close(self, session_id: str, appkey: str) -> None:
        session = self.get(session_id, appkey)
        if session.status is SessionStatus.CLOSED:
            raise SessionClosed(f"session {session_id!r} is already closed")
        if session.status is SessionStatus.FAILED:
            return
        ended = self.store.end_session(
            session_id, int(SessionStatus.CLOSED), 0, "", self.now_unix()
        )
        if ended is not None:
            await self._stop_media(ended)

    async def close_all(self) -> None:
        """This API process stops: the cluster's sessions stream on (others serve them); the
        ones it was still bringing up fail, as nobody would finish that."""
        for sid, task in list(self._bring_up.items()):
            task.cancel()
            self.store.end_session(
                sid,
                int(SessionStatus.FAILED),
                STREAM_CREATE_TIMEOUT,
                "stream creation stopped: the API process creating it shut down",
                self.now_unix(),
            )
        for task in list(self._tasks):
            task.cancel()

    # ---- background ---------------------------------------------------------------------
    def _worker_died(self, worker: ClusterWorker, why: str) -> None:
        code = wire_code(MediaWorkerError(why))
        for rec in self.store.list_sessions(None):
            if rec.worker != worker.name:
                continue
            task = self._bring_up.pop(rec.session_id, None)
            if task is not None:
                task.cancel()
            self.store.end_session(
                rec.session_id,
                int(SessionStatus.FAILED),
                code,
                why,
                self.now_unix(),
                usage_until_unix=worker.seen_unix or None,
            )

    def reap(self, open_sessions: Sequence[SessionRecord]) -> None:
        """Fail and close what the workers' reports say of the open sessions (see the module
        text)."""
        now = self.now_unix()
        idle_limit = self.settings.idle_timeout_s
        for rec in open_sessions:
            if rec.status == SessionStatus.PREPARING:
                age = now - rec.created_unix
                if (
                    rec.session_id not in self._bring_up
                    and age > self.media_timeout_s + ORPHAN_GRACE_S
                ):
                    self.store.end_session(
                        rec.session_id,
                        int(SessionStatus.FAILED),
                        STREAM_CREATE_TIMEOUT,
                        "stream creation did not finish (the API process creating it stopped)",
                        now,
                    )
                continue
            st = self.pool.session_status(rec.session_id, rec.worker)
            if st is None:
                continue
            ended: SessionRecord | None = None
            failed = st.get("Failed")
            if failed:
                code, reason = int(failed[0]), str(failed[1])
                ended = self.store.end_session(
                    rec.session_id, int(SessionStatus.FAILED), code, reason, now
                )
            elif float(st.get("IdleS", 0.0)) > idle_limit:
                idle = float(st["IdleS"])
                ended = self.store.end_session(
                    rec.session_id,
                    int(SessionStatus.CLOSED),
                    IDLE_CLOSED,
                    f"closed: idle for {idle:.0f} s",
                    now,
                )
            if ended is not None:
                self._spawn(self._stop_media(ended), f"reap-{rec.session_id}")

    def meter(self, open_sessions: Sequence[SessionRecord]) -> None:
        """Book the usage of the ready ones up to their worker's latest report that lists
        them (never past it: a worker that stops answering has streamed no further, as far
        as anyone knows). The store books only rows still ready: a session that ended since
        the list was read is not booked again."""
        by_worker: dict[str, list[str]] = {}
        for rec in open_sessions:
            if rec.status != SessionStatus.READY:
                continue
            if self.pool.session_status(rec.session_id, rec.worker) is not None:
                by_worker.setdefault(rec.worker, []).append(rec.session_id)
        for name, ids in by_worker.items():
            worker = self.pool.workers.get(name)
            if worker is not None:
                self.store.meter_sessions(ids, worker.seen_unix)

    async def run(self) -> None:
        """Watch workers, reap, meter, forget; until cancelled."""
        next_meter = self.clock.now() + self.usage_interval_s
        next_forget = self.clock.now() + FORGET_EVERY_S
        while True:
            try:
                await self.pool.refresh()
                # One read of the open sessions a round; reading, booking and forgetting
                # touch many rows: off the loop (the store serialises its connection).
                open_sessions = await asyncio.to_thread(self.store.list_sessions, None)
                self.reap(open_sessions)
                if self.clock.now() >= next_meter:
                    await asyncio.to_thread(self.meter, open_sessions)
                    next_meter = self.clock.now() + self.usage_interval_s
                if self.clock.now() >= next_forget:
                    before = self.now_unix() - self.retain_closed_s
                    await asyncio.to_thread(self.store.forget_sessions, before)
                    next_forget = self.clock.now() + FORGET_EVERY_S
            except Exception:  # keep the loop alive: a bug here must not stop reaping
                log.exception("cluster session loop failed")
            await asyncio.sleep(REAP_EVERY_S)
