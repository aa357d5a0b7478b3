"""The avatar engine: speech in, one frame (video + its 40 ms of audio) out per call.

Pull-based and clock-free: `next_frame()` produces frame n of the session timeline; frame n
is shown at n / 25 s and carries audio samples [640 n, 640 (n + 1)). The offline renderer calls
it as fast as it can; a live session calls it on a `FramePacer`. Same code path for both.

Speech is queued as utterances, played in order. Each utterance is either
- streamed audio (`push_audio` … `end_audio`): the streaming lip-sync commits each frame's
  mouth once `lookahead_ms` of audio beyond it has arrived, so speech starts only when its
  first frame can be shown with a committed mouth;
- complete audio (`say_audio`), optionally with its text (forced alignment when English);
- text (`say_text`): TTS gives audio and exact phoneme times, hence an exact mouth track.
`interrupt()` drops everything queued and the mouth returns to rest at once.
"""

from __future__ import annotations

import itertools
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from avatarcast import FRAME_RATE_HZ, SAMPLES_PER_FRAME
from avatarcast.avatars.base import Avatar
from avatarcast.errors import AudioInputError
from avatarcast.media import Pcm, SpeechEvent
from avatarcast.render.frame import YuvFrame
from avatarcast.render.motion import IdleMotion
from avatarcast.speech.audio_lipsync import StreamingLipSync, is_english, track_from_audio
from avatarcast.speech.text_lipsync import track_from_phonemes
from avatarcast.speech.text_stream import AlignedLipSync
from avatarcast.speech.tts import PhonemeSpan, TtsBackend, Utterance
from avatarcast.speech.visemes import REST, MouthPose, Shape

__all__ = ["Engine", "EngineFrame", "Pcm", "SpeechEvent"]  # Pcm, SpeechEvent: avatarcast.media


class EngineFrame:
    """Frame `index` of the session timeline: its picture, its 40 ms of audio, its events.

    `video` may be given as a function that renders it: a skipped idle frame
    (`Engine.skip_idle_frame`) renders only if someone looks at its picture.
    """

    __slots__ = ("_video", "audio", "events", "index", "mouth", "utterance_id")

    def __init__(
        self,
        index: int,
        video: YuvFrame | Callable[[], YuvFrame],
        audio: Pcm,  # exactly SAMPLES_PER_FRAME samples
        mouth: MouthPose,
        utterance_id: str | None = None,
        events: list[tuple[SpeechEvent, str]] | None = None,
    ) -> None:
        self.index = index
        self._video = video
        self.audio = audio
        self.mouth = mouth
        self.utterance_id = utterance_id
        self.events = events if events is not None else []

    @property
    def video(self) -> YuvFrame:
        """The picture (rendered now if it was not yet: call it off the event loop)."""
        if not isinstance(self._video, YuvFrame):
            self._video = self._video()
        return self._video

    @property
    def rendered(self) -> bool:
        return isinstance(self._video, YuvFrame)

    @property
    def time_s(self) -> float:
        return self.index / FRAME_RATE_HZ

    def __repr__(self) -> str:
        return (
            f"EngineFrame(index={self.index}, utterance_id={self.utterance_id!r}, "
            f"events={self.events!r})"
        )


class _PcmQueue:
    """Audio chunks read front to back in frame-sized pieces, without re-concatenating."""

    def __init__(self) -> None:
        self._chunks: deque[Pcm] = deque()
        self._offset = 0  # samples already read from the first chunk

    def append(self, pcm: Pcm) -> None:
        self._chunks.append(pcm)

    def read(self, n: int) -> Pcm:
        """Next `n` samples, zero-padded when fewer are left."""
        out = np.zeros(n, np.int16)
        filled = 0
        while filled < n and self._chunks:
            head = self._chunks[0]
            take = min(n - filled, head.size - self._offset)
            out[filled : filled + take] = head[self._offset : self._offset + take]
            filled += take
            self._offset += take
            if self._offset >= head.size:
                self._chunks.popleft()
                self._offset = 0
        return out


@dataclass
class _Speech:
    """One queued utterance: its audio and the mouth poses committed so far."""

    id: str
    audio: _PcmQueue = field(default_factory=_PcmQueue)
    n_samples: int = 0
    poses: list[MouthPose] = field(default_factory=list)
    final: bool = False
    lipsync: StreamingLipSync | AlignedLipSync | None = None
    played_frames: int = 0

    def add(self, pcm: Pcm) -> None:
        self.audio.append(pcm)
        self.n_samples += pcm.size

    @property
    def total_frames(self) -> int | None:
        return -(-self.n_samples // SAMPLES_PER_FRAME) if self.final else None

    def frame_ready(self, k: int) -> bool:
        have_audio = self.final or (k + 1) * SAMPLES_PER_FRAME <= self.n_samples
        return k < len(self.poses) and have_audio


class Engine:
    """One avatar's real-time engine. Thread-safe: inputs may come from another thread."""

    def __init__(
        self,
        avatar: Avatar,
        *,
        seed: int = 0,
        lookahead_ms: int = 200,
        language: str = "en",
        tts: TtsBackend | None = None,
        voice: str | None = None,
        max_queued_s: float = 60.0,
        lipsync_method: str = "model",
    ) -> None:
        self.avatar = avatar
        self.motion = IdleMotion(seed)
        self.lookahead_ms = lookahead_ms
        self.language = language
        self.lipsync_method = lipsync_method
        self.tts = tts
        self.voice = voice
        self.max_queued_samples = int(max_queued_s * SAMPLES_PER_FRAME * FRAME_RATE_HZ)
        self._queue: deque[_Speech] = deque()
        self._lock = threading.Lock()  # guards the queue; held only briefly
        self._input_lock = threading.Lock()  # serialises audio analysis, never held by frames
        self._lipsync_pool: list[StreamingLipSync] = []
        self._frame_index = 0
        self._ids = itertools.count(1)
        self._pending_events: list[tuple[SpeechEvent, str]] = []

    # ---- inputs -------------------------------------------------------------------------
    def _new_id(self, utterance_id: str | None) -> str:
        return utterance_id or f"u{next(self._ids)}"

    def _queued_samples(self) -> int:
        return sum(s.n_samples - s.played_frames * SAMPLES_PER_FRAME for s in self._queue)

    def _check_room(self, n: int) -> None:
        if self._queued_samples() + n > self.max_queued_samples:
            raise AudioInputError(
                f"speech queue full: more than {self.max_queued_samples / 16000:.0f} s buffered"
            )

    def _take_lipsync(self) -> StreamingLipSync:
        """A streaming lip-sync for a new utterance: a used one reset, or a new one.

        Loading the recognizer takes a few hundred ms, so finished instances are kept and
        reused; this runs outside the frame lock so the frame loop never waits for it.
        """
        with self._lock:
            used = self._lipsync_pool.pop() if self._lipsync_pool else None
        if used is not None:
            used.reset()
            return used
        return StreamingLipSync(
            lookahead_ms=self.lookahead_ms, language=self.language, method=self.lipsync_method
        )

    def _release(self, sp: _Speech) -> None:
        """Called under the frame lock when an utterance leaves the queue."""
        if isinstance(sp.lipsync, AlignedLipSync):
            sp.lipsync.close()  # one per utterance; its decoder goes back to the pool
            sp.lipsync = None
        elif sp.lipsync is not None and len(self._lipsync_pool) < 2:
            self._lipsync_pool.append(sp.lipsync)
            sp.lipsync = None

    def push_audio(self, pcm: Pcm, utterance_id: str | None = None, text: str | None = None) -> str:
        """Append streamed audio to the open utterance (or open one); returns its id.

        `text`: the words the new utterance speaks (read when this call opens one; English):
        its mouth then follows incremental forced alignment (`speech/text_stream.py`), with
        recognition for frames the alignment cannot answer yet.
        The analysis runs outside the frame lock: a live session keeps its 25 fps while a
        chunk is analysed. Calls for one engine must come from one producer at a time.
        """
        pcm = _as_pcm(pcm)
        with self._input_lock:
            with self._lock:
                self._check_room(pcm.size)
                cur = self._queue[-1] if self._queue and not self._queue[-1].final else None
                lipsync = cur.lipsync if cur is not None else None
            if cur is None or lipsync is None:
                if text and text.strip() and is_english(self.language):
                    lipsync = AlignedLipSync(
                        text, lookahead_ms=self.lookahead_ms, method=self.lipsync_method
                    )
                else:
                    lipsync = self._take_lipsync()
                cur = _Speech(self._new_id(utterance_id), lipsync=lipsync)
                with self._lock:
                    self._queue.append(cur)
            # An interrupt may drop `cur` meanwhile; its audio is then discarded with it.
            poses = lipsync.push(pcm) if pcm.size else []
            with self._lock:
                cur.add(pcm)
                cur.poses.extend(poses)
            return cur.id

    def end_audio(self) -> str | None:
        """Mark the open streamed utterance as complete; its last frames commit now."""
        with self._input_lock:
            with self._lock:
                cur = self._queue[-1] if self._queue and not self._queue[-1].final else None
                lipsync = cur.lipsync if cur is not None else None
            if cur is None or lipsync is None:
                return None
            poses = lipsync.finish()
            with self._lock:
                cur.poses.extend(poses)
                cur.final = True
                if cur.n_samples == 0 and self._queue and self._queue[-1] is cur:
                    self._release(self._queue.pop())
            return cur.id

    def say_audio(self, pcm: Pcm, text: str | None = None, utterance_id: str | None = None) -> str:
        """Queue a complete clip; with its English text the mouth follows forced alignment."""
        pcm = _as_pcm(pcm)
        if pcm.size == 0:
            raise AudioInputError("audio has no samples")
        poses = track_from_audio(pcm, text=text, language=self.language, method=self.lipsync_method)
        return self._queue_complete(pcm, poses, utterance_id)

    def say_text(
        self,
        text: str,
        voice: str | None = None,
        utterance_id: str | None = None,
        on_queued: Callable[[], None] | None = None,
    ) -> Utterance:
        """Synthesize `text` and queue it with its exact phoneme-timed mouth track.

        A backend that speaks sentence by sentence (`sentences`, piper) has the first one
        queued as soon as it is made — it plays while the next are synthesized, appended to
        the same utterance without a gap (each padded to whole frames, < 40 ms). Returns the
        whole utterance once every sentence is made (or the part made before an interrupt).
        `on_queued` is called (from this thread) once the first part is queued.
        """
        if self.tts is None:
            from avatarcast.speech.tts import get_backend

            self.tts = get_backend("auto")
        voice = voice or self.voice
        pieces = getattr(self.tts, "sentences", None)
        if pieces is None:
            utt = self.tts.synthesize(text, voice=voice)
            n_frames = -(-utt.pcm.size // SAMPLES_PER_FRAME)
            poses = track_from_phonemes(utt.phonemes, n_frames, FRAME_RATE_HZ)
            self._queue_complete(utt.pcm, poses, utterance_id)
            if on_queued is not None:
                on_queued()
            return utt
        from avatarcast.speech.piper_tts import concat_utterances

        made: list[Utterance] = []
        sp: _Speech | None = None
        try:
            for part in pieces(text, voice):
                n_frames = -(-part.pcm.size // SAMPLES_PER_FRAME)
                pcm = np.zeros(n_frames * SAMPLES_PER_FRAME, np.int16)
                pcm[: part.pcm.size] = part.pcm
                poses = track_from_phonemes(part.phonemes, n_frames, FRAME_RATE_HZ)
                spans = list(part.phonemes)
                if pcm.size > part.pcm.size:  # the padding is silence, and a span too
                    end = pcm.size / (SAMPLES_PER_FRAME * FRAME_RATE_HZ)
                    spans.append(PhonemeSpan(part.duration_s, end, "_", Shape.X))
                made.append(Utterance(pcm, spans, part.text, part.voice))
                with self._lock:
                    first = sp is None
                    if sp is None:
                        self._check_room(pcm.size)
                        sp = _Speech(self._new_id(utterance_id))
                        self._queue.append(sp)
                    elif sp not in self._queue:
                        break  # interrupted: stop making the rest
                    sp.add(pcm)
                    sp.poses.extend(poses)
                if first and on_queued is not None:
                    on_queued()
        finally:
            if sp is not None:  # even when a later sentence failed: what was made plays out
                with self._lock:
                    sp.final = True
        if sp is None:
            from avatarcast.errors import TextInputError

            raise TextInputError(f"nothing to speak in {text[:40]!r}")
        return concat_utterances(made, text)

    def _queue_complete(self, pcm: Pcm, poses: list[MouthPose], utterance_id: str | None) -> str:
        with self._lock:
            self._check_room(pcm.size)
            sp = _Speech(self._new_id(utterance_id), poses=list(poses), final=True)
            sp.add(pcm)
            self._queue.append(sp)
            return sp.id

    def interrupt(self) -> list[str]:
        """Drop the current and queued utterances; returns the ids that were cut."""
        with self._lock:
            cut = [s.id for s in self._queue]
            if self._queue and self._queue[0].played_frames > 0:
                self._pending_events.append((SpeechEvent.INTERRUPTED, self._queue[0].id))
            for sp in self._queue:
                self._release(sp)
            self._queue.clear()
            return cut

    # ---- state --------------------------------------------------------------------------
    @property
    def frame_index(self) -> int:
        return self._frame_index

    @property
    def speaking(self) -> bool:
        with self._lock:
            return bool(self._queue) and self._queue[0].played_frames > 0

    def idle(self) -> bool:
        """True when nothing is queued or playing."""
        with self._lock:
            return not self._queue

    def use_motion(self, motion: IdleMotion) -> None:
        """Idle motion from now on (a live stream on a shared idle loop follows the loop's)."""
        with self._lock:
            self.motion = motion

    # ---- output -------------------------------------------------------------------------
    def skip_idle_frame(self) -> EngineFrame | None:
        """Advance one idle frame without rendering it, or None if the next frame is not idle.

        The frame is exactly the one `next_frame()` would make (index, silence, rest mouth,
        pending events such as an interrupt's), except that its picture is rendered only if
        read (`EngineFrame.video`). None when speech has a frame ready: call `next_frame()`.
        A live stream on a shared idle loop calls this instead of rendering.
        """
        with self._lock:
            sp = self._queue[0] if self._queue else None
            if sp is not None and sp.frame_ready(sp.played_frames):
                return None
            index = self._frame_index
            self._frame_index += 1
            events, self._pending_events = self._pending_events, []
            motion = self.motion
        state = motion.state(index, REST)
        avatar = self.avatar
        silence = np.zeros(SAMPLES_PER_FRAME, np.int16)
        return EngineFrame(index, lambda: avatar.render(state), silence, REST, None, events)

    def next_frame(self) -> EngineFrame:
        with self._lock:
            index = self._frame_index
            self._frame_index += 1
            events, self._pending_events = self._pending_events, []
            mouth, audio, uid = REST, None, None
            sp = self._queue[0] if self._queue else None
            if sp is not None and sp.frame_ready(sp.played_frames):
                k = sp.played_frames
                if k == 0:
                    events.append((SpeechEvent.START, sp.id))
                mouth = sp.poses[k]
                audio = sp.audio.read(SAMPLES_PER_FRAME)
                uid = sp.id
                sp.played_frames += 1
                if sp.final and sp.played_frames == sp.total_frames:
                    events.append((SpeechEvent.END, sp.id))
                    self._release(self._queue.popleft())
            motion = self.motion
        if audio is None:
            audio = np.zeros(SAMPLES_PER_FRAME, np.int16)
        state = motion.state(index, mouth)
        video = self.avatar.render(state)
        return EngineFrame(index, video, audio, mouth, uid, events)


def _as_pcm(pcm: Pcm) -> Pcm:
    arr = np.asarray(pcm)
    if arr.dtype != np.int16:
        raise AudioInputError(f"PCM must be signed 16-bit, got {arr.dtype}")
    return np.ascontiguousarray(arr.reshape(-1))
