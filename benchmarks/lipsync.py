"""Audio lip-sync accuracy: mouth-shape frame accuracy at 25 fps, always beside a baseline.

    python benchmarks/lipsync.py            # human-readable table
    python benchmarks/lipsync.py --json     # JSON
    python benchmarks/lipsync.py --set train   # the TRAINING sentences (used for tuning)

Sets:
- English, generated: espeak-ng voices x rates x pitches speaking the TEST sentences (never
  used for training or tuning; TRAIN_SENTENCES were, and tools/train_lipsync_model.py
  asserts it never sees a TEST sentence). Ground truth = espeak's exact phoneme times →
  `text_lipsync.frame_labels`. Methods: audio-only (`StreamingLipSync`, learned frame
  classifier, 200 ms lookahead, 160 ms chunks), audio_recognizer (the previous method:
  pocketsphinx allphone recognition + floor fusion), text-known (`track_from_audio(pcm,
  text=...)`: espeak template warped onto the audio), text_known_align (pocketsphinx forced
  alignment), floor-only (no recognizer/model) and the voice-activity-only baseline (B while
  speaking, X at rest, same VAD).
- English, human: the LibriVox / "cards" clips of Debian's pocketsphinx-testdata, if
  installed (else skipped with a note). Reference = pocketsphinx forced alignment of the
  transcript: BIASED in favour of this pocketsphinx-based method, and circular for text-known.
- English, piper (natural voice): the same sentences spoken by piper-tts's en_US-joe-medium
  at length_scale 0.85 / 1.0 / 1.2 (default noise, seeded), reference = piper's own phoneme
  alignments → IPA → shape (tools/piper_corpus.py). Piper is a training-only extra
  (`pip install -e .[train]`): without it the row is skipped with a note. The joe voice is
  also in the training data (other sentences), so this measures new sentences in a natural
  voice, not a new speaker.
- Mandarin, generated: espeak cmn, exact times: the (English-trained) classifier, which is
  the default for every language, and the floor only (language="zh").

Real-time factors are process CPU seconds per second of audio (model loading excluded,
reported separately).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import wave
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from avatarcast import FRAME_RATE_HZ, SAMPLE_RATE_HZ
from avatarcast.speech.audio_lipsync import StreamingLipSync, track_from_audio
from avatarcast.speech.recognizer import Aligner, PhoneRecognizer
from avatarcast.speech.visemes import MouthPose, Shape

CHUNK = int(0.16 * SAMPLE_RATE_HZ)
LOOKAHEAD_MS = 200

TRAIN_SENTENCES = (
    "Bob bought a map of the old harbour.",
    "Please pass me the blue cup from the shelf.",
    "We will meet by the river after lunch.",
    "My father fixed the fence with five boards.",
    "How much does a large pizza cost these days?",
    "The cat jumped over the wall and ran away.",
    "Our team played well, but we lost the match.",
    "Bring your umbrella, it might rain this evening.",
    "She opened the window to let the fresh air in.",
    "A little boy was looking for his yellow ball.",
    "Many people move to big cities for work.",
    "Turn left at the bank and walk for two blocks.",
)

TEST_SENTENCES = (
    "The quick brown fox jumps over the lazy dog.",
    "I would like a cup of coffee with milk, please.",
    "Maybe we should visit the museum on Monday.",
    "Peter put the pen back in the box.",
    "Thank you very much for your patience today.",
    "The weather has been warm and sunny all week.",
    "Could you tell me where the nearest station is?",
    "Every morning she walks her dog in the park.",
    "We need more apples, bread and some butter.",
    "The movie was much better than the book.",
    "Good luck with your new job in Boston.",
    "Five women were waving from the boat.",
)

MANDARIN_SENTENCES = (
    "你好，我们去吃饭吧。",
    "今天天气很好，我们去公园散步。",
    "请给我一杯咖啡，谢谢。",
    "我妈妈每天早上买面包。",
    "北京是中国的首都。",
    "这本书非常有意思。",
)

VOICES = ("en-us", "en-gb", "en-us+f3", "en+m3")
RATES = (130, 165, 200)
PITCHES = (35, 50, 65)
HUMAN_DIR = Path("/usr/share/pocketsphinx/test/data")


def frame_truth(spans: Sequence[Any], n_frames: int) -> list[Shape]:
    from avatarcast.speech.text_lipsync import frame_labels

    return list(frame_labels(list(spans), n_frames, FRAME_RATE_HZ))


def accuracy(pred: Sequence[MouthPose], truth: Sequence[Shape]) -> float:
    n = min(len(pred), len(truth))
    return sum(1 for i in range(n) if pred[i].shape == truth[i]) / max(1, n)


def baseline_of(track: Sequence[MouthPose]) -> list[MouthPose]:
    """Voice activity only: the floor's rest frames are exactly its VAD gate's rest."""
    return [MouthPose(Shape.X if p.shape is Shape.X else Shape.B, 0.0) for p in track]


def stream(engine: StreamingLipSync, pcm: NDArray[np.int16]) -> list[MouthPose]:
    engine.reset()
    out: list[MouthPose] = []
    for i in range(0, pcm.size, CHUNK):
        out += engine.push(pcm[i : i + CHUNK])
    return out + engine.finish()


class Scorer:
    """Accumulates frame hits and CPU time per method and per condition."""

    def __init__(self) -> None:
        self.hits: dict[str, dict[str, list[int]]] = {}
        self.cpu: dict[str, float] = {}
        self.audio_s = 0.0

    def add(
        self, cond: str, method: str, pred: Sequence[MouthPose], truth: Sequence[Shape]
    ) -> None:
        n = min(len(pred), len(truth))
        ok = sum(1 for i in range(n) if pred[i].shape == truth[i])
        for key in (cond, "overall"):
            h = self.hits.setdefault(method, {}).setdefault(key, [0, 0])
            h[0] += ok
            h[1] += n

    def timed(self, method: str, fn: Callable[[], list[MouthPose]]) -> list[MouthPose]:
        t = time.process_time()
        out = fn()
        self.cpu[method] = self.cpu.get(method, 0.0) + time.process_time() - t
        return out

    def result(self) -> dict[str, Any]:
        acc = {
            m: {k: round(v[0] / max(1, v[1]), 3) for k, v in conds.items()}
            for m, conds in self.hits.items()
        }
        frames = next(iter(self.hits.values()))["overall"][1] if self.hits else 0
        rtf = {m: round(c / max(self.audio_s, 1e-9), 4) for m, c in self.cpu.items()}
        return {"frames": frames, "audio_s": round(self.audio_s, 1), "accuracy": acc, "rtf": rtf}


def english_generated(sentences: Sequence[str], quick: bool) -> dict[str, Any]:
    from avatarcast.speech.tts import get_backend

    tts = get_backend("espeak")
    audio = StreamingLipSync(lookahead_ms=LOOKAHEAD_MS, language="en")
    audio_rec = StreamingLipSync(lookahead_ms=LOOKAHEAD_MS, language="en", method="recognizer")
    floor = StreamingLipSync(lookahead_ms=LOOKAHEAD_MS, language="floor")
    aligner = Aligner()
    rec = PhoneRecognizer()
    sc = Scorer()
    aligned = total = 0
    voices = VOICES[:2] if quick else VOICES
    rates = RATES[::2] if quick else RATES
    for vi, voice in enumerate(voices):
        for rate in rates:
            cond = f"{voice}@{rate}wpm"
            for si, text in enumerate(sentences):
                pitch = PITCHES[(si + vi) % len(PITCHES)]
                u = tts.synthesize(text, voice=voice, rate_wpm=rate, pitch=pitch)
                n = -(-u.pcm.size // (SAMPLE_RATE_HZ // FRAME_RATE_HZ))
                truth = frame_truth(u.phonemes, n)
                sc.audio_s += u.pcm.size / SAMPLE_RATE_HZ
                a = sc.timed("audio_only", partial(stream, audio, u.pcm))
                r = sc.timed("audio_recognizer", partial(stream, audio_rec, u.pcm))
                f = sc.timed("floor_only", partial(stream, floor, u.pcm))
                t = sc.timed(
                    "text_known", partial(track_from_audio, u.pcm, text=text, text_method="dtw")
                )
                ta = sc.timed(
                    "text_known_align",
                    partial(
                        track_from_audio,
                        u.pcm,
                        text=text,
                        aligner=aligner,
                        recognizer=rec,
                        text_method="align",
                    ),
                )
                total += 1
                aligned += aligner.align(u.pcm, text) is not None
                sc.add(cond, "audio_only", a, truth)
                sc.add(cond, "audio_recognizer", r, truth)
                sc.add(cond, "text_known", t, truth)
                sc.add(cond, "text_known_align", ta, truth)
                sc.add(cond, "floor_only", f, truth)
                sc.add(cond, "vad_baseline", baseline_of(f), truth)
    res = sc.result()
    res["alignment_succeeded"] = f"{aligned}/{total}"
    res["reference"] = "exact espeak-ng phoneme times"
    return res


def _read_wav(path: Path) -> NDArray[np.int16]:
    with wave.open(str(path)) as w:
        assert w.getframerate() == SAMPLE_RATE_HZ and w.getnchannels() == 1
        return np.frombuffer(w.readframes(w.getnframes()), np.int16).copy()


def human_clips() -> list[tuple[str, NDArray[np.int16], str]]:
    clips: list[tuple[str, NDArray[np.int16], str]] = []
    for sub, trans in (("librivox", "transcription"), ("cards", "cards.transcription")):
        tfile = HUMAN_DIR / sub / trans
        if not tfile.is_file():
            continue
        for line in tfile.read_text().splitlines():
            if "(" not in line:
                continue
            words, fid = line.rsplit("(", 1)
            fid = fid.strip().rstrip(")")
            text = words.replace("<s>", "").replace("</s>", "").strip()
            wav = HUMAN_DIR / sub / f"{fid}.wav"
            if wav.is_file():
                clips.append((f"{sub}/{fid}", _read_wav(wav), text))
    return clips


def english_human() -> dict[str, Any]:
    clips = human_clips()
    if not clips:
        return {"skipped": f"no clips under {HUMAN_DIR} (apt-get install pocketsphinx-testdata)"}
    from avatarcast.speech.tts import PhonemeSpan  # noqa: F401  (spans come from the aligner)

    audio = StreamingLipSync(lookahead_ms=LOOKAHEAD_MS, language="en")
    audio_rec = StreamingLipSync(lookahead_ms=LOOKAHEAD_MS, language="en", method="recognizer")
    floor = StreamingLipSync(lookahead_ms=LOOKAHEAD_MS, language="floor")
    aligner = Aligner()
    sc = Scorer()
    used = []
    for name, pcm, text in clips:
        spans = aligner.align(pcm, text)
        if spans is None:
            continue
        used.append(name)
        n = -(-pcm.size // (SAMPLE_RATE_HZ // FRAME_RATE_HZ))
        truth = frame_truth(spans, n)
        sc.audio_s += pcm.size / SAMPLE_RATE_HZ
        cond = name.split("/")[0]
        a = sc.timed("audio_only", partial(stream, audio, pcm))
        r = sc.timed("audio_recognizer", partial(stream, audio_rec, pcm))
        f = sc.timed("floor_only", partial(stream, floor, pcm))
        t = sc.timed("text_known", partial(track_from_audio, pcm, text=text, text_method="dtw"))
        sc.add(cond, "audio_only", a, truth)
        sc.add(cond, "audio_recognizer", r, truth)
        sc.add(cond, "text_known", t, truth)
        sc.add(cond, "floor_only", f, truth)
        sc.add(cond, "vad_baseline", baseline_of(f), truth)
    res = sc.result()
    res["clips"] = used
    res["reference"] = (
        "pocketsphinx forced alignment of the transcript: biased in favour of the "
        "pocketsphinx-based methods (audio_recognizer; text_known_align would score ~1.0 by "
        "construction: omitted); the classifier and the espeak-template text_known are not "
        "pocketsphinx-based"
    )
    return res


def mandarin_generated() -> dict[str, Any]:
    from avatarcast.speech.tts import get_backend

    tts = get_backend("espeak")
    floor = StreamingLipSync(lookahead_ms=LOOKAHEAD_MS, language="zh", method="floor")
    model = StreamingLipSync(lookahead_ms=LOOKAHEAD_MS, language="zh")
    sc = Scorer()
    for rate in RATES:
        for si, text in enumerate(MANDARIN_SENTENCES):
            u = tts.synthesize(text, voice="cmn", rate_wpm=rate, pitch=PITCHES[si % 3])
            n = -(-u.pcm.size // (SAMPLE_RATE_HZ // FRAME_RATE_HZ))
            truth = frame_truth(u.phonemes, n)
            sc.audio_s += u.pcm.size / SAMPLE_RATE_HZ
            m = sc.timed("audio_only", partial(stream, model, u.pcm))
            f = sc.timed("floor_only", partial(stream, floor, u.pcm))
            sc.add(f"cmn@{rate}wpm", "audio_only", m, truth)
            sc.add(f"cmn@{rate}wpm", "floor_only", f, truth)
            sc.add(f"cmn@{rate}wpm", "vad_baseline", baseline_of(f), truth)
    res = sc.result()
    res["reference"] = "exact espeak-ng phoneme times (cmn)"
    return res


def _piper_corpus() -> Any:
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "tools" / "piper_corpus.py"
    spec = importlib.util.spec_from_file_location("piper_corpus", path)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules["piper_corpus"] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


def piper_generated(sentences: Sequence[str]) -> dict[str, Any]:
    """The TEST sentences in piper's natural joe voice (training-only extra; else skipped)."""
    pc = _piper_corpus()
    why = pc.available()
    if why:
        return {"skipped": f"{why} (piper is a training-only extra)"}
    speaker = pc.PiperSpeaker()
    audio = StreamingLipSync(lookahead_ms=LOOKAHEAD_MS, language="en")
    floor = StreamingLipSync(lookahead_ms=LOOKAHEAD_MS, language="floor")
    sc = Scorer()
    for ls in pc.TEST_LENGTH_SCALES:
        cond = f"joe@length{ls:g}"
        for text in sentences:
            r = speaker.synthesize(text, length_scale=ls)
            n = -(-r.pcm.size // (SAMPLE_RATE_HZ // FRAME_RATE_HZ))
            truth = frame_truth(r.spans, n)
            sc.audio_s += r.pcm.size / SAMPLE_RATE_HZ
            a = sc.timed("audio_only", partial(stream, audio, r.pcm))
            t = sc.timed(
                "text_known", partial(track_from_audio, r.pcm, text=text, text_method="dtw")
            )
            f = sc.timed("floor_only", partial(stream, floor, r.pcm))
            sc.add(cond, "audio_only", a, truth)
            sc.add(cond, "text_known", t, truth)
            sc.add(cond, "floor_only", f, truth)
            sc.add(cond, "vad_baseline", baseline_of(f), truth)
    res = sc.result()
    res["reference"] = (
        "exact piper phoneme alignments (en_US-joe-medium, default noise; IPA -> shape table "
        "of tools/piper_corpus.py); one speaker, also used for training (other sentences)"
    )
    return res


def load_times() -> dict[str, float]:
    from avatarcast.speech.lipsync_model import load_model

    t = time.process_time()
    PhoneRecognizer()
    t1 = time.process_time()
    Aligner()
    t2 = time.process_time()
    load_model()
    t3 = time.process_time()
    return {
        "recognizer_s": round(t1 - t, 3),
        "aligner_s": round(t2 - t1, 3),
        "classifier_s": round(t3 - t2, 3),
    }


def print_table(res: dict[str, Any]) -> None:
    print(f"lip-sync accuracy (frame shape, {FRAME_RATE_HZ} fps, 9 shapes A-H,X)")
    print(f"sentences: {res['sentences']}; model load CPU s: {res['load_s']}")
    for key in ("english_generated", "piper_generated", "english_human", "mandarin_generated"):
        part = res.get(key)
        if part is None:
            continue
        print(f"\n== {key} ==")
        if "skipped" in part:
            print(f"  SKIPPED: {part['skipped']}")
            continue
        print(f"  reference: {part['reference']}; {part['frames']} frames, {part['audio_s']} s")
        if "alignment_succeeded" in part:
            print(f"  forced alignment succeeded on {part['alignment_succeeded']} utterances")
        acc = part["accuracy"]
        methods = list(acc)
        print("  " + f"{'condition':<22}" + "".join(f"{m:>18}" for m in methods))
        for cond in acc[methods[0]]:
            row = "".join(f"{acc[m].get(cond, float('nan')):>18.3f}" for m in methods)
            print("  " + f"{cond:<22}" + row)
        print(
            "  "
            + f"{'real-time factor':<22}"
            + "".join(f"{part['rtf'].get(m, 0.0):>18.4f}" for m in methods)
        )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", action="store_true", help="print JSON instead of a table")
    ap.add_argument("--set", choices=("test", "train"), default="test")
    ap.add_argument("--quick", action="store_true", help="2 voices x 2 rates, English only")
    ap.add_argument("--only-piper", action="store_true", help="only the piper (joe voice) set")
    args = ap.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sentences = TEST_SENTENCES if args.set == "test" else TRAIN_SENTENCES
    res: dict[str, Any] = {
        "sentences": f"{args.set.upper()} ({len(sentences)}; "
        + ("never used for tuning" if args.set == "test" else "used for tuning")
        + ")",
        "lookahead_ms": LOOKAHEAD_MS,
        "load_s": load_times(),
    }
    if args.only_piper:
        res["piper_generated"] = piper_generated(sentences)
    else:
        res["english_generated"] = english_generated(sentences, args.quick)
        res["piper_generated"] = piper_generated(sentences)
    if not args.quick and not args.only_piper:
        res["english_human"] = english_human()
        res["mandarin_generated"] = mandarin_generated()
    # ---- words known on human English: benchmarks/alignment.py (independent MFA labels) ----
    if not args.quick and not args.only_piper:
        import alignment

        res["words_known_human"] = alignment.words_known_human()
    # ---- end of the words-known block ----
    if args.json:
        json.dump(res, sys.stdout, indent=2)
        print()
    else:
        print_table(res)
        if "words_known_human" in res:
            alignment.print_table(res["words_known_human"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
