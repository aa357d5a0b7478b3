"""Live sessions on this machine: CPU per session, and their frame rate while an avatar builds.

    python benchmarks/sessions.py --json [--sessions 4] [--seconds 10] [--video-60s]
    python benchmarks/sessions.py --json --idle [--sessions 16] [--seconds 10]

Runs N live sessions in this process exactly as the server does (`Engine` → `LiveStream`:
render, H.264 + Opus encode, real-time pacing on the wall clock; no network viewers), each
speaking the same text in a loop, on all cores. Two phases:

1. `alone`: N sessions for `--seconds`; `cpu_cores_per_session` = process CPU seconds /
   wall seconds / N (what one more session costs), `fps_min` the slowest session's rate.
2. `beside_build`: the same sessions while the avatar builder (`avatars.build_queue.BuildQueue`,
   as the HTTP API runs it: one worker process, nice 19, one thread) builds a video avatar
   from the 11 s speaking test video (`tests/avatars/video_samples.py`), or with
   `--video-60s` a 60 s 1920x1080 recording with sound. Reports the build's wall seconds and
   the sessions' frame rate and late (skipped) frames meanwhile. Goal (issue 6): sessions
   stay at 25 fps (late frames 0).

`--idle` instead measures what an idle session costs (issue 13): N sessions nobody speaks to,
first rendering and encoding every frame (`idle_loop_shared = false`), then N new sessions on
the shared idle loop (encoded once, built before they start), each for `--seconds`, in one run.
`cpu_s_per_session_s` = process CPU seconds / (wall seconds x sessions); the loop's encoded
size and build CPU are reported too.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "avatars"))
from _report import report
from avatarcast.avatars.build_jobs import SUCCESS, Job
from avatarcast.avatars.build_queue import BuildQueue
from avatarcast.avatars.registry import load_avatar
from avatarcast.engine.idle_loop import shared_loops
from avatarcast.engine.live import LiveStream
from avatarcast.engine.timeline import Engine
from avatarcast.speech.tts import get_backend
from avatarcast.stream.clock import MonotonicClock
from avatarcast.stream.encoder import VideoOptions

TEXT = (
    "Welcome to our store. I can help you find a product, check an order, or answer a "
    "question about delivery. What would you like to do today?"
)


class Sessions:
    def __init__(self, n: int, *, talk: bool = True, idle_loop: bool = False) -> None:
        self.avatar = load_avatar("default", None, 540, 960)
        self.tts = get_backend("espeak")
        self.streams: list[LiveStream] = []
        self.engines: list[Engine] = []
        self.n = n
        self.talk = talk
        self.idle_loop = idle_loop

    async def start(self) -> None:
        clock = MonotonicClock()
        for i in range(self.n):
            engine = Engine(self.avatar, seed=i, tts=self.tts)
            live = LiveStream(
                engine,
                VideoOptions(width=540, height=960),
                clock,
                idle_loop=self.idle_loop,
                name=f"s{i}",
            )
            await live.start()
            self.engines.append(engine)
            self.streams.append(live)

    def keep_talking(self) -> None:
        if not self.talk:
            return
        for engine in self.engines:
            if engine.idle():
                engine.say_text(TEXT)

    def counters(self) -> list[tuple[int, int]]:
        return [(s.frames_sent, s.late_frames) for s in self.streams]

    async def stop(self) -> None:
        for s in self.streams:
            await s.stop()


async def measure(sessions: Sessions, until: asyncio.Future[Job] | float) -> dict[str, object]:
    """Run until `until` (a future, or seconds); per-session fps, late frames, CPU."""
    c0, t0, cpu0 = sessions.counters(), time.monotonic(), time.process_time()
    deadline = until if isinstance(until, float) else None
    while True:
        sessions.keep_talking()
        await asyncio.sleep(0.2)
        if deadline is not None and time.monotonic() - t0 >= deadline:
            break
        if not isinstance(until, float) and until.done():
            break
    wall, cpu = time.monotonic() - t0, time.process_time() - cpu0
    c1 = sessions.counters()
    fps = [(b[0] - a[0]) / wall for a, b in zip(c0, c1, strict=True)]
    return {
        "wall_s": round(wall, 2),
        "fps_min": round(min(fps), 2),
        "fps_mean": round(sum(fps) / len(fps), 2),
        "late_frames": sum(b[1] - a[1] for a, b in zip(c0, c1, strict=True)),
        "cpu_cores_per_session": round(cpu / wall / sessions.n, 4),
    }


async def run_idle(a: argparse.Namespace) -> dict[str, object]:
    """Idle sessions, rendered and encoded vs on the shared loop, one after the other."""
    out: dict[str, object] = {"sessions": a.sessions, "cores": len(os.sched_getaffinity(0))}
    avatar = load_avatar("default", None, 540, 960)
    cpu0 = time.process_time()
    loop = shared_loops().get(avatar, VideoOptions(width=540, height=960), 32)
    assert loop is not None and loop.wait_ready(300), "the idle loop was not built"
    out["loop"] = {
        "frames": loop.period_frames,
        "keyframe_every": loop.keyframe_every,
        "kbytes": round(loop.nbytes / 1024, 1),
        "build_cpu_s": round(time.process_time() - cpu0, 2),
    }
    for name, shared in (("rendered", False), ("shared_loop", True)):
        sessions = Sessions(a.sessions, talk=False, idle_loop=shared)
        await sessions.start()
        await measure(sessions, 2.0)  # warm-up: caches, encoders
        m = await measure(sessions, a.seconds)
        m["cpu_s_per_session_s"] = m.pop("cpu_cores_per_session")
        m["frames_from_loop"] = sum(s.loop_frames for s in sessions.streams)
        await sessions.stop()
        out[name] = m
    rendered, looped = out["rendered"], out["shared_loop"]
    assert isinstance(rendered, dict) and isinstance(looped, dict)
    out["cost_ratio"] = round(
        looped["cpu_s_per_session_s"] / max(rendered["cpu_s_per_session_s"], 1e-9), 4
    )
    out["load_avg"] = [round(x, 2) for x in os.getloadavg()]
    return out


async def run(a: argparse.Namespace) -> dict[str, object]:
    import video_samples  # tests/avatars

    tmp = Path(tempfile.mkdtemp(prefix="sessions-bench-"))
    try:
        if a.video_60s:
            video = video_samples.speaking_1080p(tmp / "v60.mp4")
        else:
            video, _ = video_samples.speaking_video(tmp / "v11.mp4")
        sessions = Sessions(a.sessions)
        await sessions.start()
        await measure(sessions, 2.0)  # warm-up: caches, encoders
        alone = await measure(sessions, a.seconds)
        queue = BuildQueue(tmp / "data", tmp / "jobs.db", workers=1)
        loop = asyncio.get_running_loop()
        done: asyncio.Future[Job] = loop.create_future()
        t0 = time.monotonic()
        job = queue.submit("bench", "bench-video", video.read_bytes(), "keep")

        async def poll() -> None:
            while True:
                status = queue.get("bench", job.task_id)
                if status.status != "MAKING":
                    done.set_result(status)
                    return
                await asyncio.sleep(0.5)

        poller = asyncio.create_task(poll())
        beside = await measure(sessions, done)
        await poller
        build = done.result()
        beside["build_s"] = round(time.monotonic() - t0, 2)
        beside["build_status"] = build.status
        if build.status != SUCCESS:
            raise SystemExit(f"the build failed: {build.fail_message}")
        queue.close()
        await sessions.stop()
        return {
            "sessions": a.sessions,
            "cores": len(os.sched_getaffinity(0)),
            "video": "60 s 1920x1080 with sound" if a.video_60s else "11 s 540x960 with sound",
            "alone": alone,
            "beside_build": beside,
            "goal": "fps_min >= 25 (24.9 allowing rounding) and late_frames 0 beside the build",
        }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--json", action="store_true", help="print only the JSON object")
    ap.add_argument("--sessions", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=10.0, help="length of the 'alone' phase")
    ap.add_argument("--video-60s", action="store_true", help="build a 60 s 1080p video")
    ap.add_argument(
        "--idle", action="store_true", help="idle cost per session, with and without sharing"
    )
    a = ap.parse_args()
    out = asyncio.run(run_idle(a) if a.idle else run(a))
    report(out, as_json=a.json, width=14)


if __name__ == "__main__":
    main()
