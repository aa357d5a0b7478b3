"""Text to first audio: how soon a sentence's audio is queued after SEND_TEXT, per voice.

    python benchmarks/tts_latency.py          # table
    python benchmarks/tts_latency.py --json   # JSON

What is timed is `Engine.say_text` — what the command channel runs for SEND_TEXT — from the
call to the moment its first piece (with its mouth track) is queued and playable
(`on_queued`), as process CPU seconds and as wall seconds (wall is distorted when other work
shares the machine; CPU is the figure to compare). The voice's model is loaded first and
reported apart (once per process). Goal: first audio within 0.3 s.

"Without gaps": for long text every next piece must be queued before the audio already
queued runs out. `min_slack_s` = min over pieces of (audio queued before it, in seconds) −
(wall time from the first piece to it): positive means the player never waited;
`min_slack_cpu_s` the same in CPU time (what an idle core would give). The CPU real-time
factor of the whole text is reported beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from typing import Any

TEXTS = {
    "greeting": "Hello! I am your avatarcast presenter. Nice to meet you.",
    "long_first_sentence": (
        "Thank you for calling the support line of the city library, where we are happy to "
        "help you with loans, renewals and the opening hours of every branch."
    ),
    "paragraph": (
        "Welcome to the show, everybody. Today we talk about maps and the people who made "
        "them. The first maps were drawn on clay. Later they were printed on paper, and "
        "sailors carried them across the oceans. Now they live in our phones, and nobody "
        "gets lost any more. Or so we think."
    ),
}
VOICES = ("joe", "en-us")
REPEATS = 3


def _timed(engine: Any, text: str, voice: str) -> dict[str, Any]:
    from avatarcast import SAMPLES_PER_FRAME

    t_cpu, t_wall = time.process_time(), time.perf_counter()
    marks: list[tuple[float, float, int]] = []  # (cpu, wall, samples queued) per piece
    first: dict[str, float] = {}

    def queued() -> None:
        first["cpu"] = time.process_time() - t_cpu
        first["wall"] = time.perf_counter() - t_wall

    # Count what is queued after each piece by wrapping the backend's piece iterator.
    tts = engine.tts
    pieces_fn = getattr(tts, "sentences", None)
    if pieces_fn is not None:

        def counting(text: str, voice: str | None = None, rate: int | None = None) -> Any:
            for part in pieces_fn(text, voice, rate):
                frames = -(-part.pcm.size // SAMPLES_PER_FRAME)
                total = (marks[-1][2] if marks else 0) + frames * SAMPLES_PER_FRAME
                marks.append((time.process_time() - t_cpu, time.perf_counter() - t_wall, total))
                yield part

        tts.sentences = counting  # this benchmark's engine only
    try:
        utt = engine.say_text(text, voice=voice, on_queued=queued)
    finally:
        if pieces_fn is not None:
            del tts.sentences
    engine.interrupt()
    total_cpu = time.process_time() - t_cpu
    slack = [marks[i - 1][2] / 16000 - (marks[i][1] - marks[0][1]) for i in range(1, len(marks))]
    slack_cpu = [
        marks[i - 1][2] / 16000 - (marks[i][0] - marks[0][0]) for i in range(1, len(marks))
    ]
    return {
        "first_cpu_s": first["cpu"],
        "first_wall_s": first["wall"],
        "pieces": max(1, len(marks)),
        "audio_s": utt.duration_s,
        "rtf_cpu": total_cpu / utt.duration_s,
        "min_slack_s": min(slack) if slack else None,
        "min_slack_cpu_s": min(slack_cpu) if slack_cpu else None,
    }


def run() -> dict[str, Any]:
    from avatarcast.avatars.registry import load_avatar
    from avatarcast.engine.timeline import Engine
    from avatarcast.speech.piper_tts import PiperBackend
    from avatarcast.speech.tts import VoiceRouter

    out: dict[str, Any] = {"goal_first_audio_s": 0.3, "cores": os.cpu_count(), "voices": {}}
    for voice in VOICES:
        if voice == "joe" and not PiperBackend().voices():
            out["voices"][voice] = {"skipped": "piper voice not installed"}
            continue
        router = VoiceRouter()
        engine = Engine(load_avatar("default"), tts=router)
        t = time.process_time()
        router.synthesize("Hello.", voice=voice)  # load the model (once per process)
        res: dict[str, Any] = {"load_cpu_s": round(time.process_time() - t, 3)}
        for name, text in TEXTS.items():
            runs = [_timed(engine, text, voice) for _ in range(REPEATS)]
            med = {k: sorted(r[k] for r in runs)[REPEATS // 2] for k in runs[0] if "slack" not in k}
            slacks = [r["min_slack_s"] for r in runs if r["min_slack_s"] is not None]
            cpu_slacks = [r["min_slack_cpu_s"] for r in runs if r["min_slack_cpu_s"] is not None]
            res[name] = {
                "first_audio_cpu_s": round(med["first_cpu_s"], 3),
                "first_audio_wall_s": round(med["first_wall_s"], 3),
                "pieces": int(med["pieces"]),
                "audio_s": round(med["audio_s"], 2),
                "rtf_cpu": round(med["rtf_cpu"], 3),
                "min_slack_s": round(min(slacks), 2) if slacks else None,
                "min_slack_cpu_s": round(min(cpu_slacks), 2) if cpu_slacks else None,
            }
        out["voices"][voice] = res
    out["threads"] = threading.active_count()
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    res = run()
    if args.json:
        json.dump(res, sys.stdout, indent=2)
        print()
        return 0
    print(f"first audio after SEND_TEXT (goal {res['goal_first_audio_s']} s), median of {REPEATS}")
    for voice, r in res["voices"].items():
        if "skipped" in r:
            print(f"  {voice}: {r['skipped']}")
            continue
        print(f"  {voice} (model load {r['load_cpu_s']} CPU-s, once)")
        for name in TEXTS:
            x = r[name]
            print(
                f"    {name:<20} first audio {x['first_audio_cpu_s']:.3f} CPU-s "
                f"({x['first_audio_wall_s']:.3f} s wall), {x['pieces']} pieces, "
                f"{x['audio_s']} s audio, rtf {x['rtf_cpu']}, min slack {x['min_slack_s']} s wall"
                f" / {x['min_slack_cpu_s']} s CPU"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
