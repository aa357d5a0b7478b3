"""Bring a session's media up and down: avatar → engine → drive channel → live stream.

The manager calls a *media factory* `async (session) -> None` that attaches these parts to
the session and returns once the first frame is published; `attach_media` is the real one.
Tests may pass a lighter factory (an engine without a live stream) to test the API alone.
"""

from __future__ import annotations

import asyncio
import logging
import zlib
from collections.abc import Awaitable, Callable

from avatarcast.avatars.registry import load_avatar
from avatarcast.engine.timeline import Engine
from avatarcast.errors import AvatarcastError, AvatarLoadError
from avatarcast.sessions.session import Session
from avatarcast.settings import Settings
from avatarcast.speech.tts import get_backend
from avatarcast.stream.clock import Clock

log = logging.getLogger(__name__)

MediaFactory = Callable[[Session], Awaitable[None]]


def session_seed(session_id: str) -> int:
    """A stable seed per session, so two sessions of one avatar do not blink in step."""
    return zlib.crc32(session_id.encode("utf-8"))


async def build_engine(session: Session, settings: Settings) -> Engine:
    """Load the session's avatar (off the event loop: the first load renders its layers)."""
    try:
        avatar = await asyncio.to_thread(
            load_avatar,
            session.asset_key,
            settings.data_dir,
            settings.video_width,
            settings.video_height,
        )
    except AvatarcastError:
        raise  # UnknownAvatarError → 100015, SettingsError → 100001
    except Exception as exc:  # a broken asset must fail the session, not the server
        raise AvatarLoadError(f"cannot load avatar {session.asset_key!r}: {exc}") from exc
    if session.alpha:
        # Colour and matte packed side by side in one picture, so every protocol carries
        # the matte (layout in docs/outputs.md).
        from avatarcast.render.alpha import pack_alpha

        avatar = pack_alpha(avatar)
    return Engine(
        avatar,
        seed=session_seed(session.id),
        tts=get_backend(settings.tts_backend),
        lookahead_ms=settings.lookahead_ms,
        voice=session.voice or settings.voice,
        max_queued_s=settings.max_audio_buffer_s,
        lipsync_method=settings.lipsync_method,
    )


async def attach_media(
    session: Session,
    settings: Settings,
    clock: Clock,
    *,
    on_activity: Callable[[], None] | None = None,
) -> None:
    """Attach engine, drive channel and live stream; return once the first frame is out.

    `on_activity` is called by the drive channel on each drive command or heartbeat (the
    manager passes its `touch`); by default it renews `session.last_activity` itself.
    """
    from avatarcast.sessions.drive import DriveChannel
    from avatarcast.stream.encoder import VideoOptions
    from avatarcast.stream.live import LiveStream

    def touch() -> None:
        session.last_activity = clock.now()

    engine = await build_engine(session, settings)
    session.engine = engine
    drive = DriveChannel(session, engine, settings, clock, on_activity=on_activity or touch)
    session.drive = drive
    video = VideoOptions(
        width=engine.avatar.width,  # twice the avatar's width when the matte is packed in
        height=engine.avatar.height,
        preset=settings.x264_preset,
        bitrate_kbps=settings.video_bitrate_kbps,
        keyframe_interval_s=settings.keyframe_interval_s,
    )
    from avatarcast.stream.sei import sei_for_frames

    # Frames of utterances with VideoSeiInfo carry it as SEI in every H.264 output.
    live = LiveStream(
        engine,
        video,
        clock,
        on_frame=drive.on_frame,
        sei_for=sei_for_frames(drive.sei_info),
        audio_bitrate_kbps=settings.audio_bitrate_kbps,
    )
    session.live = live
    await live.start()
    from avatarcast.sessions.outputs import make_outputs

    for output in make_outputs(session, settings, live):
        session.outputs.append(output)
        await output.start()


async def detach_media(session: Session) -> None:
    """Stop whatever media is attached; never raises (closing must always finish)."""
    drive, live = session.drive, session.live
    for output in session.outputs:
        try:
            await output.stop()
        except Exception:
            log.exception("session %s: stopping output %s failed", session.id, output.name)
    if drive is not None:
        try:
            await drive.close()
        except Exception:
            log.exception("session %s: closing the drive channel failed", session.id)
    if live is not None:
        try:
            await live.stop()
        except Exception:
            log.exception("session %s: stopping the live stream failed", session.id)
    if session.engine is not None:
        session.engine.interrupt()  # drop queued speech so nothing holds its buffers
