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
- English, human, prompts_heldout: reference prompts of zero-shot TTS packages (people with
  transcripts; tools/lipsync_corpus.py `PROMPT_HELDOUT`, never trained on), if fetched
  (`tools/lipsync_corpus.py --fetch`, else skipped with a note); same pocketsphinx reference.
- English, piper (natural voice): the same sentences spoken by piper-tts's en_US-joe-medium
  at length_scale 0.85 / 1.0 / 1.2 (default noise, seeded), reference = piper's own phoneme
  alignments → IPA → shape (tools/piper_corpus.py). Piper is a training-only extra
  (`pip install -e .[train]`): without it the row is skipped with a note. The joe voice is
  also in the training data (other sentences), so this measures new sentences in a natural
  voice, not a new speaker.
- Mandarin, generated: espeak cmn, exact times: the (English-trained) classifier, which is
  the default for every language, and the floor only (language="zh").
- Mandarin, natural (`mandarin_natural`): F5-TTS's Mandarin reference prompt (one man, 6.8 s,
  from the f5-tts sdist; `tools/lipsync_corpus.py --fetch`, else skipped with a note), labelled
  by DTW of espeak cmn templates on MFCCs (tools/mandarin_natural.py, never the classifier).

Real-time factors are process CPU seconds per second of audio (model loading excluded,
reported separately).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
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


def frame_truth(spans: Sequence[Any], n_frames: int) -> list[Shape]:
    from avatarcast.speech.text_lipsync import frame_labels

    return list(frame_labels(list(spans), n_frames, FRAME_RATE_HZ))


def accuracy(pred: Sequence[MouthPose], truth: Sequence[Shape]) -> float:
    n = min(len(pred), len(truth))
    return sum(1 for i in range(n) if pred[i].shape == truth[i]) / max(1, n)


def closures_shown(pred: Sequence[MouthPose], spans: Sequence[Any]) -> tuple[int, int]:
    """P/B/M phones of the reference (shape A) with at least one A frame over their span."""
    shown = total = 0
    for sp in spans:
        if sp.shape is not Shape.A or sp.end_s <= sp.start_s:
            continue
        f0 = int(sp.start_s * FRAME_RATE_HZ)
        f1 = min(len(pred), -(-round(sp.end_s * FRAME_RATE_HZ * 1000) // 1000))
        total += 1
        shown += any(pred[f].shape is Shape.A for f in range(f0, max(f0 + 1, f1)) if f < len(pred))
    return shown, total


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
        self.closures: dict[str, list[int]] = {}
        self.cpu: dict[str, float] = {}
        self.audio_s = 0.0

    def add(
        self,
        cond: str,
        method: str,
        pred: Sequence[MouthPose],
        truth: Sequence[Shape],
        spans: Sequence[Any] = (),
    ) -> None:
        n = min(len(pred), len(truth))
        ok = sum(1 for i in range(n) if pred[i].shape == truth[i])
        for key in (cond, "overall"):
            h = self.hits.setdefault(method, {}).setdefault(key, [0, 0])
            h[0] += ok
            h[1] += n
        shown, total = closures_shown(pred, spans)
        c = self.closures.setdefault(method, [0, 0])
        c[0] += shown
        c[1] += total

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
        out = {"frames": frames, "audio_s": round(self.audio_s, 1), "accuracy": acc, "rtf": rtf}
        if any(c[1] for c in self.closures.values()):
            out["pbm_closures_shown"] = {
                m: f"{c[0]}/{c[1]} ({c[0] / max(1, c[1]):.0%})" for m, c in self.closures.items()
            }
        return out


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
                sc.add(cond, "audio_only", a, truth, u.phonemes)
                sc.add(cond, "audio_recognizer", r, truth, u.phonemes)
                sc.add(cond, "text_known", t, truth, u.phonemes)
                sc.add(cond, "text_known_align", ta, truth, u.phonemes)
                sc.add(cond, "floor_only", f, truth, u.phonemes)
                sc.add(cond, "vad_baseline", baseline_of(f), truth, u.phonemes)
    res = sc.result()
    res["alignment_succeeded"] = f"{aligned}/{total}"
    res["reference"] = "exact espeak-ng phoneme times"
    return res


def _tool(name: str) -> Any:
    """tools/<name>.py, imported once under its own name (dataclasses look their module up in
    sys.modules, and the tools import each other by name)."""
    import importlib.util

    if name in sys.modules:
        return sys.modules[name]
    path = Path(__file__).resolve().parents[1] / "tools" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def _corpus() -> Any:
    """tools/lipsync_corpus.py (human clips, flite/festival voices with phone times)."""
    return _tool("lipsync_corpus")


SLT_STRETCHES = (0.9, 1.1)


def human_sets(aligner: Aligner, sentences: Sequence[str]) -> dict[str, Any]:
    """Every held-out human (or human-derived) set: name → (clips, reference, texts)."""
    lc = _corpus()
    ps = lc.pocketsphinx_clips(aligner)
    sets: dict[str, Any] = {
        "michael_mfa": (
            lc.mfa_textgrid_clips(),
            "MFA's own phone TextGrids from its sdist test data (independent of pocketsphinx); "
            "natural, partly hesitant and hoarse ('cold') speech in a noisy room",
            lc.fetch_hint(),
        ),
        "librivox": (
            [c for c in ps if c.speaker == "librivox-austen"],
            "pocketsphinx forced alignment of the transcript (BIASED towards pocketsphinx)",
            "apt-get install pocketsphinx-testdata",
        ),
        "cards": (
            [c for c in ps if c.speaker == "cards"],
            "pocketsphinx forced alignment of the transcript (BIASED towards pocketsphinx)",
            "apt-get install pocketsphinx-testdata",
        ),
        "real_video": (
            lc.real_video_clips(aligner),
            "pocketsphinx word recognition (corrected by the clips' README where it gives the "
            "words) + pocketsphinx forced alignment: doubly BIASED towards pocketsphinx",
            f"only in the workspace ({lc.REAL_VIDEO}), never committed",
        ),
        "prompts_heldout": (
            lc.prompt_clips(aligner, lc.PROMPT_HELDOUT),
            "TTS packages' reference prompts of people never trained on (PROMPT_HELDOUT), "
            "pocketsphinx forced alignment of the packages' transcripts (BIASED towards "
            "pocketsphinx)",
            lc.prompt_fetch_hint(),
        ),
    }
    try:
        slt = [lc.flite_utt(t, "slt", k) for k in SLT_STRETCHES for t in sentences]
    except RuntimeError:
        slt = []
    sets["slt"] = (
        slt,
        "flite's cmu_us_slt (CMU ARCTIC's slt re-synthesised), exact flite phone times; the "
        "TEST sentences at duration stretch 0.9 and 1.1; slt is never trained or tuned on",
        "apt-get install flite",
    )
    return sets


def english_human(sentences: Sequence[str]) -> dict[str, Any]:
    """Held-out human speakers, one result per set (speakers and seconds with each)."""
    audio = StreamingLipSync(lookahead_ms=LOOKAHEAD_MS, language="en")
    audio_rec = StreamingLipSync(lookahead_ms=LOOKAHEAD_MS, language="en", method="recognizer")
    floor = StreamingLipSync(lookahead_ms=LOOKAHEAD_MS, language="floor")
    aligner = Aligner()
    out: dict[str, Any] = {}
    for name, (clips, reference, hint) in human_sets(aligner, sentences).items():
        if not clips:
            out[name] = {"skipped": f"not installed: {hint}"}
            continue
        sc = Scorer()
        engines = {"audio_only": audio, "audio_recognizer": audio_rec, "floor_only": floor}
        for c in clips:
            truth = score_clip(sc, name, c, engines)
            if c.text and c.labels != "mfa-textgrid" and name != "real_video":
                # Words known (the espeak template warped onto the audio); the reference is
                # pocketsphinx's alignment of the same words.
                t = sc.timed(
                    "text_known",
                    partial(track_from_audio, c.pcm, text=c.text, text_method="dtw"),
                )
                sc.add(name, "text_known", t, truth, c.spans)
        out[name] = set_result(sc, clips, reference)
    return out


def score_clip(
    sc: Scorer, cond: str, clip: Any, engines: dict[str, StreamingLipSync]
) -> list[Shape]:
    """Stream one clip through each engine (method name → engine; "floor_only" among them),
    score every track and the voice-activity baseline (the floor's gate); the frame truth."""
    n = -(-clip.pcm.size // (SAMPLE_RATE_HZ // FRAME_RATE_HZ))
    truth = frame_truth(clip.spans, n)
    sc.audio_s += clip.pcm.size / SAMPLE_RATE_HZ
    tracks = {m: sc.timed(m, partial(stream, e, clip.pcm)) for m, e in engines.items()}
    for m, track in tracks.items():
        sc.add(cond, m, track, truth, clip.spans)
    sc.add(cond, "vad_baseline", baseline_of(tracks["floor_only"]), truth, clip.spans)
    return truth


def set_result(sc: Scorer, clips: Sequence[Any], reference: str) -> dict[str, Any]:
    """A set's scores with its speakers, clips, reference and audio-only margin."""
    res = sc.result()
    res["speakers"] = len({c.speaker for c in clips})
    res["clips"] = len(clips)
    res["reference"] = reference
    acc = res["accuracy"]
    res["margin_over_baseline"] = round(
        acc["audio_only"]["overall"] - acc["vad_baseline"]["overall"], 3
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
            sc.add(f"cmn@{rate}wpm", "audio_only", m, truth, u.phonemes)
            sc.add(f"cmn@{rate}wpm", "floor_only", f, truth, u.phonemes)
            sc.add(f"cmn@{rate}wpm", "vad_baseline", baseline_of(f), truth, u.phonemes)
    res = sc.result()
    res["reference"] = "exact espeak-ng phoneme times (cmn)"
    return res


def _mandarin_natural() -> Any:
    """tools/mandarin_natural.py (natural Mandarin clips and their DTW labels)."""
    _corpus()  # it imports lipsync_corpus by name
    return _tool("mandarin_natural")


def mandarin_natural() -> dict[str, Any]:
    """Natural Mandarin (issue 10): F5-TTS's reference prompt (one male speaker, 6.8 s), if
    fetched (`tools/lipsync_corpus.py --fetch`), else skipped. Labels: espeak cmn templates
    warped onto the clip by DTW on MFCCs (tools/mandarin_natural.py), syllable by syllable
    onto hand-checked syllable onsets ("labels": the set's main result) and, to show how much
    the figures depend on the labels, by one DTW over the whole clip ("labels_plain_dtw");
    both frozen in tools/mandarin_natural_labels.json (espeak's renderings vary slightly)."""
    mn = _mandarin_natural()
    if not mn.natural_items():
        return {"skipped": "not fetched: .venv/bin/python tools/lipsync_corpus.py --fetch"}
    model = StreamingLipSync(lookahead_ms=LOOKAHEAD_MS, language="zh")
    floor = StreamingLipSync(lookahead_ms=LOOKAHEAD_MS, language="floor")
    out: dict[str, Any] = {"default_method_zh": model.method}
    for key, anchored in (("labels", True), ("labels_plain_dtw", False)):
        clips = mn.natural_clips(anchored=anchored)
        sc = Scorer()
        for c in clips:
            score_clip(sc, c.name, c, {"audio_only": model, "floor_only": floor})
        out[key] = set_result(
            sc,
            clips,
            "espeak-ng cmn templates (3 variants) warped onto the clip by DTW on MFCCs"
            + (", syllable by syllable onto hand-checked onsets" if anchored else ", one DTW")
            + "; frozen in tools/mandarin_natural_labels.json by tools/mandarin_natural.py "
            "--write-labels (label quality: its --check)",
        )
    return out


def _piper_corpus() -> Any:
    return _tool("piper_corpus")


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
            sc.add(cond, "audio_only", a, truth, r.spans)
            sc.add(cond, "text_known", t, truth, r.spans)
            sc.add(cond, "floor_only", f, truth, r.spans)
            sc.add(cond, "vad_baseline", baseline_of(f), truth, r.spans)
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
    parts = [(k, res.get(k)) for k in ("english_generated", "piper_generated")]
    parts += [(f"human: {k}", v) for k, v in res.get("english_human", {}).items()]
    parts += [("mandarin_generated", res.get("mandarin_generated"))]
    nat = res.get("mandarin_natural")
    if nat is not None:
        parts += [
            (f"mandarin_natural ({k})", nat.get(k, nat)) for k in ("labels", "labels_plain_dtw")
        ]
    for key, part in parts:
        if part is None:
            continue
        print(f"\n== {key} ==")
        if "skipped" in part:
            print(f"  SKIPPED: {part['skipped']}")
            continue
        print(f"  reference: {part['reference']}; {part['frames']} frames, {part['audio_s']} s")
        if "speakers" in part:
            print(f"  speakers: {part['speakers']}, clips: {part['clips']}")
        if "pbm_closures_shown" in part:
            print(f"  P/B/M closures shown: {part['pbm_closures_shown']}")
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
    ap.add_argument(
        "--only-mandarin-natural", action="store_true", help="only the natural Mandarin set"
    )
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
    if args.only_mandarin_natural:
        res["mandarin_natural"] = mandarin_natural()
    elif args.only_piper:
        res["piper_generated"] = piper_generated(sentences)
    else:
        res["english_generated"] = english_generated(sentences, args.quick)
        res["piper_generated"] = piper_generated(sentences)
    only = args.only_piper or args.only_mandarin_natural
    if not args.quick and not only:
        res["english_human"] = english_human(sentences)
        res["mandarin_generated"] = mandarin_generated()
        res["mandarin_natural"] = mandarin_natural()
    # ---- words known on human English: benchmarks/alignment.py (independent MFA labels) ----
    if not args.quick and not only:
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
