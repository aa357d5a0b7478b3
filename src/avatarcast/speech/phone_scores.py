"""Per-hop phone scores from pocketsphinx's US-English acoustic model: a human-trained view.

The lip-sync classifier (`lipsync_model`) learned mostly from synthetic voices; pocketsphinx's
acoustic model learned from many hours of people. Its `en-us` model (shipped in the
pocketsphinx wheel, already a dependency) is a phonetically tied mixture (PTM): for each of
its 42 base phones (silence and two noise models among them) one codebook of 128 diagonal
Gaussians per feature stream — 13 cepstra, their deltas, their double deltas. The best
Gaussian of each phone's codebook, summed over the three streams and taken relative to the
best phone, is a 42-number summary of "which phone does this sound like to a model of human
speech", computed on every other hop (~0.004 CPU-s per audio-s on one core, fed 160 ms at a
time).

Front end as the model's feat.params configures pocketsphinx's (`sphinx_fe`): pre-emphasis
0.97, a 25.6 ms Hamming window ending at the hop's end (causal, like `HopAnalyzer`), 512-point
FFT, 25 unit-area triangular mel filters 130–6800 Hz, natural log, DCT-II (orthonormal),
lifter 22, 13 cepstra. Then a causal cepstral mean over the speech hops so far (the
voice-activity flags of `HopAnalyzer`; plain mean over the first 3 s of speech, exponential
after; started at the model's cmninit 40, 3, -1), and sphinx's `1s_c_d_dd` features: deltas
c[t+2] - c[t-2], double deltas (c[t+3] - c[t-1]) - (c[t+1] - c[t-3]). So hop t's scores are
known once hop t+3 is analysed. Not reproduced (so the scores are not pocketsphinx's own):
its spectral noise removal, the mixture weights (a phone's best Gaussian stands for its
states), its live CMN update rule.

Determinism: the filterbank and DCT are `einsum`s (a fixed summation order per row), the
running mean is updated hop by hop in order, each scored hop's Gaussians are one vector ×
matrix product of its own, and a hop's scores read hops up to t+3 only; so how the audio is
chunked cannot change any score (BLAS products over several rows would: their rounding
depends on how many rows come at once).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

HOP = 160  # 10 ms at 16 kHz (`lipsync_floor.HOP`)
WLEN = 410  # 25.6 ms
NFFT = 512
N_FILT = 25
N_CEP = 13
LOW_HZ, HIGH_HZ = 130.0, 6800.0
LIFTER = 22
PRE_EMPHASIS = 0.97
CMN_INIT = (40.0, 3.0, -1.0)  # the model's -cmninit
CMN_HOPS = 300  # as `lipsync_floor.CMN_HOPS`
# The model's base phones in codebook order (its mdef's CI phone list; checked at load).
PHONES: tuple[str, ...] = (
    "+NSN+", "+SPN+", "AA", "AE", "AH", "AO", "AW", "AY", "B", "CH", "D", "DH", "EH", "ER",
    "EY", "F", "G", "HH", "IH", "IY", "JH", "K", "L", "M", "N", "NG", "OW", "OY", "P", "R",
    "S", "SH", "SIL", "T", "TH", "UH", "UW", "V", "W", "Y", "Z", "ZH",
)  # fmt: skip
N_PHONES = len(PHONES)
DELAY_HOPS = 3  # hop t's double delta needs hop t + 3
STEP = 2  # scores on every other hop (even hop indices)
VAR_FLOOR = 1e-4  # pocketsphinx's -varfloor
_OFFSETS = np.arange(-DELAY_HOPS, DELAY_HOPS + 1)  # the hops a hop's deltas read


def _model_dir() -> Path:
    import pocketsphinx

    return Path(pocketsphinx.__file__).parent / "model" / "en-us" / "en-us"


def _read_s3_gaussians(path: Path) -> NDArray[np.float32]:
    """A sphinx-3 binary means/variances file → (codebooks, streams, densities, 13)."""
    raw = path.read_bytes()
    off = raw.index(b"endhdr\n") + len(b"endhdr\n")
    if struct.unpack_from("<I", raw, off)[0] != 0x11223344:
        raise ValueError(f"{path}: not a little-endian sphinx-3 parameter file")
    n_cb, n_streams, n_dens = struct.unpack_from("<iii", raw, off + 4)
    veclen = struct.unpack_from(f"<{n_streams}i", raw, off + 16)
    if set(veclen) != {N_CEP}:
        raise ValueError(f"{path}: streams of {veclen}, expected {N_CEP} each")
    off += 16 + 4 * n_streams
    (n_float,) = struct.unpack_from("<i", raw, off)
    data = np.frombuffer(raw, "<f4", count=n_float, offset=off + 4)
    return data.reshape(n_cb, n_streams, n_dens, N_CEP)


@dataclass(frozen=True)
class PhoneModel:
    """The Gaussians as products: for stream s, [x, x²] @ weights[s] + consts[s] → (codebook ×
    density) log-likelihoods. Plus the front end's mel filters and DCT. Read-only arrays."""

    weights: tuple[NDArray[np.float32], ...]  # per stream (2·13, codebooks·densities)
    consts: NDArray[np.float32]  # (streams, codebooks·densities)
    n_dens: int
    mel: NDArray[np.float64]  # (NFFT/2 + 1, N_FILT)
    dct: NDArray[np.float64]  # (N_FILT, N_CEP), lifter included
    window: NDArray[np.float64]


@lru_cache(maxsize=1)
def load_phone_model() -> PhoneModel:
    """pocketsphinx's en-us PTM model, loaded on first use and shared (read-only)."""
    d = _model_dir()
    mean = _read_s3_gaussians(d / "means").astype(np.float64)
    var = np.maximum(_read_s3_gaussians(d / "variances").astype(np.float64), VAR_FLOOR)
    n_cb, n_streams, n_dens, _ = mean.shape
    if n_cb != N_PHONES or _ci_phones(d / "mdef") != PHONES:
        raise ValueError(f"{d}: not the en-us PTM model these scores are defined on")
    inv = 1.0 / var
    weights, consts = [], []
    for s in range(n_streams):
        w = np.concatenate([mean[:, s] * inv[:, s], -0.5 * inv[:, s]], axis=-1)
        weights.append(np.ascontiguousarray(w.reshape(-1, 2 * N_CEP).T, np.float32))
        c = -0.5 * (np.log(2.0 * np.pi * var[:, s]) + mean[:, s] ** 2 * inv[:, s]).sum(-1)
        consts.append(c.reshape(-1).astype(np.float32))
    mel = _mel_filters()
    j = np.arange(N_FILT)
    dct = np.cos(np.pi * np.arange(N_CEP)[:, None] * (j[None, :] + 0.5) / N_FILT)
    dct *= np.sqrt(2.0 / N_FILT)
    dct[0] = np.sqrt(1.0 / N_FILT)
    lift = 1.0 + LIFTER / 2.0 * np.sin(np.pi * np.arange(N_CEP) / LIFTER)
    lift[0] = 1.0
    model = PhoneModel(
        tuple(weights), np.stack(consts), n_dens, mel, (dct * lift[:, None]).T, np.hamming(WLEN)
    )
    arrays: list[NDArray[np.floating]] = [*model.weights, model.consts]
    for a in (*arrays, model.mel, model.dct, model.window):
        a.setflags(write=False)
    return model


def _ci_phones(mdef: Path) -> tuple[str, ...]:
    """The CI phone names of a binary model definition (after its format description)."""
    raw = mdef.read_bytes()
    start = raw.index(b"END FILE FORMAT DESCRIPTION") + len(b"END FILE FORMAT DESCRIPTION")
    names = raw[start:].split(b"\0")
    # The description ends, then counts (int32s), then the NUL-terminated names.
    found: list[str] = []
    for chunk in names[1:]:
        name = chunk.decode("ascii", "replace")
        if len(found) == N_PHONES:
            break
        if name and all(ch.isupper() or ch == "+" for ch in name):
            found.append(name)
        elif found:
            break
    return tuple(found)


def _mel_filters() -> NDArray[np.float64]:
    lo_mel, hi_mel = (2595.0 * np.log10(1.0 + hz / 700.0) for hz in (LOW_HZ, HIGH_HZ))
    edges = 700.0 * (10 ** (np.linspace(lo_mel, hi_mel, N_FILT + 2) / 2595.0) - 1.0)
    freqs = np.arange(NFFT // 2 + 1) * 16000.0 / NFFT
    fb = np.zeros((freqs.size, N_FILT))
    for i in range(N_FILT):
        lo, mid, hi = edges[i : i + 3]
        rise = (freqs - lo) / (mid - lo)
        fall = (hi - freqs) / (hi - mid)
        fb[:, i] = np.clip(np.minimum(rise, fall), 0.0, None) * 2.0 / (hi - lo)
    return fb


class PhoneScores:
    """Streaming phone scores, fed with `HopAnalyzer`'s hops and their speech flags.

    `add` returns the scores that became known: one row (N_PHONES,) float32 per even hop t
    with t + DELAY_HOPS < hops fed, in order (row r belongs to hop STEP·r). Values are
    log-likelihoods (nats) relative to the hop's best phone (≤ 0).
    """

    def __init__(self) -> None:
        self._m = load_phone_model()
        self._prev = 0.0  # the last sample fed (pre-emphasis)
        self._tail = np.zeros(WLEN - HOP)  # pre-emphasised samples before the next hop
        self._mean = np.array([*CMN_INIT, *([0.0] * (N_CEP - len(CMN_INIT)))])
        self._count = 0
        self._cep = np.zeros((0, N_CEP))  # mean-normalised cepstra from hop self._first on
        self._first = 0
        self._n_hops = 0
        self._next = 0  # the next hop to score

    def add(self, hops: NDArray[np.int16], speech: NDArray[np.bool_]) -> NDArray[np.float32]:
        """Whole hops (k·HOP samples) and their k voice-activity flags → new score rows."""
        k = int(speech.size)
        if k:
            self._add_cepstra(hops, speech)
        ready = np.arange(self._next, self._n_hops - DELAY_HOPS, STEP)
        if ready.size == 0:
            return np.zeros((0, N_PHONES), np.float32)
        self._next = int(ready[-1]) + STEP
        # Cepstra of hops t-3 .. t+3 of every ready hop t (hops before the start of the audio
        # repeat its first hop, as sphinx pads).
        near = self._cep[np.maximum(ready[:, None] + _OFFSETS[None, :], 0) - self._first]
        c = near[:, 3]
        d = near[:, 5] - near[:, 1]
        dd = (near[:, 6] - near[:, 2]) - (near[:, 4] - near[:, 0])
        m = self._m
        zs = [np.concatenate([v, v * v], axis=1).astype(np.float32) for v in (c, d, dd)]
        ll = np.empty((ready.size, len(zs), m.consts.shape[1]), np.float32)
        for r in range(ready.size):  # one vector × matrix product per hop and stream: the
            for s, z in enumerate(zs):  # result cannot depend on how many hops come at once
                np.matmul(z[r], m.weights[s], out=ll[r, s])
        ll += m.consts
        best = ll.reshape(ready.size, len(zs), N_PHONES, m.n_dens).max(axis=3)
        total = best[:, 0] + best[:, 1] + best[:, 2]
        total -= total.max(axis=1, keepdims=True)
        # Keep the cepstra the next hop to score needs (from 3 hops before it).
        drop = max(0, min(self._next - 3, self._n_hops) - self._first)
        self._cep = self._cep[drop:]
        self._first += drop
        return total

    def _add_cepstra(self, hops: NDArray[np.int16], speech: NDArray[np.bool_]) -> None:
        k = int(speech.size)
        x = hops[: k * HOP].astype(np.float64)
        pre = x - PRE_EMPHASIS * np.concatenate(([self._prev], x[:-1]))
        self._prev = float(x[-1])
        buf = np.concatenate([self._tail, pre])
        self._tail = buf[-(WLEN - HOP) :].copy()
        idx = np.arange(k)[:, None] * HOP + np.arange(WLEN)[None, :]
        spec = np.fft.rfft(buf[idx] * self._m.window, NFFT, axis=1)
        power = spec.real**2 + spec.imag**2
        # einsum, not a BLAS product: its sums run in the same order however many hops come
        # at once, so chunking cannot change a cepstrum.
        logmel = np.log(np.maximum(np.einsum("ij,jk->ik", power, self._m.mel), 1e-4))
        cep = np.einsum("ij,jk->ik", logmel, self._m.dct)
        for i in range(k):  # causal running mean over the speech hops, in order
            if speech[i]:
                self._count = min(self._count + 1, CMN_HOPS)
                self._mean += (cep[i] - self._mean) / self._count
            cep[i] -= self._mean
        self._cep = np.concatenate([self._cep, cep])
        self._n_hops += k
