"""The language-independent part of the audio lip-sync: per-10 ms analysis and shape rules.

Everything here uses only loudness and the coarse spectrum, so it moves the mouth plausibly
for any language: voice activity (webrtcvad plus an adaptive noise floor) decides speech vs
rest, short silent gaps inside speech are closures, strong high-frequency frication is a
consonant, and band-energy ratios (a crude stand-in for the first two formants) separate
open, front, rounded and neutral vowels.

Determinism: each 10 ms hop is analysed from its own samples and the running state of the
hops before it, row by row (no BLAS), so the results do not depend on how the audio was split
into pushes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import webrtcvad
from numpy.typing import NDArray

from avatarcast.speech.phone_scores import N_PHONES, PhoneScores
from avatarcast.speech.visemes import Shape

HOP = 160  # 10 ms at 16 kHz: the analysis step, and pocketsphinx's frame step
WIN = 320  # 20 ms window ending at the hop's end (causal)
_N_FFT = 320  # 50 Hz bins
N_MEL = 20  # mel bands of the learned classifier's features (`lipsync_model`)
# Band edges in Hz: F0/nasal murmur, low F1, high F1, back F2, front F2/F3, F4, frication.
BAND_EDGES_HZ = (80, 350, 700, 1100, 1700, 2800, 4500, 8000)
N_BANDS = len(BAND_EDGES_HZ) - 1
_BIN_HZ = 16000 / _N_FFT
_EDGE_BINS = np.array([round(f / _BIN_HZ) for f in BAND_EDGES_HZ], dtype=np.intp)
_WINDOW = np.hanning(WIN + 2)[1:-1].astype(np.float32)
_EPS = 1e-3
CMN_HOPS = 300  # spectral mean over the last ~3 s of speech (exponential after that)


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


_MEL_BINS = mel_band_edges(_N_FFT, 16000)


@dataclass(frozen=True, slots=True)
class FloorParams:
    """Thresholds of the energy/spectrum rules (tuned on the TRAINING sentences only)."""

    vad_mode: int = 2  # webrtcvad aggressiveness 0..3
    noise_init_db: float = 40.0  # assumed noise floor before any audio (int16 dB, rms 100)
    noise_rise_db_per_hop: float = 0.03  # min-tracker creep: 3 dB/s
    speech_margin_db: float = 9.0  # a hop is speech when VAD says so and it is this far above
    abs_min_db: float = 30.0  # ... and above this absolute level (rms ≈ 32)
    peak_decay_db_per_hop: float = 0.01  # loudness reference decays 1 dB/s
    min_speech_frames: int = 2  # shorter speech runs are clicks → rest
    max_gap_frames: int = 3  # shorter silent gaps inside speech are closures, not rest
    fric_db: float = 2.0  # frication band above the voiced bands by this much → consonant
    dip_db: float = 14.0  # this far below the local peak and quiet → closure/nasal (A)
    open_f1_db: float = 3.0  # high-F1 band above the low-F1 band → wide open (D)
    front_f2_db: float = -8.0  # front-F2 band vs low bands above this with low F1 → B (IY)
    round_f2_db: float = -16.0  # F2 bands this far under the F1 bands → rounded (F)
    back_f2_db: float = -11.0  # ... under this (but not rounded) → E


DEFAULT_FLOOR = FloorParams()


def _box_bands(csum: NDArray[np.float64], edges: NDArray[np.intp]) -> NDArray[np.float64]:
    widths = (edges[1:] - edges[:-1]).astype(np.float64)
    return np.asarray((csum[:, edges[1:]] - csum[:, edges[:-1]]) / widths / WIN)


def band_spectra(
    frames: NDArray[np.float32],
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Mean power per floor band (rows, N_BANDS) and per mel band (rows, N_MEL) of each row
    of windowed samples (rows, WIN)."""
    spec = np.fft.rfft(frames * _WINDOW, n=_N_FFT, axis=1)
    power = spec.real**2 + spec.imag**2
    # Cumulative sums along each row keep the result row-independent (unlike a matmul).
    csum = np.concatenate([np.zeros((power.shape[0], 1)), np.cumsum(power, axis=1)], axis=1)
    return _box_bands(csum, _EDGE_BINS), _box_bands(csum, _MEL_BINS)


def band_powers(frames: NDArray[np.float32]) -> NDArray[np.float64]:
    """Mean power per band for each row of windowed samples (rows, WIN) → (rows, N_BANDS)."""
    return band_spectra(frames)[0]


class _Rows:
    """A growing array of per-hop values (rows of `width`, or scalars when width is 0):
    appended in blocks, read as a view of the rows so far (no per-read copy)."""

    def __init__(self, dtype: type, width: int = 0) -> None:
        self._shape: tuple[int, ...] = (width,) if width else ()
        self._data: NDArray[Any] = np.zeros((256, *self._shape), dtype)
        self.n = 0

    def extend(self, n: int) -> NDArray[Any]:
        """Room for `n` more rows, returned (to be filled) and counted."""
        if self.n + n > self._data.shape[0]:
            bigger = np.zeros((max(2 * self._data.shape[0], self.n + n), *self._shape),
                              self._data.dtype)  # fmt: skip
            bigger[: self.n] = self._data[: self.n]
            self._data = bigger
        self.n += n
        return self._data[self.n - n : self.n]

    @property
    def view(self) -> NDArray[Any]:
        return self._data[: self.n]


class _RowsView:
    """`analyzer.NAME`: a view of the rows so far of its `_Rows` attribute `_NAME`."""

    def __set_name__(self, owner: type, name: str) -> None:
        self._attr = "_" + name

    def __get__(self, obj: object, objtype: type | None = None) -> NDArray[Any]:
        rows: _Rows = getattr(obj, self._attr)
        return rows.view


class HopAnalyzer:
    """Streaming per-hop analysis: level, band levels, voice activity, noise floor, peak.

    Per-hop results are arrays (one row per hop analysed so far, views that grow with each
    `add`): `level_db`, `noise_db`, `peak_db` (float64), `speech` (bool), `bands_db`
    (N_BANDS), `mel_db` and `cmn_db` (N_MEL, float32).
    """

    def __init__(self, params: FloorParams = DEFAULT_FLOOR, phones: bool = False) -> None:
        """phones: also compute `phone_scores` (pocketsphinx's acoustic model, for the
        learned classifier's features; ~0.004 CPU-s per audio-s)."""
        self.params = params
        self._vad = webrtcvad.Vad(params.vad_mode)
        self._tail = np.zeros(WIN - HOP, np.float32)  # the window's first half, from before
        self._rest = np.zeros(0, np.int16)  # samples of an incomplete hop
        self._noise = params.noise_init_db
        self._peak = params.noise_init_db + 30.0
        self._level_db = _Rows(np.float64)
        self._bands_db = _Rows(np.float32, N_BANDS)
        self._mel_db = _Rows(np.float32, N_MEL)  # lipsync_model features
        # Running mean of mel_db over the speech hops so far (the channel's spectral shape:
        # microphone, room, voice), so the classifier can see each hop against it.
        self._cmn_db = _Rows(np.float32, N_MEL)
        self._cmn = np.zeros(N_MEL, np.float64)
        self._cmn_count = 0
        self._speech = _Rows(np.bool_)
        self._noise_db = _Rows(np.float64)
        self._peak_db = _Rows(np.float64)
        self._phones = PhoneScores() if phones else None
        self._phone_scores = _Rows(np.float32, N_PHONES)

    @property
    def n_hops(self) -> int:
        return self._level_db.n

    @property
    def has_phone_scores(self) -> bool:
        return self._phones is not None

    level_db = _RowsView()
    bands_db = _RowsView()
    mel_db = _RowsView()
    cmn_db = _RowsView()
    speech = _RowsView()
    noise_db = _RowsView()
    peak_db = _RowsView()
    phone_scores = _RowsView()  # rows of `phone_scores.PhoneScores` (even hops), if enabled

    def add(self, pcm: NDArray[np.int16]) -> None:
        """Analyse every hop completed by `pcm` (any length; the remainder waits)."""
        data = np.concatenate([self._rest, pcm.astype(np.int16, copy=False)])
        n = data.size // HOP
        self._rest = data[n * HOP :].copy()
        if n == 0:
            return
        body = data[: n * HOP]
        x = np.concatenate([self._tail, body.astype(np.float32)])
        self._tail = x[-(WIN - HOP) :].copy()
        idx = np.arange(n)[:, None] * HOP + np.arange(WIN)[None, :]
        frames = x[idx]
        bands, mel = band_spectra(frames)
        total = np.mean(frames[:, WIN - HOP :] ** 2, axis=1, dtype=np.float64)
        level = 10.0 * np.log10(total + _EPS)
        self._level_db.extend(n)[:] = level
        self._bands_db.extend(n)[:] = 10.0 * np.log10(bands + _EPS)
        mel_db = self._mel_db.extend(n)
        mel_db[:] = 10.0 * np.log10(mel + _EPS)
        mel64 = mel_db.astype(np.float64)
        speech = self._speech.extend(n)
        noise = self._noise_db.extend(n)
        peak = self._peak_db.extend(n)
        cmn_rows = self._cmn_db.extend(n)
        p = self.params
        raw = body.tobytes()
        for i, e in enumerate(level.tolist()):
            # Minimum tracker: follows dips at once, creeps up slowly through speech.
            self._noise = min(e, self._noise + p.noise_rise_db_per_hop)
            self._peak = max(e, self._peak - p.peak_decay_db_per_hop, self._noise + 20.0)
            vad = self._vad.is_speech(raw[i * 2 * HOP : (i + 1) * 2 * HOP], 16000)
            is_speech = bool(vad) and e > self._noise + p.speech_margin_db and e > p.abs_min_db
            speech[i] = is_speech
            # Plain average over the first CMN_HOPS speech hops, then exponential; before
            # any speech, the newest hop.
            if is_speech or self._cmn_count == 0:
                self._cmn_count = min(self._cmn_count + 1, CMN_HOPS) if is_speech else 0
                k = max(1, self._cmn_count)
                self._cmn += (mel64[i] - self._cmn) / k
            cmn_rows[i] = self._cmn
            noise[i] = self._noise
            peak[i] = self._peak
        if self._phones is not None:
            rows = self._phones.add(body, speech)
            self._phone_scores.extend(rows.shape[0])[:] = rows


def floor_shape(
    bands_db: NDArray[np.float32], level_db: float, local_peak_db: float, p: FloorParams
) -> Shape:
    """Mouth shape of a speech frame from its mean band levels (language-independent rules)."""
    b = bands_db.astype(np.float64)
    murmur, f1_lo, f1_hi, f2_back, f2_front, _f4, fric = (float(v) for v in b)
    voiced = max(murmur, f1_lo, f1_hi)
    if fric > voiced + p.fric_db:
        return Shape.B  # s, sh, z, t-burst... (teeth together)
    if level_db < local_peak_db - p.dip_db and murmur > f1_hi + 6.0:
        return Shape.A  # nasal murmur / voiced closure: lips likely closed
    f1 = max(f1_lo, f1_hi)
    f2 = max(f2_back, f2_front)
    if f1_hi > f1_lo + p.open_f1_db and f1_hi > murmur:
        return Shape.D
    if f2_front > f1 + p.front_f2_db and f1_lo > f1_hi + 3.0:
        return Shape.B  # close front vowel (IY): spread lips, teeth nearly together
    if f2 < f1 + p.round_f2_db:
        return Shape.F
    if f2 < f1 + p.back_f2_db:
        return Shape.E
    return Shape.C
