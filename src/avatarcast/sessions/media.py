"""Bring a session's media up and down: session host → handle → drive channel.

The manager calls a *media factory* `async (session) -> None` that attaches a host handle
and a drive channel to the session and returns once the first frame is published;
`attach_media` is the real one (media in this process). Tests may pass a lighter factory.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from avatarcast.engine.host import SessionHost
from avatarcast.engine.spec import HostEvent, OutputNotice
from avatarcast.media import FrameInfo
from avatarcast.sessions.drive import DriveChannel
from avatarcast.sessions.handle import LocalHost
from avatarcast.sessions.session import Session
from avatarcast.sessions.workers import WorkerPool, WorkerProc
from avatarcast.settings import Settings
from avatarcast.stream.clock import Clock

log = logging.getLogger(__name__)

MediaFactory = Callable[[Session], Awaitable[None]]


def event_sink(session: Session) -> Callable[[HostEvent], None]:
    """Where a host's events go on the API side: frames and notices to the drive channel."""

    def deliver(event: HostEvent) -> None:
        drive = session.drive
        if drive is None:
            return
        if isinstance(event, FrameInfo):
            drive.on_frame(event)
        elif isinstance(event, OutputNotice):
            drive.output_notice(event.event)

    return deliver


async def attach_media(
    session: Session,
    settings: Settings,
    clock: Clock,
    *,
    on_activity: Callable[[], None] | None = None,
) -> None:
    """Attach the session's host (in this process) and drive channel; return once the
    first frame is out.

    `on_activity` is called by the drive channel on each drive command or heartbeat (the
    manager passes its `touch`); by default it renews `session.last_activity` itself.
    """

    def touch() -> None:
        session.last_activity = clock.now()

    host = SessionHost(session.host_spec(), settings, clock, event_sink(session))
    try:
        await asyncio.to_thread(host.load)  # the first load of an avatar renders its layers
        await host.start()
    except BaseException:  # failed or cancelled (timeout): stop what did start
        await host.stop()
        raise
    handle = LocalHost.of(host)
    session.host = handle
    session.drive = DriveChannel(session, handle, settings, clock, on_activity=on_activity or touch)


async def attach_worker_media(
    session: Session,
    pool: WorkerPool,
    worker: WorkerProc,
    settings: Settings,
    clock: Clock,
    *,
    on_activity: Callable[[], None] | None = None,
) -> None:
    """`attach_media`, with the session's media in `worker` (a process of `pool`)."""

    def touch() -> None:
        session.last_activity = clock.now()

    handle = await pool.open(worker, session.host_spec(), event_sink(session))
    session.host = handle
    session.drive = DriveChannel(session, handle, settings, clock, on_activity=on_activity or touch)


async def detach_media(session: Session) -> None:
    """Stop whatever media is attached; never raises (closing must always finish)."""
    drive, host = session.drive, session.host
    if drive is not None:
        try:
            await drive.close()
        except Exception:
            log.exception("session %s: closing the drive channel failed", session.id)
    if host is not None:
        await host.stop()
