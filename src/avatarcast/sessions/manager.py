"""The registry of live sessions: create, start, close, list; quotas, idle close, usage.

Sessions live in memory (a restart ends every stream); keys, projects and usage are in the
`Store`. A key sees only its own sessions: asking for another key's session is "not found",
never "forbidden", so a key cannot even learn which ids exist.

Media comes up in the background: `create` answers at once with status 3 (preparing) and the
session turns 1 (ready) when its first frame is published, or 4 (failed) with an ErrorCode.
Timers use `clock.now()`; the background loop (`run`) only decides *when* to look.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from avatarcast.avatars.registry import available_avatars
from avatarcast.codes import IDLE_CLOSED, SESSION_REPLACED, STREAM_CREATE_TIMEOUT, wire_code
from avatarcast.errors import (
    QuotaError,
    RequestError,
    SessionClosed,
    SessionNotFound,
    SessionNotReady,
    TextInputError,
    UnknownAvatarError,
)
from avatarcast.sessions.media import (
    MediaFactory,
    attach_media,
    attach_worker_media,
    detach_media,
)
from avatarcast.sessions.playback import whep_url
from avatarcast.sessions.session import (
    DRIVER_TYPES,
    PROTOCOLS,
    NewSession,
    Session,
    SessionStatus,
)
from avatarcast.sessions.store import Store
from avatarcast.sessions.workers import WorkerPool, WorkerProc
from avatarcast.settings import Settings
from avatarcast.speech.tts import get_backend
from avatarcast.stream import outputs
from avatarcast.stream.clock import Clock

log = logging.getLogger(__name__)

STREAM_MAX_INTERVAL_MS = (2000, 6000)


class SessionManager:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        clock: Clock,
        now_unix: Callable[[], float],
        media_factory: MediaFactory | None = None,
        *,
        pool: WorkerPool | None = None,
        media_timeout_s: float = 30.0,
        retain_closed_s: float = 3600.0,
        usage_interval_s: float = 5.0,
    ) -> None:
        self.settings = settings
        self.store = store
        self.clock = clock
        self.now_unix = now_unix
        # Media in worker processes (`pool`), or in this process; a test may bring its own.
        self.pool = pool if media_factory is None else None
        self.media_factory: MediaFactory = media_factory or self._default_media
        self._placed: dict[str, WorkerProc] = {}  # session id → its worker, until attached
        self.media_timeout_s = media_timeout_s
        self.retain_closed_s = retain_closed_s  # closed sessions stay visible to statsession
        self.usage_interval_s = usage_interval_s
        self._sessions: dict[str, Session] = {}
        self._ended_at: dict[str, float] = {}  # session id → clock time it closed or failed
        self._metered_at: dict[str, float] = {}  # session id → clock time usage was booked to
        self._bring_up: dict[str, asyncio.Task[None]] = {}
        self._watchers: dict[str, asyncio.Task[None]] = {}  # live stream health, per session
        self._lock = asyncio.Lock()  # create/close decisions (quota, UserId) are atomic

    async def _default_media(self, session: Session) -> None:
        worker = self._placed.pop(session.id, None)
        if self.pool is not None and worker is not None:
            await attach_worker_media(
                session,
                self.pool,
                worker,
                self.settings,
                self.clock,
                on_activity=lambda: self.touch(session.id),
            )
            return
        await attach_media(
            session, self.settings, self.clock, on_activity=lambda: self.touch(session.id)
        )

    # ---- create -------------------------------------------------------------------------
    async def create(self, appkey: str, request: NewSession) -> Session:
        """Register a new session (status 3) and bring its media up in the background."""
        request = await check_new_session(self.settings, self.store, appkey, request)
        async with self._lock:
            user_id = request.user_id
            mine = [s for s in self._sessions.values() if s.appkey == appkey and s.is_open]
            replaced = [s for s in mine if s.user_id == user_id]
            limit = self.store.max_sessions_of(appkey)
            if len(mine) - len(replaced) >= limit:
                raise QuotaError(f"this key may have {limit} open session(s); close one first")
            session = request.session(appkey, self.clock.now())
            session.play_url = play_url_of(session, self.settings)
            if self.pool is not None:
                # A new stream that replaces one of the same UserId adds no load: placed even
                # on a full server. Else CapacityError (100008) when every worker is full.
                self._placed[session.id] = self.pool.place(force=bool(replaced))
            for old in replaced:
                self._end(
                    old,
                    SessionStatus.CLOSED,
                    SESSION_REPLACED,
                    f"closed: a new stream was created for UserId {user_id!r}",
                )
            self._sessions[session.id] = session
            self._bring_up[session.id] = asyncio.create_task(
                self._start_media(session), name=f"media-{session.id}"
            )
        for old in replaced:
            await self._teardown(old)
        log.info("session %s created for key %s (avatar %s)", session.id, appkey, session.asset_key)
        return session

    async def _start_media(self, session: Session) -> None:
        try:
            await asyncio.wait_for(self.media_factory(session), self.media_timeout_s)
        except asyncio.CancelledError:
            raise
        except TimeoutError:
            self._fail(session, STREAM_CREATE_TIMEOUT, "stream creation timed out")
        except Exception as exc:
            log.warning("session %s: media failed: %s", session.id, exc, exc_info=True)
            self._fail(session, wire_code(exc), str(exc) or type(exc).__name__)
        else:
            if session.status is SessionStatus.PREPARING:
                session.status = SessionStatus.READY
                self._metered_at[session.id] = self.clock.now()
                log.info("session %s ready", session.id)
                if session.host is not None:
                    self._watchers[session.id] = asyncio.create_task(
                        self._watch(session), name=f"watch-{session.id}"
                    )
                return
        finally:
            self._bring_up.pop(session.id, None)
        # Closed while coming up, or failed: release whatever got attached.
        await detach_media(session)

    async def _watch(self, session: Session) -> None:
        """Media that dies after ready fails its session (status 4, statsession says why) and
        releases its media and quota; it never takes the server or others down."""
        host = session.host
        assert host is not None
        await host.wait_closed()
        self._watchers.pop(session.id, None)
        if session.status is SessionStatus.READY and host.error is not None:
            error = host.error
            log.error("session %s: live stream failed: %s", session.id, error)
            code, reason = wire_code(error), f"stream failed: {error}"
            self._end(session, SessionStatus.FAILED, code, reason)
            if session.drive is not None:  # tell the command channel before it closes
                session.drive.media_failed(code, reason)
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(session.drive.flush(), 1.0)
            await detach_media(session)

    def _fail(self, session: Session, code: int, message: str) -> None:
        if session.status is SessionStatus.PREPARING:
            self._end(session, SessionStatus.FAILED, code, message)

    # ---- queries ------------------------------------------------------------------------
    def get(self, session_id: str, appkey: str) -> Session:
        """The caller's session, open or recently ended; SessionNotFound otherwise."""
        session = self._sessions.get(session_id)
        if session is None or session.appkey != appkey:
            raise SessionNotFound(f"session {session_id!r} does not exist")
        return session

    async def stat(self, session_id: str, appkey: str) -> Session:
        """`get` for statsession (the session's state is in this process: nothing to fetch)."""
        return self.get(session_id, appkey)

    def find(self, session_id: str) -> Session | None:
        """Any key's session by id, for routes that authenticate otherwise (WHEP play token)."""
        return self._sessions.get(session_id)

    def list(
        self, appkey: str, project_id: str | None = None, asset_key: str | None = None
    ) -> list[Session]:
        """The caller's open sessions, oldest first, optionally of one project or avatar."""
        return [
            s
            for s in sorted(self._sessions.values(), key=lambda s: s.created_at)
            if s.appkey == appkey
            and s.is_open
            and (project_id is None or s.project_id == project_id)
            and (asset_key is None or s.asset_key == asset_key)
        ]

    def media_status(self) -> dict[str, Any]:
        """Workers, sessions per worker, load and the limit (for `GET /v2/status`).

        Without media workers (`media_workers = 0`, or a test's media factory) `Workers` is
        empty: the media run in this process, and nothing admits or refuses by load.
        """
        open_sessions = [s for s in self._sessions.values() if s.is_open]
        sessions = []
        for s in open_sessions:
            media = s.media_status()
            sessions.append(
                {
                    "SessionId": s.id,
                    "Status": int(s.status),
                    "Worker": media.get("Worker", 0),
                    "FramesSent": media.get("FramesSent", 0),
                    "LateFrames": media.get("LateFrames", 0),
                    "Viewers": media.get("Viewers", 0),
                    "Speaking": bool(media.get("Speaking", False)),
                    "OnIdleLoop": bool(media.get("OnIdleLoop", False)),
                }
            )
        workers = self.pool.status() if self.pool is not None else []
        full = self.pool.full() if self.pool is not None else False
        return {
            "Workers": workers,
            "Sessions": sessions,
            "Capacity": {
                "MaxLoad": self.settings.worker_max_load,
                "MaxSessionsPerWorker": self.settings.worker_max_sessions,
                "Full": full,
            },
        }

    def open_count(self) -> int:
        return sum(1 for s in self._sessions.values() if s.is_open)

    # ---- start / touch / close ------------------------------------------------------------
    def start(self, session_id: str, appkey: str) -> Session:
        """Open the session for driving; it must be ready (status 1)."""
        session = self.get(session_id, appkey)
        if session.status is SessionStatus.CLOSED:
            raise SessionClosed(f"session {session_id!r} is closed")
        if session.status is not SessionStatus.READY:
            state = "failed" if session.status is SessionStatus.FAILED else "still preparing"
            raise SessionNotReady(f"session {session_id!r} is {state} (status {session.status})")
        session.started = True
        self.touch(session_id)
        return session

    def touch(self, session_id: str) -> None:
        """Renew the idle timer (drive commands and heartbeats)."""
        session = self._sessions.get(session_id)
        if session is not None:
            session.last_activity = self.clock.now()

    async def close(self, session_id: str, appkey: str) -> None:
        """Stop streaming and release the quota; closing twice is 110013."""
        session = self.get(session_id, appkey)
        if session.status is SessionStatus.CLOSED:
            raise SessionClosed(f"session {session_id!r} is already closed")
        if session.status is SessionStatus.FAILED:
            return  # nothing to stop; the failure stays visible on statsession
        await self._close(session, 0, "")

    async def _close(self, session: Session, code: int, message: str) -> None:
        async with self._lock:
            if not session.is_open:
                return
            self._end(session, SessionStatus.CLOSED, code, message)
        await self._teardown(session)

    def _end(self, session: Session, status: SessionStatus, code: int, message: str) -> None:
        """The state change of closing/failing; synchronous so checks and changes are atomic."""
        self._meter(session)
        self._metered_at.pop(session.id, None)
        session.status = status
        session.error_code = code
        session.error_message = message
        self._ended_at[session.id] = self.clock.now()
        log.info("session %s ended (status %d, code %d) %s", session.id, status, code, message)

    async def _teardown(self, session: Session) -> None:
        watcher = self._watchers.pop(session.id, None)
        if watcher is not None:
            watcher.cancel()
        task = self._bring_up.pop(session.id, None)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        placed = self._placed.pop(session.id, None)
        if placed is not None and self.pool is not None:  # closed before its media opened
            self.pool.release(placed)
        await detach_media(session)

    async def close_all(self) -> None:
        """Close every open session (server shutdown); usage is booked first. Then the media
        workers stop."""
        for session in [s for s in self._sessions.values() if s.is_open]:
            await self._close(session, 0, "closed: server shutting down")
        if self.pool is not None:
            await self.pool.stop()

    # ---- background -----------------------------------------------------------------------
    async def reap_idle(self) -> None:
        """Close sessions idle longer than the setting; forget long-ended ones.

        A session that speaks, or has speech queued, is active: its idle time counts from
        the end of its speech, not from the command that started it.
        """
        now = self.clock.now()
        limit = self.settings.idle_timeout_s
        for session in list(self._sessions.values()):
            if session.is_open and session.drive is not None and session.drive.busy:
                session.last_activity = now
            idle = now - session.last_activity
            if session.is_open and idle > limit:
                await self._close(session, IDLE_CLOSED, f"closed: idle for {idle:.0f} s")
        for sid, ended in list(self._ended_at.items()):
            if now - ended > self.retain_closed_s:
                del self._ended_at[sid]
                self._sessions.pop(sid, None)

    def _meter(self, session: Session) -> None:
        """Book the seconds streamed since the last booking (ready sessions only)."""
        since = self._metered_at.get(session.id)
        if since is None or session.status is not SessionStatus.READY:
            return
        now = self.clock.now()
        self._metered_at[session.id] = now
        try:
            self.store.add_usage(
                session.id, session.appkey, session.user_id, now - since, self.now_unix()
            )
        except Exception:  # a full disk must not take streams down; the next tick retries
            self._metered_at[session.id] = since
            log.exception("session %s: cannot record usage", session.id)

    def meter_all(self) -> None:
        for session in list(self._sessions.values()):
            self._meter(session)

    async def run(self) -> None:
        """Idle reaper and usage ticker, until cancelled."""
        if self.pool is not None:
            self.pool.start()  # the workers boot while the first requests come in
        reap_every_s = min(1.0, self.settings.idle_timeout_s / 5)
        next_meter = self.clock.now() + self.usage_interval_s
        while True:
            try:
                await self.reap_idle()
                if self.clock.now() >= next_meter:
                    self.meter_all()
                    next_meter = self.clock.now() + self.usage_interval_s
            except Exception:  # keep the loop alive: a bug here must not stop idle closing
                log.exception("session manager loop failed")
            await asyncio.sleep(reap_every_s)


async def check_new_session(
    settings: Settings, store: Store, appkey: str, request: NewSession
) -> NewSession:
    """The checks of a createsession, in one place for every manager: the request with its
    avatar, voice (a project's, if none was given) and StreamMaxInterval filled in;
    RequestError (100001) or UnknownAvatarError otherwise."""
    protocol, driver_type = request.protocol, request.driver_type
    if protocol not in PROTOCOLS:
        raise RequestError(f"Protocol must be one of {', '.join(PROTOCOLS)}, not {protocol!r}")
    if not outputs.supported(protocol):
        raise RequestError(f"Protocol {protocol!r} is not supported yet; use 'webrtc'")
    if driver_type not in DRIVER_TYPES:
        raise RequestError(f"DriverType must be 1 (text) or 3 (audio + text), not {driver_type}")
    lo, hi = STREAM_MAX_INTERVAL_MS
    interval = lo if request.stream_max_interval_ms is None else request.stream_max_interval_ms
    if not lo <= interval <= hi:
        raise RequestError(f"StreamMaxInterval must be within {lo}..{hi} ms, not {interval}")
    if not request.user_id:
        raise RequestError("UserId must not be empty")
    asset_key, voice, project_id = request.asset_key, request.voice, request.project_id
    if voice is not None:  # the one given; a project's voice was checked when it was made
        backend = get_backend(settings.tts_backend)
        try:  # off the loop: the TTS lock may be held by a sentence being spoken
            await asyncio.to_thread(backend.resolve_voice, voice)
        except TextInputError as exc:
            raise RequestError(f"SpeechParam.TimbreKey: {exc.message}") from None
    if project_id is not None:
        project = store.get_project(project_id)
        if project is None or project.appkey not in (None, appkey):
            raise RequestError(f"VirtualmanProjectId: no project {project_id!r}")
        asset_key = project.asset_key
        voice = voice or project.voice
    if not asset_key:
        raise RequestError("AssetVirtualmanKey is required")
    if asset_key not in available_avatars(settings.data_dir):
        raise UnknownAvatarError(f"AssetVirtualmanKey: no avatar {asset_key!r}")
    return replace(request, asset_key=asset_key, voice=voice, stream_max_interval_ms=interval)


def play_url_of(session: Session, settings: Settings) -> str:
    """PlayStreamAddr: the WHEP resource of a WebRTC session, else its output's address."""
    if session.protocol != "webrtc":
        return outputs.play_url(session.protocol, session.output_target(), settings)
    return whep_url(settings.base_url, session.id, session.play_token)
