"""A small learned frame classifier: stacked log band energies → one of the nine mouth shapes.

Features (per 10 ms hop, computed by `lipsync_floor.HopAnalyzer` from the FFT it already
takes): `N_MEL` log energies in mel-spaced rectangular bands, the hop's level and the running
noise floor. For video frame n (hops 4n..4n+3 at 25 fps) the classifier sees `CONTEXT` hop
positions from 160 ms before the frame to 160 ms after it (inside the 200 ms lookahead),
normalised by the loudest hop of that window (gain invariance), then a one-hidden-layer MLP
(numpy, ~60 k multiply-adds per frame) gives the nine shape probabilities.

The weights (`models/lipsync_en.npz`, trained by tools/train_lipsync_model.py on generated
espeak-ng speech with augmentation, never on the benchmark's TEST sentences) are loaded once,
lazily, read-only, and shared by all engines.

Determinism: every frame is classified on its own (one vector × matrix product), from hop
features that are computed row by row, so chunking cannot change the result.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray
from threadpoolctl import threadpool_limits

from avatarcast.speech.visemes import SHAPES, Shape

if TYPE_CHECKING:
    from avatarcast.speech.lipsync_floor import HopAnalyzer

N_MEL = 20
# Hop offsets relative to the frame's first hop (frame = offsets 0..3): 160 ms either side,
# every other hop outside the frame.
CONTEXT: tuple[int, ...] = (*range(-16, 0, 2), 0, 1, 2, 3, *range(5, 20, 2))
MAX_FUTURE_HOPS = max(CONTEXT) + 1  # hops after the frame's first hop the window needs
PER_HOP = N_MEL + 2
N_FEATURES = len(CONTEXT) * PER_HOP
SILENCE_DB = -30.0  # band level of digital silence (10 log10 of the epsilon)
_FLOOR_REL_DB = -80.0  # relative levels are clipped here (×0.1 → -8)
MODEL_FILE = "lipsync_en.npz"


def mel_band_edges(n_fft: int = 320, sample_rate: int = 16000) -> NDArray[np.intp]:
    """FFT bin edges of N_MEL mel-spaced rectangular bands from 80 Hz to 7800 Hz."""

    def mel(f: float) -> float:
        return 2595.0 * float(np.log10(1.0 + f / 700.0))

    m = np.linspace(mel(80.0), mel(7800.0), N_MEL + 1)
    hz = 700.0 * (10.0 ** (m / 2595.0) - 1.0)
    bins = np.round(hz / (sample_rate / n_fft)).astype(np.intp)
    for i in range(1, bins.size):  # at least one bin per band
        bins[i] = max(bins[i], bins[i - 1] + 1)
    return bins


def frame_features(
    mel_db: NDArray[np.float32],
    level_db: NDArray[np.float64],
    noise_db: NDArray[np.float64],
    h0: int,
    n_known: int,
    ended: bool,
) -> NDArray[np.float32]:
    """Feature vector of the frame whose first hop is h0.

    mel_db (hops, N_MEL), level_db and noise_db (hops,) of the hops analysed so far (n_known
    of them). Hops before 0, and after the end of the audio once it `ended`, are silence;
    hops not yet analysed while streaming (lookahead shorter than the window) repeat the
    newest analysed hop.
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
    ref = float(np.max(lev))
    rel_mel = np.maximum(mel - ref, _FLOOR_REL_DB) * 0.1
    rel_lev = np.maximum(lev - ref, _FLOOR_REL_DB) * 0.1
    snr = np.clip(lev - noise, 0.0, 60.0) * 0.1
    feats = np.concatenate([rel_mel, rel_lev[:, None], snr[:, None]], axis=1)
    return feats.astype(np.float32).reshape(-1)


def utterance_features(an: HopAnalyzer) -> NDArray[np.float32]:
    """Features of every 25 fps frame of a finished analysis (training / batch use)."""
    n_hops = an.n_hops
    mel = np.asarray(an.mel_db, dtype=np.float32).reshape(n_hops, N_MEL)
    lev = np.asarray(an.level_db, dtype=np.float64)
    noise = np.asarray(an.noise_db, dtype=np.float64)
    n_frames = -(-n_hops // 4)
    return (
        np.stack([frame_features(mel, lev, noise, 4 * f, n_hops, True) for f in range(n_frames)])
        if n_frames
        else np.zeros((0, N_FEATURES), np.float32)
    )


@dataclass(frozen=True)
class LipSyncModel:
    """Standardisation + one hidden ReLU layer + softmax over SHAPES (read-only arrays)."""

    mean: NDArray[np.float32]
    scale: NDArray[np.float32]
    w1: NDArray[np.float32]
    b1: NDArray[np.float32]
    w2: NDArray[np.float32]
    b2: NDArray[np.float32]

    def logits(self, x: NDArray[np.float32]) -> NDArray[np.float32]:
        """Shape scores (unnormalised log-probabilities) for one vector or rows of vectors."""
        z = (x - self.mean) * self.scale
        h = np.maximum(z @ self.w1 + self.b1, 0.0)
        return np.asarray(h @ self.w2 + self.b2, dtype=np.float32)

    def shape(self, x: NDArray[np.float32]) -> Shape:
        return SHAPES[int(np.argmax(self.logits(x)))]

    def save(self, path: str) -> None:
        np.savez_compressed(
            path,
            mean=self.mean,
            scale=self.scale,
            w1=self.w1.astype(np.float16),
            b1=self.b1,
            w2=self.w2,
            b2=self.b2,
            context=np.array(CONTEXT),
        )

    @classmethod
    def from_npz(cls, data: dict[str, NDArray[np.generic]]) -> LipSyncModel:
        if tuple(int(v) for v in data["context"]) != CONTEXT:
            raise ValueError("model was trained with another feature context")
        arrays = {
            k: np.asarray(data[k], dtype=np.float32)
            for k in ("mean", "scale", "w1", "b1", "w2", "b2")
        }
        for a in arrays.values():
            a.setflags(write=False)
        return cls(**arrays)


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
    mel = np.asarray(an.mel_db, dtype=np.float32).reshape(n_hops, N_MEL)
    lev = np.asarray(an.level_db, dtype=np.float64)
    noise = np.asarray(an.noise_db, dtype=np.float64)
    x = np.stack([frame_features(mel, lev, noise, h, n_hops, True) for h in range(n_hops)])
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
