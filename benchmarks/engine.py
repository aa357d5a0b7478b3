"""Engine speed on one core: encode-only vs lip-sync + render + encode. Prints JSON.

    python benchmarks/engine.py --json [--seconds 20]

All figures come from one run, pinned to one core, timed in process CPU seconds (robust on a
shared, noisy machine): compare the ratio, not the absolute fps, across machines.

- encode_only_fps: libx264 (+ AAC) encoding of pre-rendered 540x960 avatar frames.
- speaking_fps: streaming audio lip-sync + render + encode of a talking avatar, audio fed in
  160 ms chunks as a live session receives it.
- text_fps: the same for text-driven speech (TTS time excluded: it happens before playback).
- idle_fps: render + encode while silent (blinks, breathing, sway).
- ratio = speaking_fps / encode_only_fps (goal >= 0.8).
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable

import numpy as np

from _report import report
from avatarcast import SAMPLES_PER_FRAME
from avatarcast.avatars.base import Avatar
from avatarcast.avatars.registry import load_avatar
from avatarcast.engine.timeline import Engine
from avatarcast.render.frame import YuvFrame
from avatarcast.speech.tts import TtsBackend, get_backend
from avatarcast.stream.encoder import AacEncoder, H264Encoder, VideoOptions

SENTENCES = (
    "Good morning, and welcome to our store. How can I help you today? "
    "Our opening hours are from nine to five, Monday to Friday. "
    "If you would like to speak to a person, please press the button below."
)


def _cpu_timed(fn: Callable[[], int]) -> tuple[int, float]:
    t0 = time.process_time()
    n = fn()
    return n, time.process_time() - t0


def _encoders(opts: VideoOptions) -> tuple[H264Encoder, AacEncoder]:
    import av
    from av.audio.codeccontext import AudioCodecContext

    actx = av.CodecContext.create("aac", "w")
    assert isinstance(actx, AudioCodecContext)
    return H264Encoder.standalone(opts), AacEncoder(actx)


def stream_text(avatar: Avatar, opts: VideoOptions, tts: TtsBackend, seed: int = 4) -> int:
    """Text-driven speech through lip-sync, render and encode; returns the frame count."""
    venc, aenc = _encoders(opts)
    eng = Engine(avatar, seed=seed, tts=tts)
    eng.say_text(SENTENCES)
    i = 0
    while not eng.idle():
        fr = eng.next_frame()
        venc.encode(fr.video, i)
        aenc.encode(fr.audio)
        i += 1
    return i


def speech_of(tts: TtsBackend, seconds: float) -> np.ndarray:
    """`seconds` of the benchmark's speech (SENTENCES, repeated), 16 kHz mono int16."""
    speech = tts.synthesize(SENTENCES, voice="en-us").pcm
    reps = max(1, int(np.ceil(seconds * 16000 / speech.size)))
    return np.tile(speech, reps)[: int(seconds * 16000)]


def warm(avatar: Avatar) -> None:
    """Warm caches the way a long-running server has them warm."""
    warm_up = getattr(avatar, "warm_up", None)
    if callable(warm_up):
        warm_up()
    eng = Engine(avatar, seed=1)
    eng.say_text("Warm up the mouth shapes, please.")
    while not eng.idle():
        eng.next_frame()
    for _ in range(200):
        eng.next_frame()


def encode_only_job(avatar: Avatar, opts: VideoOptions, speech: np.ndarray) -> Callable[[], int]:
    """The encode-only figure's job: H.264 + AAC of pre-rendered frames of a talking avatar
    with the same speech audio; returns the frame count when called."""
    pre = Engine(avatar, seed=2)
    pre.say_audio(speech[: 16000 * 4])
    frames: list[YuvFrame] = []
    while not pre.idle():
        f = pre.next_frame().video
        frames.append(YuvFrame(f.data.copy(), f.width, f.height))
    silence = np.zeros(SAMPLES_PER_FRAME, np.int16)
    n_frames = -(-speech.size // SAMPLES_PER_FRAME)

    def encode_only() -> int:
        # The same speech audio as the speaking figure: AAC costs more on speech than on
        # silence, and that cost is the encoder's, not the avatar's.
        venc, aenc = _encoders(opts)
        for i in range(n_frames):
            venc.encode(frames[i % len(frames)], i)
            chunk = speech[i * SAMPLES_PER_FRAME : (i + 1) * SAMPLES_PER_FRAME]
            aenc.encode(chunk if chunk.size == SAMPLES_PER_FRAME else silence)
        return n_frames

    return encode_only


def encode_only_fps(
    width: int = 540, height: int = 960, seconds: float = 10.0, rounds: int = 3
) -> float:
    """The encode-only figure alone (best of `rounds`, frames per process-CPU second), for
    other benchmarks (capacity.py); the same measurement as `main`'s `encode_only_fps`."""
    avatar = load_avatar("default", None, width, height)
    speech = speech_of(get_backend("espeak"), seconds)
    warm(avatar)
    job = encode_only_job(avatar, VideoOptions(width=width, height=height), speech)
    best = 0.0
    for _ in range(rounds):
        n, cpu = _cpu_timed(job)
        best = max(best, n / cpu)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--json", action="store_true", help="print only the JSON object")
    ap.add_argument("--seconds", type=float, default=10.0, help="speech length per figure")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved repetitions; best kept")
    ap.add_argument("--width", type=int, default=540)
    ap.add_argument("--height", type=int, default=960)
    a = ap.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})

    opts = VideoOptions(width=a.width, height=a.height)
    avatar = load_avatar("default", None, a.width, a.height)
    tts = get_backend("espeak")
    speech = speech_of(tts, a.seconds)
    n_frames = -(-speech.size // SAMPLES_PER_FRAME)
    warm(avatar)
    encode_only = encode_only_job(avatar, opts, speech)

    def speaking() -> int:
        venc, aenc = _encoders(opts)
        eng = Engine(avatar, seed=3)
        chunk = 2560  # 160 ms
        pos = 0
        i = 0
        while pos < speech.size or not eng.idle():
            # Feed audio as a live client does: keep about one chunk ahead of playback.
            while pos < speech.size and pos <= (i + 6) * SAMPLES_PER_FRAME:
                eng.push_audio(speech[pos : pos + chunk])
                pos += chunk
                if pos >= speech.size:
                    eng.end_audio()
            fr = eng.next_frame()
            venc.encode(fr.video, i)
            aenc.encode(fr.audio)
            i += 1
        return i

    def text() -> int:
        return stream_text(avatar, opts, tts)

    def idle() -> int:
        venc, aenc = _encoders(opts)
        eng = Engine(avatar, seed=5)
        for i in range(n_frames):
            fr = eng.next_frame()
            venc.encode(fr.video, i)
            aenc.encode(fr.audio)
        return n_frames

    def render_only() -> int:
        eng = Engine(avatar, seed=6)
        eng.say_audio(speech)
        i = 0
        while not eng.idle():
            eng.next_frame()
            i += 1
        return i

    out: dict[str, object] = {"width": a.width, "height": a.height, "cores": 1, "rounds": a.rounds}
    measures = {
        "encode_only": encode_only,
        "speaking": speaking,
        "text": text,
        "idle": idle,
        "lipsync_render_no_encode": render_only,
    }
    # Interleave rounds and keep each figure's best: on a shared machine, noise only ever
    # slows a run down, and interleaving exposes every figure to the same conditions.
    results = dict.fromkeys(measures, 0.0)
    for _ in range(a.rounds):
        for name, fn in measures.items():
            n, cpu = _cpu_timed(fn)
            results[name] = max(results[name], n / cpu)
    for name, fps in results.items():
        out[f"{name}_fps"] = round(fps, 1)
    out["ratio"] = round(results["speaking"] / results["encode_only"], 3)
    out["idle_ratio"] = round(results["idle"] / results["encode_only"], 3)
    out["render_ms_per_frame"] = round(
        1000 / results["speaking"] - 1000 / results["encode_only"], 3
    )
    out["streams_per_core_speaking"] = round(results["speaking"] / 25, 1)
    report(out, as_json=a.json)


if __name__ == "__main__":
    main()
