"""The session host: one session's media pipeline, owned in one place.

A `SessionHost` holds everything that makes a session's picture and sound: the avatar, the
engine, the live stream (render + encode once, paced by the clock), the outputs (RTMP push,
LiveKit, recording) and the WebRTC viewers. It is what a media worker holds; the API side
holds a small handle (`avatarcast.sessions.handle`) that sends it speech and commands and
receives its events. Everything it needs comes in a `HostSpec` (plain, picklable values) and
the settings; everything it says goes out through `on_event` as plain values:

- `FrameInfo` for every frame once it is on the stream (the drive channel's AudioStart /
  AudioOver come from these);
- `OutputNotice` when an output's state changes (a Type 10 notice on the command channel);
- nothing else: a stream that dies is seen through `wait_closed()` / `error`.

The command methods (`push_audio`, `end_audio`, `say_text`, `interrupt`) are synchronous and
may block (TTS, alignment): callers on an event loop run them in a thread, as the in-process
handle does. The host knows nothing of HTTP, keys, quotas or the command channel's protocol.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from avatarcast.avatars.registry import load_avatar
from avatarcast.engine.live import LiveStream
from avatarcast.engine.spec import HostEvent, HostSpec, OutputNotice
from avatarcast.engine.timeline import Engine, EngineFrame
from avatarcast.errors import AvatarcastError, AvatarLoadError, SessionClosed, TtsError
from avatarcast.media import FrameInfo, Pcm, SpeechEvent
from avatarcast.settings import Settings
from avatarcast.speech.tts import get_backend
from avatarcast.stream.clock import Clock
from avatarcast.stream.encoder import VideoOptions
from avatarcast.stream.outputs import Output, make_outputs
from avatarcast.stream.sei import sei_for_frames
from avatarcast.stream.webrtc import WebRtcOutput

log = logging.getLogger(__name__)


def frame_info(frame: EngineFrame) -> FrameInfo:
    return FrameInfo(frame.index, frame.utterance_id, list(frame.events))


def build_engine(spec: HostSpec, settings: Settings) -> Engine:
    """Load the avatar (the first load renders its layers: call it off the event loop)."""
    try:
        avatar = load_avatar(
            spec.asset_key, settings.data_dir, settings.video_width, settings.video_height
        )
    except AvatarcastError:
        raise  # UnknownAvatarError → 100015, SettingsError → 100001
    except Exception as exc:  # a broken asset must fail the session, not the server
        raise AvatarLoadError(f"cannot load avatar {spec.asset_key!r}: {exc}") from exc
    if spec.alpha:
        # Colour and matte packed side by side in one picture, so every protocol carries
        # the matte (layout in docs/outputs.md).
        from avatarcast.avatars.alpha import pack_alpha

        avatar = pack_alpha(avatar)
    return Engine(
        avatar,
        seed=spec.seed,
        tts=get_backend(settings.tts_backend),
        lookahead_ms=settings.lookahead_ms,
        voice=spec.voice or settings.voice,
        max_queued_s=settings.max_audio_buffer_s,
        lipsync_method=settings.lipsync_method,
    )


class EngineControls:
    """The drive commands on an engine: speech in, interrupt; each utterance's SEI kept.

    `flush` (the live stream's) runs when an interrupt cut something, so speech already
    encoded and queued for viewers does not play either.
    """

    def __init__(self, engine: Engine, flush: Callable[[], None] | None = None) -> None:
        self.engine = engine
        self.flush = flush
        self.sei: dict[str, str] = {}  # utterance id → VideoSeiInfo, until its last frame

    @property
    def language(self) -> str:
        return self.engine.language

    def push_audio(
        self, pcm: Pcm, utterance_id: str, text: str | None = None, sei: str | None = None
    ) -> None:
        """Streamed audio of `utterance_id` (AudioInputError when the engine's queue is full)."""
        if sei:
            self.sei[utterance_id] = sei
        self.engine.push_audio(pcm, utterance_id, text)

    def end_audio(self) -> None:
        self.engine.end_audio()

    def say_text(
        self,
        text: str,
        voice: str | None,
        utterance_id: str,
        sei: str | None = None,
        on_queued: Callable[[], None] | None = None,
    ) -> None:
        """Speak `text`; `on_queued` runs (on this thread) once its first sentence is queued."""
        if sei:
            self.sei[utterance_id] = sei
        try:
            self.engine.say_text(text, voice, utterance_id, on_queued)
        except BaseException:
            self.sei.pop(utterance_id, None)
            raise

    def interrupt(self) -> int:
        """Cut everything queued; returns the index of the first frame made after the cut."""
        if self.engine.interrupt() and self.flush is not None:
            # Only when something was cut: a text sent while idle should not cost an IDR.
            self.flush()
        return self.engine.frame_index

    def sei_info(self, utterance_id: str | None) -> str | None:
        return self.sei.get(utterance_id) if utterance_id else None

    def frame_done(self, frame: EngineFrame) -> None:
        """Forget the SEI of utterances that ended in `frame` (it is on the stream now)."""
        for ev, uid in frame.events:
            if ev is not SpeechEvent.START:
                self.sei.pop(uid, None)


async def say_text_queued(
    controls: EngineControls, text: str, voice: str | None, utterance_id: str, sei: str | None
) -> None:
    """`controls.say_text` in a thread, returning once the first sentence is queued.

    A natural voice makes long text sentence by sentence while it plays, and an interrupt
    must not wait for all of it. An error before the first sentence is raised (TtsError
    unless it is already one of ours); a later one is logged, and the utterance ends there.
    """
    loop = asyncio.get_running_loop()
    queued = asyncio.Event()

    def on_queued() -> None:  # on the TTS thread
        loop.call_soon_threadsafe(queued.set)

    job = asyncio.ensure_future(
        asyncio.to_thread(controls.say_text, text, voice, utterance_id, sei, on_queued)
    )
    waiter = asyncio.ensure_future(queued.wait())
    await asyncio.wait({job, waiter}, return_when=asyncio.FIRST_COMPLETED)
    waiter.cancel()
    if job.done() and job.exception() is not None and not queued.is_set():
        exc = job.exception()
        if isinstance(exc, AvatarcastError):
            raise exc
        raise TtsError(f"text-to-speech failed: {exc}") from exc

    def late_failure(job: asyncio.Future[None]) -> None:
        if not job.cancelled() and job.exception() is not None:
            log.warning(
                "utterance %s: text-to-speech stopped early: %s", utterance_id, job.exception()
            )

    job.add_done_callback(late_failure)


class SessionHost:
    """One session's media: engine, live stream, outputs, WebRTC viewers."""

    def __init__(
        self,
        spec: HostSpec,
        settings: Settings,
        clock: Clock,
        on_event: Callable[[HostEvent], None] = lambda event: None,
    ) -> None:
        self.spec = spec
        self.settings = settings
        self.clock = clock
        self.on_event = on_event
        self.engine: Engine | None = None
        self.controls: EngineControls | None = None
        self.live: LiveStream | None = None
        self.outputs: list[Output] = []
        self.viewers: WebRtcOutput | None = None
        self._stopped = False

    # ---- lifecycle ----------------------------------------------------------------------
    def load(self) -> None:
        """Load the avatar and make the engine (slow on a first load: call it in a thread)."""
        engine = build_engine(self.spec, self.settings)
        # The lip-sync classifier and pocketsphinx's acoustic model (its phone-score inputs)
        # load on first use, ~0.3 s once per process: here, not on the first utterance.
        from avatarcast.speech.lipsync_model import load_ensemble
        from avatarcast.speech.phone_scores import load_phone_model

        load_ensemble()
        load_phone_model()
        if engine.language.strip().lower().startswith("en"):
            # SEND_AUDIO may carry its words (Data.Text): have the aligner's decoder loaded
            # before the first such chunk, not while the channel waits for it.
            from avatarcast.speech.text_stream import prewarm

            prewarm()
        self.engine = engine

    async def start(self) -> None:
        """Start streaming (after `load`); returns once the first frame is published."""
        assert self.engine is not None, "load() first"
        engine = self.engine
        video = VideoOptions(
            width=engine.avatar.width,  # twice the avatar's width when the matte is packed in
            height=engine.avatar.height,
            preset=self.settings.x264_preset,
            bitrate_kbps=self.settings.video_bitrate_kbps,
            keyframe_interval_s=self.settings.keyframe_interval_s,
        )
        controls = EngineControls(engine)
        self.controls = controls
        # Frames of utterances with VideoSeiInfo carry it as SEI in every H.264 output.
        live = LiveStream(
            engine,
            video,
            self.clock,
            on_frame=self._on_frame,
            sei_for=sei_for_frames(controls.sei_info),
            audio_bitrate_kbps=self.settings.audio_bitrate_kbps,
            idle_loop=self.settings.idle_loop_shared,
            name=f"live-{self.spec.session_id[:8]}",
        )
        controls.flush = live.flush
        self.live = live
        await live.start()
        target = self.spec.target(self._notify)
        for output in make_outputs(self.spec.protocol, target, self.settings, live):
            self.outputs.append(output)
            await output.start()

    async def stop(self) -> None:
        """Stop whatever runs; never raises (closing must always finish)."""
        self._stopped = True
        sid = self.spec.session_id
        for output in self.outputs:
            try:
                await output.stop()
            except Exception:
                log.exception("session %s: stopping output %s failed", sid, output.name)
        if self.live is not None:
            try:
                await self.live.stop()  # WebRTC viewers close when the stream ends
            except Exception:
                log.exception("session %s: stopping the live stream failed", sid)
        if self.engine is not None:
            self.engine.interrupt()  # drop queued speech so nothing holds its buffers

    @property
    def closed(self) -> bool:
        return self._stopped or (self.live is not None and self.live.closed)

    @property
    def error(self) -> BaseException | None:
        """Why the stream died, if it did (None while it runs or after a clean stop)."""
        return self.live.error if self.live is not None else None

    async def wait_closed(self) -> None:
        assert self.live is not None
        await self.live.wait_closed()

    # ---- viewers ------------------------------------------------------------------------
    async def whep_answer(self, offer_sdp: str) -> tuple[str, str]:
        """A WebRTC viewer's offer → (answer SDP, resource id); see `WebRtcOutput.answer`."""
        live = self.live
        if live is None or live.closed:
            raise SessionClosed("the live stream has ended")
        if self.viewers is None or self.viewers.closed:
            self.viewers = WebRtcOutput(live, self.settings)
        return await self.viewers.answer(offer_sdp)

    async def whep_close(self, resource_id: str) -> bool:
        """A viewer leaves; False if there is no such viewer."""
        if self.viewers is None:
            return False
        return await self.viewers.close(resource_id)

    def status(self) -> dict[str, Any]:
        """What statsession and the status endpoint show about the media."""
        live = self.live
        return {
            "Outputs": [o.status() for o in self.outputs],
            "FramesSent": live.frames_sent if live is not None else 0,
            "LateFrames": live.late_frames if live is not None else 0,
            "Viewers": live.viewers if live is not None else 0,
            "Speaking": bool(self.engine is not None and self.engine.speaking),
            "OnIdleLoop": bool(live is not None and live.on_loop),
        }

    # ---- events out ---------------------------------------------------------------------
    def _on_frame(self, frame: EngineFrame) -> None:
        if self.controls is not None:
            self.controls.frame_done(frame)
        self.on_event(frame_info(frame))

    def _notify(self, event: dict[str, Any]) -> None:
        self.on_event(OutputNotice(dict(event)))
