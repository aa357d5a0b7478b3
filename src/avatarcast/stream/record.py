"""Recording output (`record_sessions`): every session's stream as an MP4 file, for audits.

One file per session, `<record_path>/<SessionId>.mp4` (H.264 copied from the live stream, SEI
included, and AAC from its PCM), written by its own thread from a fan-out subscription, so a
slow disk never delays the session; if the disk falls 10 s behind, the recording skips to the
next keyframe (the gap shows in its timestamps). The file is written as `<SessionId>.mp4.part`
and renamed when the session closes and the MP4 index is written: a `.mp4` is always complete.
A recording that fails (disk full) stops and says why in `status()`; the session goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from avatarcast.stream.fanout import FanOutClosed, Subscription
from avatarcast.stream.packets import AudioChunk, MediaSource, VideoPacket
from avatarcast.stream.remux import LiveMuxer, SerialWorker, access_unit

if TYPE_CHECKING:
    from avatarcast.settings import Settings
    from avatarcast.stream.target import OutputTarget

log = logging.getLogger(__name__)

VIDEO_QUEUE = 250  # 10 s of frames
AUDIO_QUEUE = 500
STOP_WAIT_S = 10.0


class RecordOutput:
    name = "record"

    def __init__(
        self, live: MediaSource, path: Path, *, audio_bitrate_kbps: int = 64, session_id: str = ""
    ) -> None:
        self.live = live
        self.path = path
        self.part = path.with_name(path.name + ".part")
        self.audio_bitrate_kbps = audio_bitrate_kbps
        self.session_id = session_id
        self.state = "starting"  # starting → recording → done | failed
        self.error = ""
        self.frames = 0
        self._mux: LiveMuxer | None = None
        self._video: Subscription[VideoPacket] | None = None
        self._audio: Subscription[AudioChunk] | None = None
        self._worker: SerialWorker | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._video = self.live.video.subscribe(VIDEO_QUEUE)
        self._audio = self.live.audio.subscribe(AUDIO_QUEUE)
        self._worker = SerialWorker(f"record-{self.session_id}")
        self._task = asyncio.create_task(self._pump(), name="record-pump")
        self.live.request_keyframe()  # start recording now, not at the next GOP

    async def stop(self) -> None:
        """Write what is queued, then the MP4 index; the file is complete on return."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._worker is None or self._video is None or self._audio is None:
            return
        rest: list[tuple[VideoPacket, list[AudioChunk]]] = []
        with contextlib.suppress(FanOutClosed):
            while (vp := self._video.get_nowait()) is not None:
                rest.append((vp, []))
        audio = self._drain_audio()
        if rest:
            rest[-1][1].extend(audio)
        self._video.close()
        self._audio.close()
        done = self._worker.submit(functools.partial(self._finish, rest))
        self._worker.close()
        try:
            await asyncio.wait_for(done, STOP_WAIT_S)
        except Exception as exc:
            self.state, self.error = "failed", f"finishing the recording failed: {exc}"
            log.warning("session %s: %s", self.session_id, self.error)

    def status(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "state": self.state,
            "path": str(self.path),
            "frames": self.frames,
            "last_error": self.error,
        }

    def _drain_audio(self) -> list[AudioChunk]:
        out: list[AudioChunk] = []
        assert self._audio is not None
        with contextlib.suppress(FanOutClosed):
            while (chunk := self._audio.get_nowait()) is not None:
                out.append(chunk)
        return out

    async def _pump(self) -> None:
        assert self._video is not None and self._worker is not None
        while self.state in ("starting", "recording"):
            try:
                vp = await self._video.get()
            except FanOutClosed:
                return
            # Not waited for (one hand-off per frame); `stop` writes the rest after it.
            write = functools.partial(self._write, vp, self._drain_audio())
            await self._worker.feed(write, _no_result)

    # ---- writer thread ---------------------------------------------------------------------
    def _write(self, vp: VideoPacket, audio: list[AudioChunk]) -> None:
        if self.state not in ("starting", "recording"):
            return
        try:
            if self._mux is None:
                self.part.parent.mkdir(parents=True, exist_ok=True)
                # The subscription starts at a keyframe: its SPS/PPS set up the file.
                self._mux = LiveMuxer(
                    str(self.part),
                    "mp4",
                    access_unit(vp),
                    fps=self.live.options.fps,
                    audio_bitrate_kbps=self.audio_bitrate_kbps,
                )
                self.state = "recording"
            if self._mux.write(vp, audio):
                self.frames += 1
        except Exception as exc:
            self.state, self.error = "failed", f"recording failed: {exc}"
            log.warning("session %s: %s; the session goes on", self.session_id, self.error)
            self._close()

    def _finish(self, rest: list[tuple[VideoPacket, list[AudioChunk]]]) -> None:
        for vp, audio in rest:
            self._write(vp, audio)
        if self._close() and self.state == "recording":
            self.part.replace(self.path)
            self.state = "done"

    def _close(self) -> bool:
        mux, self._mux = self._mux, None
        if mux is None:
            return False
        try:
            mux.close()
        except Exception as exc:
            self.state, self.error = "failed", f"closing the recording failed: {exc}"
            return False
        return True


def make_output(target: OutputTarget, settings: Settings, live: MediaSource) -> RecordOutput:
    return RecordOutput(
        live,
        settings.record_path / f"{target.session_id}.mp4",
        audio_bitrate_kbps=settings.audio_bitrate_kbps,
        session_id=target.session_id,
    )


def _no_result(_: None) -> None:
    """`_write` returns nothing: no result ever comes back to the loop."""
