"""The PREVIOUS lip-sync classifier recipe (espeak [+ piper], numpy training), kept for its
helpers (sentences, voices, augmentation: tools/lipsync_data.py uses them) and as the
espeak-only comparison. The shipped model is now made by tools/lipsync_data.py +
tools/train_lipsync_net.py (see docs/lipsync.md); this script writes a model of the same
format (one hidden layer) to --out.

    .venv/bin/python tools/train_lipsync_model.py --out /tmp/espeak_only.npz  # ~4 min
    .venv/bin/python tools/train_lipsync_model.py --quick    # small run, for checking
    .venv/bin/python tools/train_lipsync_model.py --with-piper  # + piper's joe voice (train extra)

Data: espeak-ng speaking training sentences with many English voices and variants, rates
120-220 wpm and pitches 20-80; labels are the reference shapes of `text_lipsync.frame_labels`
(espeak's exact phoneme times), exactly what benchmarks/lipsync.py scores. Each utterance
is augmented for robustness to real recordings: random gain, leading/trailing pause, speed
perturbation (times rescaled), a random tilt/low-pass/high-pass EQ, a short synthetic
reverb, and additive white/pink/babble-like noise at 5-40 dB SNR.

With --with-piper (the `train` extra), the training sentences are also spoken by piper's
natural en_US-joe-medium voice (tools/piper_corpus.py: random length_scale / noise, labels
from piper's phoneme alignments, the same augmentation) and the held-out sentences once each;
the shipped model is trained this way (see docs/lipsync.md). Without it, the run is the
espeak-only recipe, unchanged.

Sentences: the benchmark's TRAIN_SENTENCES, sentences of the licence texts under
/usr/share/common-licenses and template sentences from a word list. The benchmark's
TEST_SENTENCES are NEVER used (asserted below), nor the human clips. A held-out split (20 %
of the sentences, all spoken by voices not used in training) is scored at the end.

Deterministic: fixed seed, single-process feature extraction order.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import sys
import time
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from avatarcast import FRAME_RATE_HZ, SAMPLE_RATE_HZ
from avatarcast.speech.lipsync_floor import HopAnalyzer
from avatarcast.speech.lipsync_model import N_FEATURES, LipSyncModel, utterance_features
from avatarcast.speech.text_lipsync import frame_labels
from avatarcast.speech.tts import PhonemeSpan, get_backend
from avatarcast.speech.visemes import SHAPES, Shape

ROOT = Path(__file__).resolve().parents[1]
SEED = 20251125


def _benchmark_sentences() -> tuple[tuple[str, ...], tuple[str, ...]]:
    spec = importlib.util.spec_from_file_location("bench_lipsync", ROOT / "benchmarks/lipsync.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return tuple(mod.TRAIN_SENTENCES), tuple(mod.TEST_SENTENCES)


_WORDS = {
    "subj": [
        "the man",
        "a woman",
        "my brother",
        "her mother",
        "the teacher",
        "our neighbour",
        "the children",
        "a small dog",
        "the old farmer",
        "his wife",
        "the doctor",
        "my friend Paul",
        "the pilot",
        "a young girl",
        "the police",
        "your father",
        "the baker",
        "the students",
        "Jim",
        "Sarah",
        "the driver",
        "the judge",
    ],
    "verb": [
        "opened",
        "washed",
        "painted",
        "found",
        "carried",
        "pushed",
        "bought",
        "sold",
        "watched",
        "fixed",
        "moved",
        "cooked",
        "loved",
        "heard",
        "threw",
        "caught",
        "needed",
        "wanted",
        "showed",
        "kept",
        "lost",
        "borrowed",
        "ordered",
        "visited",
        "followed",
        "pulled",
        "dropped",
        "cleaned",
        "built",
        "broke",
    ],
    "obj": [
        "the heavy box",
        "a blue bottle",
        "the wooden chair",
        "the garden gate",
        "a loaf of bread",
        "the broken window",
        "some fresh fish",
        "the yellow boat",
        "a warm jacket",
        "the big map",
        "an orange",
        "the kitchen floor",
        "a few books",
        "the morning paper",
        "the silver spoon",
        "a bag of potatoes",
        "the leather shoes",
        "a cup of tea",
        "the violin",
        "the purple flowers",
    ],
    "tail": [
        "before breakfast",
        "in the rain",
        "near the bridge",
        "after the storm",
        "with great care",
        "on Friday",
        "at the airport",
        "by the fire",
        "without a word",
        "for the village",
        "under the bed",
        "over the hill",
        "in the evening",
        "at noon",
        "behind the shop",
    ],
    "q": ["Why did", "When will", "How could", "Where would", "Who should"],
}


def template_sentences(rng: np.random.Generator, n: int) -> list[str]:
    w = _WORDS
    out = []
    for _ in range(n):
        s, v, o, t = (w[k][int(rng.integers(len(w[k])))] for k in ("subj", "verb", "obj", "tail"))
        if rng.random() < 0.25:
            q = w["q"][int(rng.integers(len(w["q"])))]
            base = v.replace("ed", "") if v.endswith("ed") else "take"
            out.append(f"{q} {s} {base} {o} {t}?")
        else:
            out.append(f"{s[0].upper()}{s[1:]} {v} {o} {t}.")
    return out


def licence_sentences() -> list[str]:
    out: list[str] = []
    d = Path("/usr/share/common-licenses")
    if not d.is_dir():
        return out
    for f in sorted(d.iterdir()):
        if not f.is_file():
            continue
        text = re.sub(r"\s+", " ", f.read_text(errors="replace"))
        for s in re.split(r"(?<=[.;:?!])\s+", text):
            words = s.split()
            if 4 <= len(words) <= 16 and re.fullmatch(r"[A-Za-z ,.;:?!'\-()]+", s):
                out.append(s.strip())
    return sorted(set(out))


def voices(backend: object) -> list[str]:
    base = ["en-us", "en-gb", "en-gb-x-rp", "en-gb-scotland", "en-029", "en-us-nyc",
            "en-gb-x-gbclan", "en-gb-x-gbcwmd"]  # fmt: skip
    variants = ["", "+m1", "+m2", "+m3", "+m4", "+m5", "+m6", "+m7", "+f1", "+f2", "+f3",
                "+f4", "+f5", "+klatt", "+klatt2", "+klatt3", "+klatt4", "+Alex", "+Andy",
                "+Annie", "+belinda", "+boris", "+david", "+edward", "+john", "+linda",
                "+max", "+paul", "+robert", "+steph", "+travis", "+Tweaky", "+grandma",
                "+aunty", "+croak"]  # fmt: skip
    known = {v.lower() for v in backend.variants()}
    return [b + v for b in base for v in variants if not v or v[1:].lower() in known]


# -- augmentation --------------------------------------------------------------------------


def _pink(rng: np.random.Generator, n: int) -> NDArray[np.float64]:
    spec = np.fft.rfft(rng.normal(size=n))
    f = np.arange(spec.size, dtype=np.float64)
    spec /= np.sqrt(np.maximum(f, 1.0))
    x = np.fft.irfft(spec, n)
    return np.asarray(x / (np.std(x) + 1e-9))


def augment(
    rng: np.random.Generator, pcm: NDArray[np.int16], spans: list[PhonemeSpan]
) -> tuple[NDArray[np.int16], list[PhonemeSpan]]:
    x = pcm.astype(np.float64)
    # Speed perturbation (pitch changes too): resample by linear interpolation.
    if rng.random() < 0.5:
        k = float(rng.uniform(0.88, 1.12))
        n = round(x.size / k)
        x = np.interp(np.arange(n) * k, np.arange(x.size), x)
        spans = [PhonemeSpan(s.start_s / k, s.end_s / k, s.phoneme, s.shape) for s in spans]
    # Leading / trailing silence.
    lead = int(rng.integers(0, 8000))
    tail = int(rng.integers(0, 8000))
    x = np.concatenate([np.zeros(lead), x, np.zeros(tail)])
    off = lead / SAMPLE_RATE_HZ
    total = x.size / SAMPLE_RATE_HZ
    spans = [PhonemeSpan(s.start_s + off, s.end_s + off, s.phoneme, s.shape) for s in spans]
    # EQ: random first-order tilt, low-pass and/or high-pass (short FIRs).
    r = rng.random()
    if r < 0.25:
        a = float(rng.uniform(0.3, 0.95))
        x = np.convolve(x, [1.0, -a])[: x.size]  # high-pass / pre-emphasis
    elif r < 0.5:
        k = int(rng.integers(2, 6))
        x = np.convolve(x, np.ones(k) / k)[: x.size]  # low-pass (telephone-ish muffling)
    elif r < 0.6:
        x = np.convolve(x, [1.0, -1.0])[: x.size]
        x = np.convolve(x, np.ones(3) / 3)[: x.size]  # band-pass
    # Reverb: exponentially decaying noise impulse response.
    if rng.random() < 0.35:
        rt = float(rng.uniform(0.05, 0.4))
        n = int(rt * SAMPLE_RATE_HZ)
        t = np.arange(n) / SAMPLE_RATE_HZ
        ir = rng.normal(size=n) * np.exp(-6.9 * t / rt)
        ir[0] = 1.0 / float(rng.uniform(0.1, 0.5))
        ir /= np.sqrt(np.sum(ir**2))
        x = np.convolve(x, ir)[: x.size]
    # Gain: peak somewhere between -35 dBFS and 0 dBFS.
    peak = float(np.max(np.abs(x))) + 1e-9
    x *= 32000.0 * 10 ** (-float(rng.uniform(0, 35)) / 20) / peak
    # Noise.
    r = rng.random()
    if r < 0.7:
        snr = float(rng.uniform(5, 40))
        speech_rms = float(np.sqrt(np.mean(x[np.abs(x) > 1e-3] ** 2))) if np.any(x) else 1.0
        noise = rng.normal(size=x.size) if rng.random() < 0.5 else _pink(rng, x.size)
        x += noise * speech_rms * 10 ** (-snr / 20)
    else:
        x += rng.normal(size=x.size) * float(rng.uniform(0.0, 4.0))
    spans.append(PhonemeSpan(spans[-1].end_s, total, "_", Shape.X))
    return np.clip(np.round(x), -32768, 32767).astype(np.int16), spans


def make_set(
    sentences: list[str], voice_list: list[str], per_sentence: int, seed: int, aug_frac: float
) -> tuple[NDArray[np.float32], NDArray[np.int8], float]:
    tts = get_backend("espeak")
    rng = np.random.default_rng(seed)
    feats: list[NDArray[np.float32]] = []
    labels: list[NDArray[np.int8]] = []
    audio_s = 0.0
    for text in sentences:
        for _ in range(per_sentence):
            voice = voice_list[int(rng.integers(len(voice_list)))]
            rate = int(rng.integers(120, 221))
            pitch = int(rng.integers(20, 81))
            try:
                u = tts.synthesize(text, voice=voice, rate_wpm=rate, pitch=pitch)
            except Exception:  # a voice that cannot speak this text
                continue
            pcm, spans = u.pcm, list(u.phonemes)
            if rng.random() < aug_frac:
                pcm, spans = augment(rng, pcm, spans)
            f, lab = featurize(pcm, spans)
            feats.append(f)
            labels.append(lab)
            audio_s += pcm.size / SAMPLE_RATE_HZ
    return np.concatenate(feats), np.concatenate(labels), audio_s


def featurize(
    pcm: NDArray[np.int16], spans: list[PhonemeSpan]
) -> tuple[NDArray[np.float32], NDArray[np.int8]]:
    """Classifier features and reference labels of one utterance, one row per 25 fps frame."""
    index = {s: i for i, s in enumerate(SHAPES)}
    an = HopAnalyzer(phones=True)
    an.add(pcm)
    n_frames = -(-pcm.size // (SAMPLE_RATE_HZ // FRAME_RATE_HZ))
    an.add(np.zeros(n_frames * 640 - pcm.size, np.int16))
    f = utterance_features(an)[:n_frames]
    lab = frame_labels(spans, n_frames, FRAME_RATE_HZ)
    return f, np.array([index[s] for s in lab], np.int8)


def make_piper_set(
    sentences: list[str], per_sentence: int, seed: int, aug_frac: float
) -> tuple[NDArray[np.float32], NDArray[np.int8], float]:
    """The same, spoken by piper's natural joe voice (tools/piper_corpus.py)."""
    import piper_corpus

    speaker = piper_corpus.PiperSpeaker(seed)
    rng = np.random.default_rng(seed)
    feats: list[NDArray[np.float32]] = []
    labels: list[NDArray[np.int8]] = []
    audio_s = 0.0
    for _text, r in piper_corpus.renderings(speaker, sentences, per_sentence, rng):
        pcm, spans = r.pcm, list(r.spans)
        if rng.random() < aug_frac:
            pcm, spans = augment(rng, pcm, spans)
        f, lab = featurize(pcm, spans)
        feats.append(f)
        labels.append(lab)
        audio_s += pcm.size / SAMPLE_RATE_HZ
    if piper_corpus.unknown_tokens():
        print(f"  piper: IPA tokens without a table entry (shown as B): "
              f"{piper_corpus.unknown_tokens()}")  # fmt: skip
    return np.concatenate(feats), np.concatenate(labels), audio_s


# -- training ------------------------------------------------------------------------------


def train(
    x: NDArray[np.float32],
    y: NDArray[np.int8],
    hidden: int,
    epochs: int,
    seed: int,
    xv: NDArray[np.float32],
    yv: NDArray[np.int8],
) -> LipSyncModel:
    rng = np.random.default_rng(seed)
    mean = x.mean(axis=0).astype(np.float32)
    scale = (1.0 / (x.std(axis=0) + 1e-3)).astype(np.float32)
    z = (x - mean) * scale
    zv = (xv - mean) * scale
    d, k = x.shape[1], len(SHAPES)
    params = {
        "w1": (rng.normal(size=(d, hidden)) * np.sqrt(2.0 / d)).astype(np.float32),
        "b1": np.zeros(hidden, np.float32),
        "w2": (rng.normal(size=(hidden, k)) * np.sqrt(1.0 / hidden)).astype(np.float32),
        "b2": np.zeros(k, np.float32),
    }
    m = {n: np.zeros_like(p) for n, p in params.items()}
    v = {n: np.zeros_like(p) for n, p in params.items()}
    b1, b2, eps, wd = 0.9, 0.999, 1e-8, 1e-4
    step = 0
    batch = 256
    n = z.shape[0]
    for ep in range(epochs):
        lr = 2e-3 * (0.5 * (1 + np.cos(np.pi * ep / epochs)))
        order = rng.permutation(n)
        loss_sum = 0.0
        for i in range(0, n, batch):
            idx = order[i : i + batch]
            xb = z[idx]
            # Input dropout-like noise for robustness.
            xb = xb + rng.normal(size=xb.shape).astype(np.float32) * 0.1
            yb = y[idx].astype(np.intp)
            h = np.maximum(xb @ params["w1"] + params["b1"], 0.0)
            lo = h @ params["w2"] + params["b2"]
            lo -= lo.max(axis=1, keepdims=True)
            p = np.exp(lo)
            p /= p.sum(axis=1, keepdims=True)
            loss_sum += float(-np.log(p[np.arange(idx.size), yb] + 1e-9).sum())
            g = p
            g[np.arange(idx.size), yb] -= 1.0
            g /= idx.size
            grads = {"w2": h.T @ g, "b2": g.sum(axis=0)}
            gh = (g @ params["w2"].T) * (h > 0)
            grads["w1"] = xb.T @ gh
            grads["b1"] = gh.sum(axis=0)
            step += 1
            for name, gr in grads.items():
                if name.startswith("w"):
                    gr = gr + wd * params[name]
                m[name] = b1 * m[name] + (1 - b1) * gr
                v[name] = b2 * v[name] + (1 - b2) * gr * gr
                mh = m[name] / (1 - b1**step)
                vh = v[name] / (1 - b2**step)
                params[name] -= (lr * mh / (np.sqrt(vh) + eps)).astype(np.float32)
        model = LipSyncModel(
            mean, scale, (params["w1"], params["w2"]), (params["b1"], params["b2"])
        )
        acc = float(np.mean(np.argmax(model.logits(xv), axis=1) == yv))
        print(f"  epoch {ep + 1}/{epochs}: train loss {loss_sum / n:.3f}, held-out acc {acc:.3f}")
        _ = zv
    return LipSyncModel(mean, scale, (params["w1"], params["w2"]), (params["b1"], params["b2"]))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--hidden", type=int, default=160)
    ap.add_argument("--epochs", type=int, default=14)
    ap.add_argument("--per-sentence", type=int, default=10)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument(
        "--with-piper",
        action="store_true",
        help="add piper (joe voice) renderings of the training sentences (train extra)",
    )
    ap.add_argument("--piper-per-sentence", type=int, default=3)
    args = ap.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    t0 = time.time()
    rng = np.random.default_rng(SEED)
    bench_train, bench_test = _benchmark_sentences()
    sentences = list(bench_train) + licence_sentences() + template_sentences(rng, 400)
    test_norm = {re.sub(r"\W+", " ", s.lower()).strip() for s in bench_test}
    sentences = [s for s in sentences if re.sub(r"\W+", " ", s.lower()).strip() not in test_norm]
    assert not set(sentences) & set(bench_test), "TEST sentences must never be trained on"
    order = rng.permutation(len(sentences))
    sentences = [sentences[i] for i in order]
    if args.quick:
        sentences = sentences[:120]
    n_hold = len(sentences) // 5
    held, train_s = sentences[:n_hold], sentences[n_hold:]
    vl = voices(get_backend("espeak"))
    vorder = rng.permutation(len(vl))
    held_voices = [vl[i] for i in vorder[: len(vl) // 8]]
    train_voices = [vl[i] for i in vorder[len(vl) // 8 :]]
    print(f"{len(train_s)} training / {len(held)} held-out sentences; "
          f"{len(train_voices)} training / {len(held_voices)} held-out voices")  # fmt: skip
    x, y, audio = make_set(train_s, train_voices, args.per_sentence, SEED + 1, 0.8)
    xv, yv, audio_v = make_set(held, held_voices, 2, SEED + 2, 0.5)
    print(f"data: {x.shape[0]} training frames ({audio / 3600:.2f} h), {xv.shape[0]} held-out "
          f"frames ({audio_v / 60:.1f} min); {time.time() - t0:.0f} s")  # fmt: skip
    xp_v: NDArray[np.float32] | None = None
    yp_v: NDArray[np.int8] | None = None
    if args.with_piper:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        import piper_corpus

        why = piper_corpus.available()
        if why:
            raise SystemExit(f"--with-piper: {why}")
        # Same split: held-out sentences are never rendered for training (one voice only,
        # so the piper held-out split measures new sentences, not a new speaker).
        xp, yp, audio_p = make_piper_set(train_s, args.piper_per_sentence, SEED + 4, 0.8)
        xp_v, yp_v, audio_pv = make_piper_set(held, 1, SEED + 5, 0.5)
        print(f"piper: {xp.shape[0]} training frames ({audio_p / 3600:.2f} h), {xp_v.shape[0]} "
              f"held-out frames ({audio_pv / 60:.1f} min); {time.time() - t0:.0f} s")  # fmt: skip
        x = np.concatenate([x, xp])
        y = np.concatenate([y, yp])
        xv = np.concatenate([xv, xp_v])
        yv = np.concatenate([yv, yp_v])
    assert x.shape[1] == N_FEATURES
    model = train(x, y, args.hidden, args.epochs, SEED + 3, xv, yv)
    if xp_v is not None and yp_v is not None:
        pp = np.argmax(model.logits(xp_v), axis=1)
        print(f"piper held-out frame accuracy (raw): {float(np.mean(pp == yp_v)):.3f}")
    pred = np.argmax(model.logits(xv), axis=1)
    acc = float(np.mean(pred == yv))
    speech = yv != SHAPES.index(SHAPES[-1])
    print(f"held-out frame accuracy (raw classifier, no VAD gate/smoothing): {acc:.3f}; "
          f"on speech frames: {float(np.mean(pred[speech] == yv[speech])):.3f}")  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    model.save(str(args.out))
    print(f"wrote {args.out} ({args.out.stat().st_size / 1024:.0f} KiB); "
          f"total run time {time.time() - t0:.0f} s")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
