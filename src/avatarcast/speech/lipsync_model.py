"""A small learned frame classifier: stacked log band energies → one of the nine mouth shapes.

Features (per 10 ms hop, computed by `lipsync_floor.HopAnalyzer` from the FFT it already
takes): `N_MEL` (from `lipsync_floor`) log energies in mel-spaced rectangular bands, the hop's
level and the running noise floor. For video frame n (hops 4n..4n+3 at 25 fps) the classifier
sees `CONTEXT` hop positions from 160 ms before the frame to 160 ms after it (inside the
200 ms lookahead), normalised by the loudest hop of that window (gain invariance), plus the
running mean spectrum of the speech so far (channel normalisation); then an MLP (numpy, two
ReLU layers, ~108 k multiply-adds per frame) gives the nine shape scores.

The weights (`models/lipsync_en.npz`, made by tools/lipsync_data.py + tools/train_lipsync_net.py
from espeak-ng, flite, festival and piper voices and a few human clips, never from the
benchmark's TEST sentences or its evaluation speakers) are loaded once, lazily, read-only, and
shared by all engines.

Determinism: every frame is classified on its own (one vector × matrix product), from hop
features that are computed row by row, so chunking cannot change the result.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import numpy as np
from numpy.typing import NDArray
from threadpoolctl import threadpool_limits

from avatarcast.speech.lipsync_floor import N_MEL, HopAnalyzer
from avatarcast.speech.visemes import SHAPES, Shape

# Hop offsets relative to the frame's first hop (frame = offsets 0..3): 160 ms either side,
# every other hop outside the frame.
CONTEXT: tuple[int, ...] = (*range(-16, 0, 2), 0, 1, 2, 3, *range(5, 20, 2))
MAX_FUTURE_HOPS = max(CONTEXT) + 1  # hops after the frame's first hop the window needs
PER_HOP = N_MEL + 2
# Plus, once per frame, the running spectral mean (`HopAnalyzer.cmn_db`) at the frame's last
# hop on the same relative scale: the first layer is linear, so this lets the network see
# every hop against the channel's average spectrum (cepstral-mean-like normalisation).
N_FEATURES = len(CONTEXT) * PER_HOP + N_MEL
SILENCE_DB = -30.0  # band level of digital silence (10 log10 of the epsilon)
_FLOOR_REL_DB = -80.0  # relative levels are clipped here (×0.1 → -8)
MODEL_FILE = "lipsync_en.npz"
FEATURE_VERSION = 2


def frame_features(
    mel_db: NDArray[np.float32],
    level_db: NDArray[np.float64],
    noise_db: NDArray[np.float64],
    cmn_db: NDArray[np.float32] | None,
    h0: int,
    n_known: int,
    ended: bool,
) -> NDArray[np.float32]:
    """Feature vector of the frame whose first hop is h0.

    mel_db (hops, N_MEL), level_db and noise_db (hops,) of the hops analysed so far (n_known
    of them); cmn_db: `HopAnalyzer.cmn_db` at hop min(h0 + 3, n_known - 1) (None if no
    hop). Hops before 0, and after the end of the audio once it `ended`, are silence; hops
    not yet analysed while streaming (lookahead shorter than the window) repeat the newest
    analysed hop.
    """
    idx = np.array([h0 + k for k in CONTEXT], dtype=np.intp)
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
    rel_mel = np.maximum(mel - ref, _FLOOR_REL_DB) * 0.1
    rel_lev = np.maximum(lev - ref, _FLOOR_REL_DB) * 0.1
    snr = np.clip(lev - noise, 0.0, 60.0) * 0.1
    rel_cmn = np.maximum(cmn - ref, _FLOOR_REL_DB) * 0.1
    feats = np.concatenate([rel_mel, rel_lev[:, None], snr[:, None]], axis=1)
    return np.concatenate([feats.reshape(-1), rel_cmn]).astype(np.float32)


def _arrays(an: HopAnalyzer) -> tuple[NDArray[np.float32], ...]:
    n_hops = an.n_hops
    return (
        np.asarray(an.mel_db, dtype=np.float32).reshape(n_hops, N_MEL),
        np.asarray(an.level_db, dtype=np.float64),
        np.asarray(an.noise_db, dtype=np.float64),
        np.asarray(an.cmn_db, dtype=np.float32).reshape(n_hops, N_MEL),
    )


def window_features(an: HopAnalyzer, starts: NDArray[np.intp]) -> NDArray[np.float32]:
    """`frame_features` of finished audio for every window start hop in `starts` (batch)."""
    n_hops = an.n_hops
    if starts.size == 0 or n_hops == 0:
        return np.zeros((starts.size, N_FEATURES), np.float32)
    mel, lev, noise, cmn_all = _arrays(an)
    idx = starts[:, None] + np.array(CONTEXT, np.intp)[None, :]
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
    return np.concatenate([feats.reshape(starts.size, -1), rel_cmn], axis=1).astype(np.float32)


def utterance_features(an: HopAnalyzer) -> NDArray[np.float32]:
    """Features of every 25 fps frame of a finished analysis (training / batch use)."""
    n_frames = -(-an.n_hops // 4)
    return window_features(an, np.arange(n_frames, dtype=np.intp) * 4)


@dataclass(frozen=True)
class LipSyncModel:
    """Standardisation + ReLU hidden layers + a linear layer over SHAPES (read-only arrays).

    weights[i], biases[i]: layer i; every layer but the last is followed by ReLU.
    """

    mean: NDArray[np.float32]
    scale: NDArray[np.float32]
    weights: tuple[NDArray[np.float32], ...]
    biases: tuple[NDArray[np.float32], ...]

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
        h = (x - self.mean) * self.scale
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            h = h @ w + b
            if i < last:
                h = np.maximum(h, 0.0)
        return np.asarray(h, dtype=np.float32)

    def shape(self, x: NDArray[np.float32]) -> Shape:
        return SHAPES[int(np.argmax(self.logits(x)))]

    def save(self, path: str) -> None:
        arrays: dict[str, NDArray[np.generic]] = {
            "mean": self.mean,
            "scale": self.scale,
            "context": np.array(CONTEXT),
            "feature_version": np.array(FEATURE_VERSION),
        }
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            arrays[f"w{i + 1}"] = w.astype(np.float16)  # halves the file; logits change < 1e-3
            arrays[f"b{i + 1}"] = b
        np.savez_compressed(path, **arrays)

    @classmethod
    def from_npz(cls, data: dict[str, NDArray[np.generic]]) -> LipSyncModel:
        if tuple(int(v) for v in data["context"]) != CONTEXT:
            raise ValueError("model was trained with another feature context")
        if int(data.get("feature_version", 1)) != FEATURE_VERSION:
            raise ValueError("model was trained with another feature version")

        def ro(a: NDArray[np.generic]) -> NDArray[np.float32]:
            out = np.asarray(a, dtype=np.float32)
            out.setflags(write=False)
            return out

        n = sum(1 for k in data if k.startswith("w") and k[1:].isdigit())
        weights = tuple(ro(data[f"w{i + 1}"]) for i in range(n))
        biases = tuple(ro(data[f"b{i + 1}"]) for i in range(n))
        model = cls(ro(data["mean"]), ro(data["scale"]), weights, biases)
        if model.n_inputs != N_FEATURES or model.n_outputs != len(SHAPES):
            raise ValueError("model does not fit the features / shapes")
        return model


@lru_cache(maxsize=1)
def load_model() -> LipSyncModel:
    """The shipped English model, loaded on first use and shared (read-only).

    Also limits BLAS to one thread for the process: the model's products are small and run
    on each session's own worker thread; OpenBLAS's helper threads only spin on the core
    another session needs (measured on one core: 225 → 447 speaking fps).
    """
    threadpool_limits(limits=1, user_api="blas")
    ref = resources.files("avatarcast.speech") / "models" / MODEL_FILE
    with resources.as_file(ref) as path, np.load(path) as data:
        return LipSyncModel.from_npz({k: data[k] for k in data.files})


def hop_log_probs(an: HopAnalyzer, model: LipSyncModel) -> NDArray[np.float32]:
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
