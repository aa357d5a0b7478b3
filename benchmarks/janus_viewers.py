"""Viewers per session through Janus: what N subscribers cost the publishing session.

    python benchmarks/janus_viewers.py --json [--viewers 0,1,5,10] [--seconds 10]

Starts a real Janus on loopback (tests/e2e/janus_server.py: Debian's `janus`, the loopback
ICE shim), and in a child process one live session exactly as a media worker runs it
(`Engine` → `LiveStream` → the `janus` output, speaking a text in a loop). This process then
subscribes 0, 1, 5, 10 ... aiortc viewers to the session's feed through Janus and measures,
for each count, over `--seconds` (after 3 s to settle):

- `publisher_cpu_cores`: CPU seconds of the session's process / wall seconds (render,
  encode once, one aiortc publisher). The claim: it does not grow with the viewers.
- `janus_cpu_cores`: the same for the Janus process (it forwards RTP to every subscriber).
- `viewer_fps_min` / `viewer_fps_mean`: frames each subscriber received per second.

The subscribers (aiortc, decoding H.264 in this process) share the machine's cores with the
session and Janus; on a small machine they, not the session, are the limit.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing as mp
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "e2e"))
from janus_server import API_SECRET, JanusServer, JanusSubscriber, free_port

ROOM, FEED = 9001, 42
TEXT = (
    "Welcome to our store. I can help you find a product, check an order, or answer a "
    "question about delivery. What would you like to do today?"
)
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    """utime + stime of a process (all its threads), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def publish(url: str, ready: mp.synchronize.Event, stop: mp.synchronize.Event) -> None:
    """The child: one live session publishing into the room until `stop`."""
    from avatarcast.avatars.registry import load_avatar
    from avatarcast.engine.live import LiveStream
    from avatarcast.engine.timeline import Engine
    from avatarcast.settings import Settings
    from avatarcast.speech.tts import get_backend
    from avatarcast.stream.clock import MonotonicClock
    from avatarcast.stream.encoder import VideoOptions
    from avatarcast.stream.janus import JanusOutput

    async def run() -> None:
        settings = Settings(
            janus_url=url, janus_api_secret=API_SECRET, ice_host_addresses="127.0.0.1"
        )
        engine = Engine(load_avatar("default", None, 540, 960), seed=1, tts=get_backend("espeak"))
        live = LiveStream(engine, VideoOptions(width=540, height=960), MonotonicClock(), name="b")
        await live.start()
        out = JanusOutput(live, settings, ROOM, FEED, "bench")
        await out.start()
        while out.state != "streaming":
            await asyncio.sleep(0.05)
        ready.set()
        while not stop.is_set():
            if engine.idle():
                engine.say_text(TEXT)
            await asyncio.sleep(0.2)
        await out.stop()
        await live.stop()

    asyncio.run(run())


async def measure(
    viewers: list[JanusSubscriber], pub_pid: int, janus_pid: int, seconds: float
) -> dict[str, object]:
    await asyncio.sleep(3.0)  # settle: new viewers' first keyframe, jitter buffers
    f0 = [v.frames for v in viewers]
    t0, p0, j0 = time.monotonic(), cpu_s(pub_pid), cpu_s(janus_pid)
    await asyncio.sleep(seconds)
    wall = time.monotonic() - t0
    fps = [(v.frames - a) / wall for v, a in zip(viewers, f0, strict=True)]
    return {
        "viewers": len(viewers),
        "publisher_cpu_cores": round((cpu_s(pub_pid) - p0) / wall, 3),
        "janus_cpu_cores": round((cpu_s(janus_pid) - j0) / wall, 3),
        "viewer_fps_min": round(min(fps), 1) if fps else None,
        "viewer_fps_mean": round(sum(fps) / len(fps), 1) if fps else None,
    }


async def run(a: argparse.Namespace) -> dict[str, object]:
    counts = sorted(int(n) for n in a.viewers.split(","))
    with tempfile.TemporaryDirectory() as tmp:
        janus = JanusServer(Path(tmp), free_port())
        janus.start()
        ctx = mp.get_context("spawn")
        ready, stop = ctx.Event(), ctx.Event()
        child = ctx.Process(target=publish, args=(janus.url, ready, stop), daemon=True)
        child.start()
        viewers: list[JanusSubscriber] = []
        try:
            assert await asyncio.to_thread(ready.wait, 60), "the session never published"
            assert child.pid is not None and janus.proc is not None
            rows = []
            for n in counts:
                while len(viewers) < n:
                    v = JanusSubscriber(janus.url, ROOM, FEED, decode=False)
                    await v.__aenter__()
                    viewers.append(v)
                rows.append(await measure(viewers, child.pid, janus.proc.pid, a.seconds))
        finally:
            for v in viewers:
                with contextlib.suppress(Exception):
                    await v.__aexit__(None, None, None)
            stop.set()
            child.join(15)
            if child.is_alive():
                child.kill()
            janus.stop()
    return {
        "cores": os.cpu_count(),
        "seconds": a.seconds,
        "rows": rows,
        "note": "publisher_cpu_cores should not grow with viewers (Janus forwards)",
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--json", action="store_true", help="print only the JSON object")
    ap.add_argument("--viewers", default="0,1,5,10")
    ap.add_argument("--seconds", type=float, default=10.0)
    a = ap.parse_args()
    out = asyncio.run(run(a))
    if a.json:
        print(json.dumps(out))
    else:
        for row in out["rows"]:  # type: ignore[attr-defined]
            print(row)


if __name__ == "__main__":
    main()
