"""The learned lip-sync frame classifier: shipped weights, features, accuracy, DTW transfer."""

from __future__ import annotations

import itertools
from importlib import resources
from typing import Any

import numpy as np
import pytest

from avatarcast.speech.audio_lipsync import A_LOGIT_BIAS, StreamingLipSync, dtw_spans
from avatarcast.speech.lipsync_floor import HopAnalyzer
from avatarcast.speech.lipsync_model import (
    FEATURE_VERSION,
    MODEL_FILE,
    MODEL_FILES,
    MODEL_FORMAT,
    N_FEATURES,
    N_SPECTRAL,
    LipSyncEnsemble,
    LipSyncModel,
    dtw_path,
    dtw_transfer,
    frame_features,
    load_ensemble,
    load_model,
    phone_features,
    utterance_features,
)
from avatarcast.speech.text_lipsync import frame_labels
from avatarcast.speech.tts import get_backend
from avatarcast.speech.visemes import SHAPES, Shape

# Not one of the benchmark's TEST sentences.
TEXT = "My mother fixed the blue bike before lunch."


def test_model_file_is_small_shared_and_read_only() -> None:
    ref = resources.files("avatarcast.speech") / "models" / MODEL_FILE
    assert ref.is_file()
    with resources.as_file(ref) as path:
        assert path.stat().st_size < 2 * 1024 * 1024
    model = load_model()
    assert load_model() is model
    assert model.n_inputs == N_FEATURES and model.n_outputs == len(SHAPES)
    with pytest.raises(ValueError):
        model.w1[0, 0] = 1.0


# Floors on one synthetic sentence. en-gb+f3 (a female variant) went from 0.683 to 0.635-0.651
# (it depends on BLAS rounding at a few frames) when the model was retrained with more real
# voices (2026-12-06: held-out human sets +0.024, espeak TEST -0.010; docs/lipsync.md): its
# floor moved from 0.65 to 0.62, the margin over voice activity (+0.2) stays.
@pytest.mark.parametrize(("voice", "floor"), [("en-us", 0.75), ("en-gb+f3", 0.62)])
def test_classifier_beats_voice_activity_on_unseen_speech(voice: str, floor: float) -> None:
    u = get_backend("espeak").synthesize(TEXT, voice=voice, rate_wpm=160)
    an = HopAnalyzer(phones=True)
    an.add(u.pcm)
    n = -(-u.pcm.size // 640)
    an.add(np.zeros(n * 640 - u.pcm.size, np.int16))
    x = utterance_features(an)
    assert x.shape == (n, N_FEATURES)
    # The batch features are the streaming engine's per-frame features.
    mel, cmn = np.array(an.mel_db, np.float32), np.array(an.cmn_db, np.float32)
    lev, noise = np.array(an.level_db), np.array(an.noise_db)
    for f in (0, n // 2, n - 1):
        nh = an.n_hops
        one = frame_features(mel, lev, noise, cmn[min(4 * f + 3, nh - 1)], 4 * f, nh, True)
        assert np.allclose(one, x[f, :N_SPECTRAL], atol=1e-5)  # float32 rounding only
        phones = phone_features(an.phone_scores, np.array([4 * f], np.intp))[0]
        assert np.array_equal(phones, x[f, N_SPECTRAL:])
    truth = frame_labels(u.phonemes, n)
    pred = [SHAPES[int(i)] for i in np.argmax(load_model().logits(x), axis=1)]
    acc = np.mean([p == t for p, t in zip(pred, truth, strict=True)])
    base = np.mean([(Shape.X if t is Shape.X else Shape.B) == t for t in truth])
    assert acc >= floor and acc >= base + 0.2, (acc, base)
    # The closures of "My mother ... before" are heard, by the classifier's decision rule as
    # every engine path applies it (closures favoured by A_LOGIT_BIAS). The raw argmax alone
    # found 2 on en-gb+f3 before the Asterisk voice joined training (2026-12-06), 0 after;
    # with the bias 6 -> 5, and the streaming engine shows 6 -> 8 of the reference's 7.
    za = load_model().logits(x)
    za[:, SHAPES.index(Shape.A)] += A_LOGIT_BIAS
    assert int(np.sum(np.argmax(za, axis=1) == SHAPES.index(Shape.A))) >= 2


def test_dtw_transfer_follows_the_evidence() -> None:
    # Template A A B B C C; the input holds each label for 3 hops: the warp must stretch.
    ref = np.array([0, 0, 1, 1, 2, 2], np.intp)
    labels = [0] * 3 + [1] * 3 + [2] * 3
    lp = np.full((len(labels), 9), np.log(0.01), np.float32)
    for i, k in enumerate(labels):
        lp[i, k] = np.log(0.9)
    path = dtw_transfer(lp, ref)
    assert [int(ref[j]) for j in path] == labels
    assert all(b >= a for a, b in itertools.pairwise(path))


def test_dtw_spans_time_the_text_on_other_voices() -> None:
    u = get_backend("espeak").synthesize(TEXT, voice="en-gb+m3", rate_wpm=130, pitch=30)
    spans = dtw_spans(u.pcm, TEXT)
    assert spans is not None
    assert spans[0][0] == 0.0 and abs(spans[-1][1] - u.pcm.size // 160 * 0.01) < 1e-9
    n = -(-u.pcm.size // 640)
    truth = frame_labels(u.phonemes, n)
    # Frame shapes from the warped template agree with espeak's own times most of the time.
    from avatarcast.speech.audio_lipsync import shape_in_window

    starts = [s[0] for s in spans]
    pred = [shape_in_window(starts, spans, f / 25, (f + 1) / 25) for f in range(n)]
    acc = np.mean([p == t for p, t in zip(pred, truth, strict=True)])
    assert acc >= 0.75, acc


def test_dtw_path_is_monotone_and_ends_at_both_ends() -> None:
    rng = np.random.default_rng(0)
    cost = rng.random((30, 12))
    path = dtw_path(cost)
    assert path[-1] == 11 and path[0] <= 3
    assert all(0 <= b - a <= 3 for a, b in itertools.pairwise(path))


def test_dtw_spans_match_the_template_rate_to_fast_speech() -> None:
    # Fast speech (the template is re-rendered at the input's rate before warping).
    u = get_backend("espeak").synthesize(TEXT, voice="en-us+f3", rate_wpm=230, pitch=60)
    spans = dtw_spans(u.pcm, TEXT)
    assert spans is not None
    n = -(-u.pcm.size // 640)
    truth = frame_labels(u.phonemes, n)
    from avatarcast.speech.audio_lipsync import shape_in_window

    starts = [s[0] for s in spans]
    pred = [shape_in_window(starts, spans, f / 25, (f + 1) / 25) for f in range(n)]
    acc = np.mean([p == t for p, t in zip(pred, truth, strict=True)])
    assert acc >= 0.75, acc


def _piper_corpus() -> Any:
    import importlib.util
    import sys
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "tools" / "piper_corpus.py"
    spec = importlib.util.spec_from_file_location("piper_corpus", path)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules["piper_corpus"] = mod
    spec.loader.exec_module(mod)
    return mod


def test_piper_alignment_tokens_become_tiling_spans() -> None:
    # "^ ð ə ␠ k w ˈ ɪ k ␠ b ɹ ˈ a ʊ n ." with made-up sample counts (rate 1000 Hz).
    pc = _piper_corpus()
    toks = [("^", 100), ("ð", 40), ("ə", 30), (" ", 20), ("k", 30), ("w", 40), ("ˈ", 10),
            ("ɪ", 50), ("k", 40), (" ", 40), ("b", 30), ("ɹ", 30), ("ˈ", 20), ("a", 60),
            ("ʊ", 40), ("n", 50), ("ː", 10), (".", 100), ("$", 30)]  # fmt: skip
    spans = pc.alignment_spans(toks, 1000)
    assert spans[0].start_s == 0.0 and abs(spans[-1].end_s - 0.77) < 1e-9
    assert all(abs(a.end_s - b.start_s) < 1e-12 for a, b in itertools.pairwise(spans))
    got = [(s.phoneme, s.shape) for s in spans]
    assert got == [("_", Shape.X), ("ð", Shape.B), ("ə", Shape.C), ("k", Shape.B),
                   ("w", Shape.F), ("ɪ", Shape.C), ("k", Shape.B), ("b", Shape.A),
                   ("ɹ", Shape.E), ("aʊ", Shape.D), ("n", Shape.B), ("_", Shape.X)]  # fmt: skip
    by = {s.phoneme: s for s in spans}
    # The space is split between its neighbours; stress goes to the vowel, length to "n".
    assert abs(by["ə"].end_s - 0.18) < 1e-9
    assert abs(by["ɪ"].duration_s - 0.06) < 1e-9
    assert abs(by["aʊ"].duration_s - 0.12) < 1e-9
    assert abs(by["n"].duration_s - 0.06) < 1e-9
    assert not pc.unknown_tokens()


def test_piper_corpus_is_reproducible_when_installed() -> None:
    pc = _piper_corpus()
    if pc.available():
        pytest.skip(pc.available())
    a = pc.PiperSpeaker().synthesize("Bob bought a map.", length_scale=1.1)
    b = pc.PiperSpeaker().synthesize("Bob bought a map.", length_scale=1.1)
    assert np.array_equal(a.pcm, b.pcm) and a.spans == b.spans
    assert a.spans[-1].end_s == a.pcm.size / 16000
    assert [s.shape for s in a.spans if s.phoneme == "b"] == [Shape.A] * 3  # Bob bought


def _shipped_arrays() -> dict[str, np.ndarray]:
    ref = resources.files("avatarcast.speech") / "models" / MODEL_FILE
    with resources.as_file(ref) as path, np.load(path) as data:
        return {k: data[k] for k in data.files}


def test_old_or_incomplete_model_files_are_refused() -> None:
    arrays = _shipped_arrays()
    assert int(arrays["model_format"]) == MODEL_FORMAT
    assert LipSyncModel.from_npz(arrays).temporal is not None
    # A per-frame MLP file of before the temporal head (no model_format, no GRU) reads as
    # the MLP alone: the same frame scores, no head.
    old = {k: v for k, v in arrays.items() if k != "model_format" and not k.startswith("gru_")}
    mlp = LipSyncModel.from_npz(old)
    x = np.linspace(-1.0, 1.0, N_FEATURES, dtype=np.float32)
    assert mlp.temporal is None
    assert np.array_equal(mlp.logits(x), LipSyncModel.from_npz(arrays).logits(x))
    # Format 2 that lost its GRU, GRU arrays in a format-1 file, an unknown format, a GRU
    # of the wrong size, another feature version.
    with pytest.raises(ValueError, match="format 2"):
        LipSyncModel.from_npz({k: v for k, v in arrays.items() if not k.startswith("gru_")})
    with pytest.raises(ValueError, match="format 1"):
        LipSyncModel.from_npz({**arrays, "model_format": np.array(1)})
    with pytest.raises(ValueError, match="format 3"):
        LipSyncModel.from_npz({**arrays, "model_format": np.array(3)})
    with pytest.raises(ValueError, match="temporal head"):
        LipSyncModel.from_npz({**arrays, "gru_wo": arrays["gru_wo"][:-1]})
    with pytest.raises(ValueError, match="feature version"):
        LipSyncModel.from_npz({**arrays, "feature_version": np.array(FEATURE_VERSION + 1)})
    # What save() writes is read back unchanged (float16 matrices, as shipped).
    model = load_model()
    assert model.temporal is not None
    with pytest.raises(ValueError):
        model.temporal.w_hid[0, 0] = 1.0


def test_saved_model_reads_back(tmp_path: Any) -> None:
    model = load_model()
    model.save(str(tmp_path / "m.npz"))
    with np.load(tmp_path / "m.npz") as data:
        again = LipSyncModel.from_npz({k: data[k] for k in data.files})
    assert again.temporal is not None and model.temporal is not None
    x = np.linspace(-1.0, 1.0, N_FEATURES, dtype=np.float32)
    assert np.array_equal(again.logits(x), model.logits(x))
    h, z = again.hidden_logits(x)
    assert np.array_equal(z, model.logits(x))
    s = again.temporal.step(again.temporal.initial_state(), h)
    assert np.array_equal(s, model.temporal.step(model.temporal.initial_state(), h))


def test_ensemble_averages_its_members() -> None:
    """The engine's classifier: the shipped seeds' models, their scores averaged — per frame
    and through their temporal heads stepped side by side."""
    ens = load_ensemble()
    assert load_ensemble() is ens and ens.members[0] is load_model()
    assert len(ens.members) == len(MODEL_FILES) == 2 and ens.temporal is not None
    a, b = ens.members
    assert a.temporal is not None and b.temporal is not None
    assert not np.array_equal(a.w1, b.w1)  # two trainings, not one file twice
    rng = np.random.default_rng(3)
    xs = rng.standard_normal((5, N_FEATURES)).astype(np.float32)
    assert np.array_equal(ens.logits(xs), (a.logits(xs) + b.logits(xs)) / np.float32(2))
    state, sa, sb = (
        ens.temporal.initial_state(),
        a.temporal.initial_state(),
        b.temporal.initial_state(),
    )
    for x in xs:
        h, z = ens.hidden_logits(x)
        state = ens.temporal.step(state, h)
        (ha, za), (hb, zb) = a.hidden_logits(x), b.hidden_logits(x)
        sa, sb = a.temporal.step(sa, ha), b.temporal.step(sb, hb)
        want = (a.temporal.logits(za, sa) + b.temporal.logits(zb, sb)) / np.float32(2)
        assert np.array_equal(ens.temporal.logits(z, state), want)


def test_ensemble_of_one_is_its_member() -> None:
    """One member (`MODEL_FILES` of one file, e.g. a distilled student): the ensemble
    gives exactly the member's scores, per frame and through its temporal head."""
    model = load_model()
    assert model.temporal is not None
    ens = LipSyncEnsemble.of((model,))
    assert ens.temporal is not None
    xs = np.random.default_rng(5).standard_normal((4, N_FEATURES)).astype(np.float32)
    assert np.array_equal(ens.logits(xs), model.logits(xs))
    state, own = ens.temporal.initial_state(), model.temporal.initial_state()
    for x in xs:
        h, z = ens.hidden_logits(x)
        hm, zm = model.hidden_logits(x)
        assert np.array_equal(h, hm) and np.array_equal(z, zm)
        state, own = ens.temporal.step(state, h), model.temporal.step(own, hm)
        assert np.array_equal(ens.temporal.logits(z, state), model.temporal.logits(zm, own))


def _stream(engine: StreamingLipSync, pcm: np.ndarray, chunk: int) -> list[Any]:
    engine.reset()
    out = []
    for i in range(0, pcm.size, chunk):
        out += engine.push(pcm[i : i + chunk])
    return out + engine.finish()


def test_temporal_head_is_chunking_invariant_and_remembers() -> None:
    tts = get_backend("espeak")
    a = tts.synthesize(TEXT, voice="en-gb+f3", rate_wpm=170).pcm
    b = tts.synthesize("Bob bought a map.", voice="en-us", rate_wpm=150).pcm
    pcm = np.concatenate([np.zeros(3000, np.int16), a, b])
    engine = StreamingLipSync(lookahead_ms=200)
    whole = _stream(engine, pcm, pcm.size)
    assert _stream(engine, pcm, 2560) == whole  # 160 ms chunks
    assert _stream(engine, pcm, 1) == whole  # 1-sample pushes
    # The state carries what the ±160 ms window cannot see: the last sentence's scores
    # depend on what was said before it (silence instead of the first sentence).
    model = load_model()
    assert model.temporal is not None
    quiet = np.concatenate([np.zeros(3000 + a.size, np.int16), b])
    n0 = -(-(3000 + a.size) // 640) + 8  # a frame inside the second sentence
    scores = []
    for audio in (pcm, quiet):
        an = HopAnalyzer(phones=True)
        an.add(audio)
        state = model.temporal.initial_state()
        for x in utterance_features(an)[: n0 + 1]:
            h, z = model.hidden_logits(x)
            state = model.temporal.step(state, h)
        scores.append((z, model.temporal.logits(z, state)))
    (z_speech, t_speech), (z_quiet, t_quiet) = scores
    # The GRU's term (its state through the output layer) differs.
    assert np.abs((t_speech - z_speech) - (t_quiet - z_quiet)).max() > 1e-2


def test_temporal_head_is_for_english_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Other languages get the per-frame classifier: the GRU learned English context (on the
    natural Mandarin clip it cost 0.08 where the per-frame classifier holds)."""
    import dataclasses

    from avatarcast.speech import audio_lipsync

    pcm = get_backend("espeak").synthesize("我们明天去北京。", voice="cmn").pcm
    with_head = {lang: _stream(StreamingLipSync(language=lang), pcm, 2560) for lang in ("zh", "en")}
    frame_only = dataclasses.replace(load_ensemble(), temporal=None)
    monkeypatch.setattr(audio_lipsync, "load_ensemble", lambda: frame_only)
    without = {lang: _stream(StreamingLipSync(language=lang), pcm, 2560) for lang in ("zh", "en")}
    assert with_head["zh"] == without["zh"]
    assert with_head["en"] != without["en"]  # the head is used, and changes frames, in English
