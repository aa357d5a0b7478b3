"""A small learned frame classifier: log band energies + phone scores → one of nine mouth shapes.

Features (per 10 ms hop, computed by `lipsync_floor.HopAnalyzer` from the FFT it already
takes): `N_MEL` (from `lipsync_floor`) log energies in mel-spaced rectangular bands, the hop's
level and the running noise floor. For video frame n (hops 4n..4n+3 at 25 fps) the classifier
sees `CONTEXT` hop positions from 160 ms before the frame to 160 ms after it (inside the
200 ms lookahead), normalised by the loudest hop of that window (gain invariance), plus the
running mean spectrum of the speech so far (channel normalisation), plus pocketsphinx's
phone scores (`phone_scores`, a model trained on people) in 8 blocks of 40 ms over the same
span (`phone_features`); then an MLP (numpy, two ReLU layers, ~172 k multiply-adds per frame)
gives the nine shape scores, and a causal GRU over the MLP's last hidden layer
(`TemporalHead`, 64 states, ~31 k multiply-adds per frame), stepped once per video frame in
order, adds what the window cannot see (the speaker, the rate, what came before) to them.
The engine averages two such models, the same recipe trained with two seeds
(`LipSyncEnsemble`, `load_ensemble`).

The weights (`models/lipsync_en.npz` and `lipsync_en_seed2.npz`, made by
tools/lipsync_data.py + tools/train_lipsync_net.py from espeak-ng, flite, festival and piper
voices and human recordings, never from the benchmark's TEST sentences or its evaluation
speakers) are loaded once, lazily, read-only, and shared by all engines.

Determinism: every frame's MLP scores are computed on their own (one vector × matrix product),
from hop features that are computed row by row; the streaming engine steps the GRU with each
frame's hidden layer as heard at that frame's commit deadline, in frame order; so chunking
cannot change the result. `logits` alone (the per-frame MLP) gives per-hop scores for the
text DTW, which looks at hops, not frames.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property, lru_cache
from importlib import resources

import numpy as np
from numpy.typing import NDArray
from threadpoolctl import threadpool_limits

from avatarcast.speech.lipsync_floor import N_MEL, HopAnalyzer
from avatarcast.speech.phone_scores import N_PHONES
from avatarcast.speech.phone_scores import STEP as PHONE_STEP
from avatarcast.speech.visemes import SHAPES

# Hop offsets relative to the frame's first hop (frame = offsets 0..3): 160 ms either side,
# every other hop outside the frame.
CONTEXT: tuple[int, ...] = (*range(-16, 0, 2), 0, 1, 2, 3, *range(5, 20, 2))
MAX_FUTURE_HOPS = max(CONTEXT) + 1  # hops after the frame's first hop the window needs
_CONTEXT_HOPS = np.array(CONTEXT, dtype=np.intp)
PER_HOP = N_MEL + 2
# Plus, once per frame, the running spectral mean (`HopAnalyzer.cmn_db`) at the frame's last
# hop on the same relative scale: the first layer is linear, so this lets the network see
# every hop against the channel's average spectrum (cepstral-mean-like normalisation).
N_SPECTRAL = len(CONTEXT) * PER_HOP + N_MEL
# Plus pocketsphinx's phone scores (`phone_scores`, scored on even hops): 8 blocks of 4 hops
# from 160 ms before the frame's first hop to 160 ms after it, each the mean of its two
# scored hops; hops not scored yet (the newest 3, or the lookahead's end) repeat the newest
# scored one, hops before the start the first.
PHONE_BLOCKS: tuple[int, ...] = tuple(range(-4, 4))
_PHONE_ROWS = np.array([2 * k + j for k in PHONE_BLOCKS for j in range(2)], dtype=np.intp)
_PHONE_FLOOR = -30.0  # nats below the hop's best phone (×0.1 → -3)
N_FEATURES = N_SPECTRAL + len(PHONE_BLOCKS) * N_PHONES
SILENCE_DB = -30.0  # band level of digital silence (10 log10 of the epsilon)
_FLOOR_REL_DB = -80.0  # relative levels are clipped here (×0.1 → -8)
MODEL_FILE = "lipsync_en.npz"
# The engine's ensemble: the same recipe trained with the default seed and with --seed 2.
MODEL_FILES: tuple[str, ...] = (MODEL_FILE, "lipsync_en_seed2.npz")
FEATURE_VERSION = 3
# 1 (files without `model_format`): the per-frame MLP alone (what tools/train_lipsync_model.py
# and train_lipsync_net.py without --temporal-from write; read with temporal=None);
# 2: the per-frame MLP + its temporal head (a causal GRU), both required.
MODEL_FORMAT = 2


def frame_features(
    mel_db: NDArray[np.float32],
    level_db: NDArray[np.float64],
    noise_db: NDArray[np.float64],
    cmn_db: NDArray[np.float32] | None,
    h0: int,
    n_known: int,
    ended: bool,
) -> NDArray[np.float32]:
    """The spectral part of the features of the frame whose first hop is h0 (the phone
    scores' part is `phone_features`).

    mel_db (hops, N_MEL), level_db and noise_db (hops,) of the hops analysed so far (n_known
    of them); cmn_db: `HopAnalyzer.cmn_db` at hop min(h0 + 3, n_known - 1) (None if no
    hop). Hops before 0, and after the end of the audio once it `ended`, are silence; hops
    not yet analysed while streaming (lookahead shorter than the window) repeat the newest
    analysed hop.
    """
    idx = _CONTEXT_HOPS + h0
    if h0 + CONTEXT[0] >= 0 and h0 + CONTEXT[-1] < n_known:
        # The whole window is analysed audio (streaming's usual case): plain indexing.
        mel, lev, noise = mel_db[idx], level_db[idx], noise_db[idx]
    else:
        valid = (idx >= 0) & (idx < n_known)
        if not ended:
            idx = np.where(idx >= n_known, n_known - 1, idx)
            valid = idx >= 0
        safe = np.clip(idx, 0, max(0, n_known - 1))
        mel = np.where(valid[:, None], mel_db[safe] if n_known else SILENCE_DB, SILENCE_DB)
        lev = np.where(valid, level_db[safe] if n_known else SILENCE_DB, SILENCE_DB)
        noise = np.where(valid, noise_db[safe] if n_known else SILENCE_DB, SILENCE_DB)
    cmn = cmn_db if cmn_db is not None else np.full(N_MEL, SILENCE_DB, np.float32)
    ref = float(np.max(lev))
    # Written into one float32 vector (each part rounded to float32 as it is stored).
    out = np.empty(N_SPECTRAL, np.float32)
    per_hop = out[: len(CONTEXT) * PER_HOP].reshape(len(CONTEXT), PER_HOP)
    per_hop[:, :N_MEL] = np.maximum(mel - ref, _FLOOR_REL_DB) * 0.1
    per_hop[:, N_MEL] = np.maximum(lev - ref, _FLOOR_REL_DB) * 0.1
    per_hop[:, N_MEL + 1] = np.clip(lev - noise, 0.0, 60.0) * 0.1
    out[len(CONTEXT) * PER_HOP :] = np.maximum(cmn - ref, _FLOOR_REL_DB) * 0.1
    return out


def phone_features(scores: NDArray[np.float32], starts: NDArray[np.intp]) -> NDArray[np.float32]:
    """The phone-score part of the features of the windows starting at hops `starts`, from
    the score rows known so far (`HopAnalyzer.phone_scores`; zeros if none yet)."""
    n = scores.shape[0]
    if n == 0:
        return np.zeros((starts.size, len(PHONE_BLOCKS) * N_PHONES), np.float32)
    rows = np.clip(starts[:, None] // PHONE_STEP + _PHONE_ROWS[None, :], 0, n - 1)
    v = np.maximum(scores[rows], _PHONE_FLOOR) * np.float32(0.1)
    pairs = v.reshape(starts.size, len(PHONE_BLOCKS), 2, N_PHONES)
    return ((pairs[:, :, 0] + pairs[:, :, 1]) * np.float32(0.5)).reshape(starts.size, -1)


def window_features(an: HopAnalyzer, starts: NDArray[np.intp]) -> NDArray[np.float32]:
    """Features of finished audio for every window start hop in `starts` (batch): the
    spectral part (`frame_features`) and the phone scores' (`phone_features`)."""
    if not an.has_phone_scores:
        raise ValueError("the classifier's features need HopAnalyzer(phones=True)")
    n_hops = an.n_hops
    if starts.size == 0 or n_hops == 0:
        return np.zeros((starts.size, N_FEATURES), np.float32)
    mel, lev, noise, cmn_all = an.mel_db, an.level_db, an.noise_db, an.cmn_db  # per-hop arrays
    idx = starts[:, None] + _CONTEXT_HOPS[None, :]
    valid = (idx >= 0) & (idx < n_hops)
    safe = np.clip(idx, 0, n_hops - 1)
    m = np.where(valid[..., None], mel[safe], SILENCE_DB)
    lv = np.where(valid, lev[safe], SILENCE_DB)
    nz = np.where(valid, noise[safe], SILENCE_DB)
    cmn = cmn_all[np.clip(starts + 3, 0, n_hops - 1)]
    ref = lv.max(axis=1)
    rel_mel = np.maximum(m - ref[:, None, None], _FLOOR_REL_DB) * 0.1
    rel_lev = np.maximum(lv - ref[:, None], _FLOOR_REL_DB) * 0.1
    snr = np.clip(lv - nz, 0.0, 60.0) * 0.1
    rel_cmn = np.maximum(cmn - ref[:, None], _FLOOR_REL_DB) * 0.1
    feats = np.concatenate([rel_mel, rel_lev[..., None], snr[..., None]], axis=2)
    spectral = np.concatenate([feats.reshape(starts.size, -1), rel_cmn], axis=1)
    return np.concatenate(
        [spectral.astype(np.float32), phone_features(an.phone_scores, starts)], axis=1
    )


def utterance_features(an: HopAnalyzer) -> NDArray[np.float32]:
    """Features of every 25 fps frame of a finished analysis (training / batch use)."""
    n_frames = -(-an.n_hops // 4)
    return window_features(an, np.arange(n_frames, dtype=np.intp) * 4)


@dataclass(frozen=True)
class TemporalHead:
    """A causal GRU over the MLP's last hidden layer, one step per video frame, in order.

    Its state carries what the ±160 ms window cannot see (the speaker, the rate, what was
    said before); its output is added to the frame's MLP logits. torch's GRU equations and
    gate order (reset, update, new): w_in (hidden, 3·n_state), w_hid (n_state, 3·n_state),
    w_out (n_state, shapes).
    """

    w_in: NDArray[np.float32]
    w_hid: NDArray[np.float32]
    b_in: NDArray[np.float32]
    b_hid: NDArray[np.float32]
    w_out: NDArray[np.float32]
    b_out: NDArray[np.float32]

    @property
    def n_state(self) -> int:
        return int(self.w_hid.shape[0])

    def initial_state(self) -> NDArray[np.float32]:
        return np.zeros(self.n_state, np.float32)

    @cached_property
    def _fused(self) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
        """[hidden, state] @ w + b → (reset and update pre-activations, input part of the
        new gate, state part of the new gate): one product per step."""
        k, n_in = self.n_state, int(self.w_in.shape[0])
        w = np.zeros((n_in + k, 4 * k), np.float32)
        w[:n_in, : 3 * k] = self.w_in
        w[n_in:, : 2 * k] = self.w_hid[:, : 2 * k]
        w[n_in:, 3 * k :] = self.w_hid[:, 2 * k :]
        b = np.concatenate(
            [self.b_in[: 2 * k] + self.b_hid[: 2 * k], self.b_in[2 * k :], self.b_hid[2 * k :]]
        ).astype(np.float32)
        w.setflags(write=False)
        b.setflags(write=False)
        return w, b

    def step(self, state: NDArray[np.float32], hidden: NDArray[np.float32]) -> NDArray[np.float32]:
        """The state after one more frame whose MLP hidden layer is `hidden`."""
        k = self.n_state
        w, b = self._fused
        g = np.concatenate((hidden, state)) @ w + b
        rz = 0.5 + 0.5 * np.tanh(0.5 * g[: 2 * k])  # sigmoid, without overflow
        n = np.tanh(g[2 * k : 3 * k] + rz[:k] * g[3 * k :])
        return np.asarray(n + rz[k:] * (state - n), dtype=np.float32)

    def logits(
        self, frame_logits: NDArray[np.float32], state: NDArray[np.float32]
    ) -> NDArray[np.float32]:
        """Shape scores of the frame whose step gave `state`."""
        return np.asarray(frame_logits + state @ self.w_out + self.b_out, dtype=np.float32)


@dataclass(frozen=True)
class LipSyncModel:
    """Standardisation + ReLU hidden layers + a linear layer over SHAPES (read-only arrays).

    weights[i], biases[i]: layer i; every layer but the last is followed by ReLU. temporal:
    the causal GRU over the last hidden layer (the streaming engine steps it frame by frame;
    `logits` alone is the per-frame MLP, used for per-hop scores such as the text DTW).
    """

    mean: NDArray[np.float32]
    scale: NDArray[np.float32]
    weights: tuple[NDArray[np.float32], ...]
    biases: tuple[NDArray[np.float32], ...]
    temporal: TemporalHead | None = None

    @property
    def w1(self) -> NDArray[np.float32]:
        return self.weights[0]

    @property
    def n_inputs(self) -> int:
        return int(self.weights[0].shape[0])

    @property
    def n_outputs(self) -> int:
        return int(self.weights[-1].shape[1])

    def logits(self, x: NDArray[np.float32]) -> NDArray[np.float32]:
        """Shape scores (unnormalised log-probabilities) for one vector or rows of vectors."""
        return self.hidden_logits(x)[1]

    def hidden_logits(
        self, x: NDArray[np.float32]
    ) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
        """(last hidden layer, logits) of one vector or rows of vectors: the temporal head's
        input and the per-frame MLP's scores."""
        h = (x - self.mean) * self.scale
        for w, b in zip(self.weights[:-1], self.biases[:-1], strict=True):
            h = np.maximum(h @ w + b, 0.0)
        h = np.asarray(h, dtype=np.float32)
        return h, np.asarray(h @ self.weights[-1] + self.biases[-1], dtype=np.float32)

    def save(self, path: str) -> None:
        arrays: dict[str, NDArray[np.generic]] = {
            "mean": self.mean,
            "scale": self.scale,
            "context": np.array(CONTEXT),
            "feature_version": np.array(FEATURE_VERSION),
            "model_format": np.array(MODEL_FORMAT if self.temporal is not None else 1),
        }
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            arrays[f"w{i + 1}"] = w.astype(np.float16)  # halves the file; logits change < 1e-3
            arrays[f"b{i + 1}"] = b
        if self.temporal is not None:
            t = self.temporal
            arrays.update(gru_wi=t.w_in.astype(np.float16), gru_wh=t.w_hid.astype(np.float16))
            arrays.update(gru_bi=t.b_in, gru_bh=t.b_hid, gru_bo=t.b_out)
            arrays["gru_wo"] = t.w_out.astype(np.float16)
        np.savez_compressed(path, **arrays)

    @classmethod
    def from_npz(cls, data: dict[str, NDArray[np.generic]]) -> LipSyncModel:
        if tuple(int(v) for v in data["context"]) != CONTEXT:
            raise ValueError("model was trained with another feature context")
        if int(data.get("feature_version", 1)) != FEATURE_VERSION:
            raise ValueError("model was trained with another feature version")
        fmt = int(data.get("model_format", 1))
        if fmt not in (1, MODEL_FORMAT) or (fmt == MODEL_FORMAT) != ("gru_wi" in data):
            raise ValueError(
                f"lip-sync model format {fmt} is not one this code reads (1: per-frame MLP; "
                f"{MODEL_FORMAT}: MLP + temporal GRU head, its arrays required)"
            )

        def ro(a: NDArray[np.generic]) -> NDArray[np.float32]:
            out = np.asarray(a, dtype=np.float32)
            out.setflags(write=False)
            return out

        n = sum(1 for k in data if k.startswith("w") and k[1:].isdigit())
        weights = tuple(ro(data[f"w{i + 1}"]) for i in range(n))
        biases = tuple(ro(data[f"b{i + 1}"]) for i in range(n))
        temporal = (
            TemporalHead(
                *(ro(data[k]) for k in ("gru_wi", "gru_wh", "gru_bi", "gru_bh", "gru_wo", "gru_bo"))
            )
            if fmt == MODEL_FORMAT
            else None
        )
        model = cls(ro(data["mean"]), ro(data["scale"]), weights, biases, temporal)
        if model.n_inputs != N_FEATURES or model.n_outputs != len(SHAPES):
            raise ValueError("model does not fit the features / shapes")
        if temporal is None:
            return model
        k, hidden = temporal.n_state, int(weights[-1].shape[0])
        if (
            temporal.w_in.shape != (hidden, 3 * k)
            or temporal.w_hid.shape != (k, 3 * k)
            or temporal.b_in.shape != (3 * k,)
            or temporal.b_hid.shape != (3 * k,)
            or temporal.w_out.shape != (k, len(SHAPES))
            or temporal.b_out.shape != (len(SHAPES),)
        ):
            raise ValueError("temporal head does not fit the model")
        return model


@dataclass(frozen=True)
class EnsembleHead:
    """The members' temporal heads side by side: a state is their states concatenated, the
    input their last hidden layers concatenated, the scores the mean of theirs."""

    heads: tuple[TemporalHead, ...]

    def initial_state(self) -> NDArray[np.float32]:
        return np.concatenate([h.initial_state() for h in self.heads])

    @cached_property
    def _bounds(self) -> tuple[tuple[slice, ...], tuple[slice, ...], tuple[slice, ...]]:
        """Each member's part of a state, of a hidden layer and of the frame logits."""

        def parts(sizes: list[int]) -> tuple[slice, ...]:
            ends = np.cumsum(sizes).tolist()
            return tuple(slice(e - n, e) for n, e in zip(sizes, ends, strict=True))

        return (
            parts([h.n_state for h in self.heads]),
            parts([int(h.w_in.shape[0]) for h in self.heads]),
            parts([len(SHAPES)] * len(self.heads)),
        )

    def step(self, state: NDArray[np.float32], hidden: NDArray[np.float32]) -> NDArray[np.float32]:
        st, hid, _ = self._bounds
        return np.concatenate(
            [h.step(state[s], hidden[x]) for h, s, x in zip(self.heads, st, hid, strict=True)]
        )

    def logits(
        self, frame_logits: NDArray[np.float32], state: NDArray[np.float32]
    ) -> NDArray[np.float32]:
        st, _, zs = self._bounds
        each = [
            h.logits(frame_logits[z], state[s]) for h, z, s in zip(self.heads, zs, st, strict=True)
        ]
        return np.asarray(np.mean(each, axis=0), dtype=np.float32)


@dataclass(frozen=True)
class LipSyncEnsemble:
    """Models of one recipe trained with different seeds, their shape scores averaged (the
    engine's classifier). `hidden_logits` gives the members' hidden layers and logits
    concatenated, which `temporal` (their heads side by side) steps and averages; `logits`
    is the mean of the members' per-frame scores."""

    members: tuple[LipSyncModel, ...]
    temporal: EnsembleHead | None = None

    @classmethod
    def of(cls, members: tuple[LipSyncModel, ...]) -> LipSyncEnsemble:
        heads = tuple(m.temporal for m in members if m.temporal is not None)
        return cls(members, EnsembleHead(heads) if len(heads) == len(members) else None)

    def hidden_logits(
        self, x: NDArray[np.float32]
    ) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
        each = [m.hidden_logits(x) for m in self.members]
        return np.concatenate([h for h, _ in each], axis=-1), np.concatenate(
            [z for _, z in each], axis=-1
        )

    def logits(self, x: NDArray[np.float32]) -> NDArray[np.float32]:
        """Mean shape scores of the members, for one vector or rows of vectors."""
        return np.asarray(np.mean([m.logits(x) for m in self.members], axis=0), np.float32)


def _read_model(name: str) -> LipSyncModel:
    ref = resources.files("avatarcast.speech") / "models" / name
    with resources.as_file(ref) as path, np.load(path) as data:
        return LipSyncModel.from_npz({k: data[k] for k in data.files})


@lru_cache(maxsize=1)
def load_model() -> LipSyncModel:
    """The shipped English model (the ensemble's first member), loaded on first use and
    shared (read-only).

    Also limits BLAS to one thread for the process: the model's products are small and run
    on each session's own worker thread; OpenBLAS's helper threads only spin on the core
    another session needs (measured on one core: 225 → 447 speaking fps).
    """
    threadpool_limits(limits=1, user_api="blas")
    return _read_model(MODEL_FILE)


@lru_cache(maxsize=1)
def load_ensemble() -> LipSyncEnsemble:
    """The classifier the engine uses: the shipped models of `MODEL_FILES` (one recipe, two
    training seeds), loaded on first use and shared (read-only)."""
    first = load_model()
    return LipSyncEnsemble.of((first, *(_read_model(name) for name in MODEL_FILES[1:])))


def hop_log_probs(an: HopAnalyzer, model: LipSyncModel | LipSyncEnsemble) -> NDArray[np.float32]:
    """Log shape probabilities of the 40 ms window starting at every hop (offline use)."""
    n_hops = an.n_hops
    if n_hops == 0:
        return np.zeros((0, len(SHAPES)), np.float32)
    x = window_features(an, np.arange(n_hops, dtype=np.intp))
    lo = model.logits(x).astype(np.float64)
    lo -= lo.max(axis=1, keepdims=True)
    lo -= np.log(np.exp(lo).sum(axis=1, keepdims=True))
    return lo.astype(np.float32)


def dtw_transfer(log_probs: NDArray[np.float32], ref_labels: NDArray[np.intp]) -> NDArray[np.intp]:
    """Warp a reference hop-label sequence onto the input hops (cost = -log p(label)).

    log_probs (n, 9): the classifier's log-probabilities per input hop; ref_labels (m,): the
    shape index at every hop of a template utterance of the same text. See `dtw_path`.
    """
    return dtw_path(-log_probs[:, ref_labels].astype(np.float64))


def dtw_path(cost: NDArray[np.float64]) -> NDArray[np.intp]:
    """Monotone alignment of input hops (rows) to template hops (columns) of a cost matrix.

    Steps (1,0), (1,1), (1,2), (1,3) (input hop i advances by one, the template by 0..3:
    local speed ratios 0..3), small penalties on stalls and skips, whole sequences matched
    end to end. Returns the template hop matched to each input hop.
    """
    n, m = cost.shape
    big = 1e18
    acc = np.full((n, m), big)
    back = np.zeros((n, m), np.int8)
    acc[0, :4] = np.cumsum(cost[0, :4])[: min(4, m)] if m else acc[0, :4]
    stay_penalty = 0.3
    skip_penalty = (0.0, 0.0, 0.3, 0.8)
    for i in range(1, n):
        prev = acc[i - 1]
        best = prev + stay_penalty
        arg = np.zeros(m, np.int8)
        for step in (1, 2, 3):
            cand = np.full(m, big)
            cand[step:] = prev[:-step] + skip_penalty[step]
            better = cand < best
            best = np.where(better, cand, best)
            arg[better] = step
        acc[i] = best + cost[i]
        back[i] = arg
    path = np.zeros(n, np.intp)
    j = m - 1
    for i in range(n - 1, -1, -1):
        path[i] = j
        if i > 0:
            j = max(0, j - int(back[i, j]))
    return path
