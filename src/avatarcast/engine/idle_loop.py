"""The shared idle loop: an avatar at rest, encoded once per process, played by every idle session.

An idle session (nobody speaking) would otherwise render and encode every frame of the same
breathing, blinking avatar. Instead, per (avatar, size, alpha mode, encoder settings) one
`IdleLoop` holds `period_frames` frames of the avatar's idle motion made periodic (frame
L joins frame 0; `IdleMotion(period_frames=L)`), encoded once with H.264 keyframes (IDR, SPS/PPS
repeated, closed GOP) every GOP of the session's encoder (`keyframe_interval_s`, 2 s by
default), plus the Opus packets of their silence.
A live stream on the loop publishes, for each of its slots, the loop's packets of the phase its
engine is at, restamped with the slot's timestamps: the bytes are identical in every session.

Why this is sound for decoders: the loop's encoder uses the session's own `VideoOptions`, so
its SPS/PPS are the session encoder's (a recorder or RTMP muxer that took its headers from
either keeps working); a stream enters the loop only at a loop keyframe and leaves it with an
IDR from its own encoder (`engine.live`). Each loop phase's picture is exactly what the
session's engine would render for that frame: the engine follows the loop's motion
(`motion_for`), so speech starts at phase p with the motion of phase p, without a jump.

Length: `LOOP_S` (8 s, two blink slots) for rendered avatars. A video avatar already shows its
recording's own idle loop (`VideoAvatar.loop_index`): its period in output frames is used
instead (the recording's loop length, converted to 25 fps), up to `MAX_LOOP_FRAMES`; a longer
one is not shared (its sessions render as before).

Memory: the encoded access units and Opus packets only (no raw frames; an output that wants
the raw picture of a loop frame gets it rendered by the engine): 0.73 MB for the built-in
avatar at 540x960, 0.79 MB with its alpha matte, 0.91 MB at 720x1280 (docs/outputs.md).
Loops are kept in a process-wide registry of at most `MAX_LOOPS` (least recently used
dropped; a session keeps its own loop alive), built lazily by a background thread, one at a
time; until a loop is ready its sessions render live as before.
"""

from __future__ import annotations

import logging
import math
import threading
import weakref
from collections import OrderedDict
from dataclasses import dataclass
from fractions import Fraction

import av
import numpy as np

from avatarcast import FRAME_RATE_HZ, SAMPLES_PER_FRAME
from avatarcast.avatars.base import Avatar
from avatarcast.render.motion import IdleMotion
from avatarcast.speech.visemes import REST
from avatarcast.stream.encoder import (
    AUDIO_TIME_BASE,
    VIDEO_CLOCK_HZ,
    VIDEO_TIME_BASE,
    H264Encoder,
    OpusEncoder,
    VideoOptions,
)
from avatarcast.stream.packets import AudioChunk, VideoPacket

log = logging.getLogger(__name__)

LOOP_S = 8.0  # two 4 s blink slots; breathing and sway fitted to whole cycles of it
MAX_LOOP_FRAMES = 60 * FRAME_RATE_HZ  # a video avatar's loop longer than this is not shared
MAX_LOOPS = 16  # loops kept by the registry (each about 0.7-0.9 MB)
LOOP_SEED = 0  # the loop's motion; sessions differ by where in it they start (`motion_for`)
WARM_UP_FRAMES = 25  # encoded and thrown away: rate control settles first


@dataclass(frozen=True)
class LoopKey:
    """What makes two sessions' idle pictures and packets the same."""

    avatar_id: int  # the shared avatar object (see `_base_avatar`)
    name: str  # with "+alpha" when the matte is packed in
    width: int
    height: int
    video: VideoOptions
    audio_bitrate_kbps: int


def loop_period(avatar: Avatar, fps: int = FRAME_RATE_HZ) -> int | None:
    """The idle loop's length in frames for `avatar`, or None if it is too long to share.

    A video avatar picks its loop frame from the frame index (`loop_index`): its pictures
    repeat after the smallest n with n * video_fps / fps a whole multiple of its loop length.
    """
    base = _base_avatar(avatar)
    frames = getattr(base, "loop", None)
    video_fps = getattr(base, "fps", None)
    if frames is None or video_fps is None or not hasattr(base, "loop_index"):
        return round(LOOP_S * fps)
    m = len(frames)
    rate = Fraction(video_fps).limit_denominator(1001)  # fps may be fractional (29.97)
    # n * (p / q) / fps = k * m  →  n = k * m * fps * q / p, smallest whole n
    p, q = rate.numerator, rate.denominator
    top = m * fps * q
    n = top // math.gcd(top, p)
    return n if 0 < n <= MAX_LOOP_FRAMES else None


def _base_avatar(avatar: Avatar) -> Avatar:
    """The shared avatar under per-session wrappers (the alpha packer's `inner`)."""
    base = avatar
    while (inner := getattr(base, "inner", None)) is not None:
        base = inner
    return base


class IdleLoop:
    """One avatar's idle loop; `ready` once encoded. Thread-safe after `build`."""

    def __init__(self, key: LoopKey, period_frames: int) -> None:
        self.key = key
        self.period_frames = period_frames
        # The session encoder's GOP: the loop costs viewers the bandwidth a live idle stream
        # would (1 s GOPs measured 1.08 Mbit/s at 540x960, 2 s ones 0.69), at the price of
        # up to one GOP rendered live after speech before the stream is back on the loop.
        gop = max(1, round(key.video.keyframe_interval_s * key.video.fps))
        self.keyframe_every = min(gop, period_frames)
        self.motion = IdleMotion(LOOP_SEED, period_frames=period_frames)
        self.error: BaseException | None = None
        self._done = threading.Event()  # built, or failed (`error`)
        self._video: list[tuple[bytes, ...]] = []
        self._audio: list[tuple[bytes, ...]] = []

    # ---- for live streams ---------------------------------------------------------------
    @property
    def ready(self) -> bool:
        return self._done.is_set() and self.error is None

    def wait_ready(self, timeout_s: float | None = None) -> bool:
        """Block until built (True) or `timeout_s` passed or the build failed (False)."""
        self._done.wait(timeout_s)
        return self.ready

    @property
    def keyframe_phases(self) -> int:
        return -(-self.period_frames // self.keyframe_every)

    def is_keyframe(self, phase: int) -> bool:
        return phase % self.keyframe_every == 0

    def motion_for(self, seed: int) -> IdleMotion:
        """The loop's motion starting at one of its keyframe phases, chosen by `seed`: frame 0
        of a session is a loop keyframe, and sessions do not all blink in step."""
        start = (seed % self.keyframe_phases) * self.keyframe_every
        return IdleMotion(LOOP_SEED, period_frames=self.period_frames, phase_frames=start)

    def video_packet(self, phase: int, slot: int) -> VideoPacket:
        """Phase `phase`'s access unit stamped for frame slot `slot` (same bytes, new pts)."""
        pts = slot * VIDEO_CLOCK_HZ // self.key.video.fps
        key = self.is_keyframe(phase)
        packets = []
        for data in self._video[phase]:
            p = av.Packet(data)
            p.pts = p.dts = pts
            p.time_base = VIDEO_TIME_BASE
            p.is_keyframe = key
            packets.append(p)
        return VideoPacket(slot, tuple(packets), key)

    def audio_chunk(self, phase: int, slot: int) -> AudioChunk:
        """Phase `phase`'s 40 ms of silence stamped for frame slot `slot`."""
        first = slot * SAMPLES_PER_FRAME
        step = SAMPLES_PER_FRAME // max(1, len(self._audio[phase]))
        packets = []
        for k, data in enumerate(self._audio[phase]):
            p = av.Packet(data)
            p.pts = p.dts = first + k * step
            p.time_base = AUDIO_TIME_BASE
            packets.append(p)
        return AudioChunk(slot, np.zeros(SAMPLES_PER_FRAME, np.int16), tuple(packets))

    @property
    def nbytes(self) -> int:
        """Bytes of encoded media held (Opus packets that repeat are held once)."""
        video = sum(len(b) for au in self._video for b in au)
        audio = sum(len(b) for b in {b for chunk in self._audio for b in chunk})
        return video + audio

    # ---- building -----------------------------------------------------------------------
    def build(self, avatar: Avatar) -> None:
        """Render and encode the loop (a few seconds of CPU); marks it ready."""
        opts = self.key.video
        enc = H264Encoder.standalone(opts)
        opus = OpusEncoder(self.key.audio_bitrate_kbps)
        silence = np.zeros(SAMPLES_PER_FRAME, np.int16)
        video: list[tuple[bytes, ...]] = []
        audio: list[tuple[bytes, ...]] = []
        unique: dict[bytes, bytes] = {}
        # A warm-up pass first (its packets thrown away): x264's rate control starts from
        # its defaults, and its first IDR carries x264's own version SEI.
        total = WARM_UP_FRAMES + self.period_frames
        for i in range(total):
            phase = (i - WARM_UP_FRAMES) % self.period_frames
            picture = avatar.render(self.motion.state(phase, REST))
            keyframe = self.is_keyframe(phase)
            packets = enc.encode(picture, i, keyframe)
            opus_packets = opus.encode(silence, i * SAMPLES_PER_FRAME)
            if i < WARM_UP_FRAMES:
                continue
            if keyframe and not all(_is_idr(bytes(p)) for p in packets[:1]):
                raise RuntimeError(f"idle loop phase {phase}: the encoder made no IDR")
            video.append(tuple(bytes(p) for p in packets))
            audio.append(tuple(unique.setdefault(bytes(p), bytes(p)) for p in opus_packets))
        if len(video) != self.period_frames or any(not au for au in video):
            raise RuntimeError("idle loop: the encoder did not give one access unit per frame")
        self._video, self._audio = video, audio
        self._done.set()

    def fail(self, exc: BaseException) -> None:
        """The build failed: never ready (its sessions keep rendering live)."""
        self.error = exc
        self._done.set()


def _is_idr(access_unit: bytes) -> bool:
    """True if the Annex-B access unit holds an IDR slice (NAL type 5)."""
    i = access_unit.find(b"\x00\x00\x01")
    while i >= 0:
        if i + 3 < len(access_unit) and access_unit[i + 3] & 0x1F == 5:
            return True
        i = access_unit.find(b"\x00\x00\x01", i + 3)
    return False


class IdleLoops:
    """The process's idle loops, by `LoopKey`; built lazily, one at a time, in the background."""

    def __init__(self, max_loops: int = MAX_LOOPS) -> None:
        self.max_loops = max_loops
        self._loops: OrderedDict[LoopKey, tuple[IdleLoop, weakref.ref[Avatar]]] = OrderedDict()
        self._lock = threading.Lock()
        self._build_lock = threading.Lock()  # one build at a time: they are CPU-heavy

    def get(self, avatar: Avatar, video: VideoOptions, audio_bitrate_kbps: int) -> IdleLoop | None:
        """The loop of `avatar` (being built in the background if new), or None if this
        avatar's loop is too long to share."""
        period = loop_period(avatar, video.fps)
        if period is None:
            return None
        base = _base_avatar(avatar)
        try:
            ref = weakref.ref(base)
        except TypeError:  # cannot tell this avatar apart from a later one at its id()
            return None
        key = LoopKey(id(base), avatar.name, avatar.width, avatar.height, video, audio_bitrate_kbps)
        with self._lock:
            entry = self._loops.get(key)
            if entry is not None and entry[1]() is base and entry[0].error is None:
                self._loops.move_to_end(key)
                return entry[0]
            loop = IdleLoop(key, period)
            # A weak reference: an avatar that is rebuilt or deleted is not kept alive by its
            # loop, and a new object at a reused id() is told apart.
            self._loops[key] = (loop, ref)
            while len(self._loops) > self.max_loops:
                self._loops.popitem(last=False)
        threading.Thread(
            target=self._build, args=(loop, avatar), name="idle-loop-build", daemon=True
        ).start()
        return loop

    def _build(self, loop: IdleLoop, avatar: Avatar) -> None:
        with self._build_lock:
            try:
                loop.build(avatar)
                log.info(
                    "idle loop of %s %dx%d: %d frames, %d KB",
                    loop.key.name,
                    loop.key.width,
                    loop.key.height,
                    loop.period_frames,
                    loop.nbytes // 1024,
                )
            except Exception as exc:  # its sessions keep rendering live
                log.exception("idle loop of %s could not be built", loop.key.name)
                loop.fail(exc)

    def __len__(self) -> int:
        with self._lock:
            return len(self._loops)

    def clear(self) -> None:
        with self._lock:
            self._loops.clear()


_shared = IdleLoops()


def shared_loops() -> IdleLoops:
    """The process-wide registry every live stream uses."""
    return _shared
