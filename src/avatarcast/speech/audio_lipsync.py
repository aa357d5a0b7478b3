"""Audio-driven streaming lip-sync: PCM in, one committed `MouthPose` per video frame out.

Frame n (audio [n/fps, (n+1)/fps)) is decided once the audio up to (n+1)/fps + lookahead has
been pushed, and never revised: the renderer can show it at once, `lookahead` behind the
audio. The decision for frame n is made with exactly that much audio whatever the push sizes
were, so the track does not depend on how the audio was chunked. (The hop analysis of a push
runs at once, ahead of the frames it commits, ~30 % cheaper than frame by frame at 160 ms
pushes; every per-hop value depends on earlier audio only, and decisions read the hops up to
their frame's deadline.)

Per frame:
1. Voice-activity gate (`lipsync_floor`): webrtcvad with an adaptive noise floor decides
   speech vs rest (X); short silent gaps inside speech end in a closure (A); a burst out of
   silence closes the lips just before it.
2. Shape of a speech frame, by `method`:
   - "model" (default, any language): the learned frame classifier (`lipsync_model`) over
     log mel band energies from 160 ms before to 160 ms after the frame (inside the
     lookahead) against the running mean spectrum, and pocketsphinx's phone scores over
     the same span (`phone_scores`: its US-English acoustic model, trained on people),
     plus a causal GRU stepped once per frame at the frame's commit, in order (what the
     window cannot see: speaker, rate, the context before). Trained on English voices
     (synthetic and human); it sees the spectrum and phone likelihoods, no words, beats the
     spectral rules by far on Mandarin, and is the language-independent path. It also
     overrules the gate where it is sure a "rest" frame is speech (quiet speech in noise),
     its silence inside what the gate calls speech is kept (rest), closures get a bias,
     and (English) a speech frame where the closure probability peaks is shown closed.
   - "recognizer" (English only, ~6x the CPU; other languages get "model"): a streaming
     pocketsphinx phone recognizer, mapped with `shape_of_arpabet` and corrected by the
     floor's shape.
   - "floor" (or language="floor"): the energy/spectrum rules only.
3. Known text (offline, `track_from_audio(pcm, text=...)`, English): espeak-ng renders the
   text (exact phoneme times; re-rendered at the input's speech rate) and the classifier's
   per-10 ms probabilities of input and template warp that template onto the audio
   (`dtw_spans`); text_method="align" uses pocketsphinx forced alignment.
Then smoothing, except for the classifier's own shapes (its one-frame shapes are as frequent
as real one-frame phones): one-frame flickers (P, Q, P) become P unless Q is a closure (A,
which must stay visible). Openness follows the shape's default scaled by loudness and eases
between frames; rest (X) and closures (A) are fully closed, so silence never trembles.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from avatarcast import FRAME_RATE_HZ, SAMPLE_RATE_HZ
from avatarcast.speech.lipsync_floor import (
    DEFAULT_FLOOR,
    HOP,
    FloorParams,
    HopAnalyzer,
    floor_shape,
)
from avatarcast.speech.lipsync_model import (
    MAX_FUTURE_HOPS,
    LipSyncEnsemble,
    frame_features,
    load_ensemble,
    phone_features,
)
from avatarcast.speech.phone_scores import DELAY_HOPS, STEP
from avatarcast.speech.visemes import (
    DEFAULT_OPEN,
    REST,
    SHAPES,
    MouthPose,
    Shape,
    shape_of_arpabet,
)

if TYPE_CHECKING:
    from avatarcast.speech.recognizer import Aligner, PhoneRecognizer, Segment
    from avatarcast.speech.tts_types import PhonemeSpan

MAX_LOOKAHEAD_MS = 200
_EASE = 0.6  # fraction of the way to the target openness per frame (coarticulation)
_A_MIN_S = 0.015  # a closure covering this much of a frame wins the frame (keeps P/B/M visible)
_ONSET_JUMP_DB = 30.0  # level jump within 10 ms that marks a burst out of silence
_RESTART_AFTER_S = 15.0  # restart the recognizer in a long pause after this much audio
# Added to the classifier's closure (A) score: a P/B/M closure lasts one or two frames and
# must be seen (tuned on held-out human speakers, see docs/lipsync.md).
A_LOGIT_BIAS = 1.0
_A_INDEX = 0  # SHAPES.index(Shape.A)
_X_INDEX = 8  # SHAPES.index(Shape.X)
# A frame the voice-activity gate calls rest is speech when the classifier gives silence
# less than this probability (tuned on held-out human speakers, see docs/lipsync.md).
GATE_OVERRIDE_PX = 0.3
# A speech frame whose closure (A) probability peaks (≥ both neighbours') at this or more is
# shown closed, unless the frame before already is: P/B/M closures last a frame or two and the
# classifier often puts a neutral vowel or consonant above them. Chosen on speakers neither
# trained on nor scored (the "found" set, see docs/lipsync.md); 1.0 turns it off. English only
# (tuned on the English head's scores; on natural Mandarin it cost 0.018).
CLOSURE_PEAK_PA = 0.25

# (recognised shape, floor shape) → shape, where the pair disagrees systematically. Counted
# on the TRAINING sentences only (3 voices): allphone decoding over-hears AA and UW/UH where
# the spectrum says a neutral vowel, and hears L in nasal murmurs (low, closed-lip energy).
_FUSION: dict[tuple[Shape, Shape], Shape] = {
    (Shape.D, Shape.C): Shape.C,
    (Shape.D, Shape.E): Shape.E,
    (Shape.D, Shape.F): Shape.E,
    (Shape.F, Shape.C): Shape.C,
    (Shape.F, Shape.E): Shape.C,
    (Shape.F, Shape.A): Shape.G,
    (Shape.C, Shape.A): Shape.B,
    (Shape.H, Shape.A): Shape.A,
    (Shape.H, Shape.C): Shape.A,
    (Shape.H, Shape.F): Shape.E,
}


def is_english(language: str) -> bool:
    return language.strip().lower().startswith("en")


def shape_in_window(
    starts: Sequence[float], segs: Sequence[tuple[float, float, Shape]], t0: float, t1: float
) -> Shape:
    """Shape covering most of [t0, t1) among time-sorted spans (closures win if ≥ 15 ms)."""
    cover: dict[Shape, float] = {}
    i = max(0, bisect.bisect_right(starts, t0) - 1)
    while i < len(segs) and segs[i][0] < t1:
        s0, s1, shape = segs[i]
        ov = min(s1, t1) - max(s0, t0)
        if ov > 0:
            cover[shape] = cover.get(shape, 0.0) + ov
        i += 1
    if not cover:
        return Shape.X
    if cover.get(Shape.A, 0.0) >= _A_MIN_S:
        return Shape.A
    return max(cover.items(), key=lambda kv: kv[1])[0]


class StreamingLipSync:
    """Streaming mouth track for one utterance/session at a time (not thread-safe).

    push() returns the frames committed by the new audio, finish() the rest; reset() starts
    the next utterance (keeps the loaded recognizer).
    """

    def __init__(
        self,
        fps: int = FRAME_RATE_HZ,
        sample_rate: int = SAMPLE_RATE_HZ,
        lookahead_ms: int = MAX_LOOKAHEAD_MS,
        language: str = "en",
        text: str | None = None,
        floor: FloorParams = DEFAULT_FLOOR,
        recognizer: PhoneRecognizer | None = None,
        method: str = "model",
    ) -> None:
        if sample_rate != SAMPLE_RATE_HZ:
            raise ValueError(f"sample_rate must be {SAMPLE_RATE_HZ} (resample first)")
        if fps <= 0 or SAMPLE_RATE_HZ % fps or (SAMPLE_RATE_HZ // fps) % HOP:
            raise ValueError(f"fps {fps} must divide {SAMPLE_RATE_HZ} into whole 10 ms hops")
        if not 0 <= lookahead_ms <= MAX_LOOKAHEAD_MS:
            raise ValueError(f"lookahead_ms must be within 0..{MAX_LOOKAHEAD_MS}")
        self.fps = fps
        self.language = language
        # Known text cannot change frames already committed while streaming; it is kept for
        # track_from_audio-style use by callers (see module doc).
        self.text = text
        self._spf = SAMPLE_RATE_HZ // fps
        self._hops_per_frame = self._spf // HOP
        # Whole hops, so that every decision sees a whole number of analysed hops.
        self._lookahead = (lookahead_ms * SAMPLE_RATE_HZ // 1000) // HOP * HOP
        self._floor = floor
        if method not in ("model", "recognizer", "floor"):
            raise ValueError(f"method must be 'model', 'recognizer' or 'floor', got {method!r}")
        if language.strip().lower().startswith("floor"):
            method = "floor"  # language="floor": the energy/spectrum rules only
        if method == "recognizer" and not is_english(language):
            method = "model"  # the phone recognizer is English only; the classifier is not
        self.method = method
        self._recognizer: PhoneRecognizer | None = None
        self._model: LipSyncEnsemble | None = None
        if method == "model":
            self._model = load_ensemble()
        elif method == "recognizer":
            if recognizer is None:
                from avatarcast.speech.recognizer import PhoneRecognizer

                recognizer = PhoneRecognizer()
            self._recognizer = recognizer
        self.reset()

    @property
    def lookahead_ms(self) -> int:
        return self._lookahead * 1000 // SAMPLE_RATE_HZ

    @property
    def frames_committed(self) -> int:
        return self._n

    def reset(self) -> None:
        """Start a new utterance: no audio, no frames."""
        self._hops = HopAnalyzer(self._floor, phones=self._model is not None)
        self._pending: list[NDArray[np.int16]] = []
        self._received = 0  # samples pushed
        self._analysed = 0  # samples given to the hop analysis (may run ahead of _fed)
        self._fed = 0  # samples visible to decisions (the frame's deadline); the recognizer's
        self._n = 0  # frames committed
        self._prev = REST
        self._finished = False
        self._rec_offset = 0.0  # seconds: the recognizer restarts in long pauses
        self._old_segs: list[tuple[float, float, Shape]] = []
        self._segs: list[tuple[float, float, Shape]] = []
        self._seg_starts: list[float] = []
        self._spans: list[tuple[float, float, Shape]] | None = None  # aligned (offline)
        self._model_cache: dict[int, NDArray[np.float32]] = {}
        # The temporal head: its state after frames 0.._t_next-1 (stepped at each frame's
        # commit), and a look at frame _t_next made with a complete window (reused then).
        # English only: it learns English context, and on the one natural Mandarin clip it
        # cost 0.08 (0.60 -> 0.52, baseline 0.47) where the per-frame classifier holds.
        self._t_state = (
            self._model.temporal.initial_state()
            if self._model is not None
            and self._model.temporal is not None
            and is_english(self.language)
            else None
        )
        self._t_next = 0
        self._t_peek: tuple[int, NDArray[np.float32], NDArray[np.float32]] | None = None
        if self._recognizer is not None:
            self._recognizer.reset()

    def push(self, pcm: NDArray[np.int16]) -> list[MouthPose]:
        """Add audio; return the frames it commits (possibly none)."""
        if self._finished:
            raise RuntimeError("utterance finished; call reset()")
        pcm = np.asarray(pcm)
        if pcm.dtype != np.int16:
            raise TypeError(f"pcm must be int16, got {pcm.dtype}")
        pcm = pcm.reshape(-1)
        if pcm.size:
            self._pending.append(pcm.copy())
            self._received += pcm.size
        out: list[MouthPose] = []
        if self._recognizer is None:
            # Analyse the hops of every frame this audio commits at once (the per-call cost
            # is most of the analysis at 40 ms); each frame still sees only its deadline.
            last = (self._received - self._lookahead) // self._spf - 1
            if last >= self._n:
                self._analyse_to(self._deadline(last))
        while self._received >= self._deadline(self._n):
            self._feed_to(self._deadline(self._n))
            out.append(self._commit())
        return out

    def finish(self) -> list[MouthPose]:
        """Commit every remaining frame: ceil(samples / samples_per_frame) frames in total."""
        if self._finished:
            return []
        total_frames = -(-self._received // self._spf)
        pad = total_frames * self._spf - self._received
        if pad:
            self._pending.append(np.zeros(pad, np.int16))
        end = self._received + pad
        if self._recognizer is None:
            self._analyse_to(end)
        out: list[MouthPose] = []
        # Frames whose deadline is reached by the padding are still ordinary streaming frames.
        while self._n < total_frames and self._deadline(self._n) <= end:
            self._feed_to(self._deadline(self._n))
            out.append(self._commit())
        self._feed_to(end)
        self._finished = True
        if self._recognizer is not None:
            self._set_segments(self._recognizer.finish())
        while self._n < total_frames:
            out.append(self._commit())
        return out

    def use_spans(self, spans: Sequence[PhonemeSpan | tuple[float, float, Shape]]) -> None:
        """Use known phone spans (forced alignment) instead of recognition for this utterance."""
        self._spans = [
            (s.start_s, s.end_s, s.shape) if not isinstance(s, tuple) else s for s in spans
        ]
        self._segs = self._spans
        self._seg_starts = [s[0] for s in self._spans]

    # -- internals ---------------------------------------------------------------------------

    def _deadline(self, n: int) -> int:
        return (n + 1) * self._spf + self._lookahead

    def _analyse_to(self, sample: int) -> NDArray[np.int16]:
        """Give the hop analysis the audio up to absolute sample `sample`; return it."""
        need = sample - self._analysed
        if need <= 0:
            return np.zeros(0, np.int16)
        data = np.concatenate(self._pending) if len(self._pending) > 1 else self._pending[0]
        chunk, rest = data[:need], data[need:]
        self._pending = [rest] if rest.size else []
        self._analysed = sample
        self._hops.add(chunk)
        return chunk

    def _feed_to(self, sample: int) -> None:
        """Make the audio up to absolute sample `sample` visible to decisions (analysed, and
        fed to the recognizer, which is fed frame by frame: its segments depend on it)."""
        if sample <= self._fed:
            return
        chunk = self._analyse_to(sample)
        self._fed = sample
        if self._recognizer is not None and self._spans is None:
            self._recognizer.feed(chunk)
            self._set_segments(self._recognizer.segments())

    @property
    def _n_hops(self) -> int:
        """Hops visible to decisions: those of the audio up to the frame's deadline (the
        analysis may have run further; every per-hop value depends on earlier audio only)."""
        return self._fed // HOP

    def _set_segments(self, segs: list[Segment]) -> None:
        off = self._rec_offset
        mapped = [(a + off, b + off, shape_of_arpabet(p)) for a, b, p in segs]
        self._segs = self._old_segs + mapped
        self._seg_starts = [s[0] for s in self._segs]

    def _frame_speech(self, f: int, n_hops: int) -> bool | None:
        """Raw voice activity of frame f (≥ half of its hops), None when not yet analysed."""
        h0 = f * self._hops_per_frame
        if f < 0:
            return False
        if h0 >= n_hops:
            return None if not self._finished else False
        hops = self._hops.speech[h0 : min(n_hops, h0 + self._hops_per_frame)]
        return int(np.count_nonzero(hops)) * 2 >= self._hops_per_frame

    def _gate(self, n: int) -> str:
        """'speech', 'gap' (short pause inside speech: a closure) or 'rest' for frame n."""
        p = self._floor
        nh = self._n_hops
        sp = self._frame_speech
        if sp(n, nh):
            back = 0
            while back < p.min_speech_frames and sp(n - back - 1, nh):
                back += 1
            fwd = 0
            while back + fwd + 1 < p.min_speech_frames:
                s = sp(n + fwd + 1, nh)
                if s is None:  # run continues beyond what we can see: trust it
                    return "speech"
                if not s:
                    break
                fwd += 1
            return "speech" if back + fwd + 1 >= p.min_speech_frames else "rest"
        last = n - 1
        while last >= n - p.max_gap_frames and last >= 0 and not sp(last, nh):
            last -= 1
        if last < n - p.max_gap_frames or last < 0:
            return "rest"
        nxt = n + 1
        while nxt - last - 1 <= p.max_gap_frames:
            s = sp(nxt, nh)
            if s is None or s:
                return "gap" if s else "rest"
            nxt += 1
        return "rest"

    def _raw_shape(self, n: int) -> Shape:
        gate = self._gate(n)
        if (
            gate == "rest"
            and self._model is not None
            and self._spans is None
            and self._n_hops > n * self._hops_per_frame
        ):
            pr = self._model_probs(n)
            # Quiet or noisy speech the gate misses (hesitations, a hoarse voice in a noisy
            # room): the classifier, trained with noise, is sure it is not silence.
            if pr[_X_INDEX] < GATE_OVERRIDE_PX:
                return SHAPES[int(np.argmax(pr[:-1]))]
        if gate == "rest":
            # Lips close just before a speech onset that bursts out of silence (a plosive,
            # often P/B): an utterance-initial closure is silent, so otherwise never shown.
            return Shape.A if self._abrupt_onset_after(n) else Shape.X
        if self._model is not None and self._spans is None:
            shape = self._model_shape(n)
            if gate == "gap":
                # A short silence inside speech: the lips are closed on its last frame, just
                # before speech resumes (a P/B/M hold ends at its release), unless the
                # classifier hears a vowel-like shape there; its other frames keep the
                # classifier's shape (a whole gap shown closed cost accuracy, no closures).
                last = self._gate(n + 1) != "gap"
                if last and shape in (Shape.A, Shape.B, Shape.X):
                    return Shape.A
            # Speech the classifier calls silence stays rest (X): the classifier, trained with
            # noise, knows silence better than the gate (B there, or the floor's nasal-dip
            # closure, lost 0.01-0.05 on every held-out human set).
            if (
                shape not in (Shape.A, Shape.X)
                and self._prev.shape is not Shape.A
                and is_english(self.language)
                and self._closure_peak(n)
            ):
                return Shape.A
            return shape
        t0, t1 = n / self.fps, (n + 1) / self.fps
        heard = Shape.X
        if self._segs:
            heard = shape_in_window(self._seg_starts, self._segs, t0, t1)
        if gate == "gap":
            return heard if heard is not Shape.X else Shape.A
        floor = self._floor_shape(n)
        if heard is Shape.X:
            return floor
        if self._spans is not None:
            return heard  # aligned phones of known text: trust them
        return _FUSION.get((heard, floor), heard)

    def _model_shape(self, n: int) -> Shape:
        """The classifier's shape for frame n (closures favoured by `A_LOGIT_BIAS`)."""
        return SHAPES[int(np.argmax(self._model_probs(n)))]

    def _step_temporal(self, n: int) -> None:
        """Step the temporal head with frame n as heard at its commit; cache its scores."""
        peek = self._t_peek
        if peek is not None and peek[0] == n:  # its window was complete: the same result
            state, probs = peek[1], peek[2]
        else:
            state, probs, _ = self._temporal_probs(n)
        self._t_state, self._t_next, self._t_peek = state, n + 1, None
        self._remember(n, probs)

    def _temporal_probs(self, n: int) -> tuple[NDArray[np.float32], NDArray[np.float32], bool]:
        """(state after frame n, its probabilities, window complete) with the audio so far."""
        assert self._model is not None and self._model.temporal is not None
        assert self._t_state is not None and n == self._t_next
        x, complete = self._frame_x(n)
        hidden, z = self._model.hidden_logits(x)
        state = self._model.temporal.step(self._t_state, hidden)
        return state, self._probs(self._model.temporal.logits(z, state)), complete

    def _probs(self, z: NDArray[np.float32]) -> NDArray[np.float32]:
        z = z.copy()
        z[_A_INDEX] += A_LOGIT_BIAS
        e = np.exp(z - np.max(z))
        return (e / np.sum(e)).astype(np.float32)

    def _model_probs(self, n: int) -> NDArray[np.float32]:
        """The classifier's shape probabilities for frame n (cached once its window is
        complete, so each frame is classified once). With a temporal head, frame n's are
        fixed at its commit; a look at the next frame steps a copy of the state."""
        cached = self._model_cache.get(n)
        if cached is not None:
            return cached
        assert self._model is not None
        if self._t_state is not None:  # a look at the next frame, before its commit
            state, probs, complete = self._temporal_probs(n)
            if complete:
                self._t_peek = (n, state, probs)
            return probs
        x, complete = self._frame_x(n)
        probs = self._probs(self._model.logits(x))
        if complete:
            self._remember(n, probs)
        return probs

    def _remember(self, n: int, probs: NDArray[np.float32]) -> None:
        """Frame n's final probabilities; the cache keeps the last few frames only."""
        self._model_cache[n] = probs
        self._model_cache.pop(n - 4, None)

    def _frame_x(self, n: int) -> tuple[NDArray[np.float32], bool]:
        """Frame n's classifier features with the audio heard so far, and whether its window
        is complete (then they cannot change)."""
        hops = self._hops
        # The 40 ms window the classifier was trained on, centred on the frame (= the frame
        # itself at 25 fps).
        h0 = n * self._hops_per_frame + self._hops_per_frame // 2 - 2
        nh = self._n_hops
        lo = max(0, h0 - 16)
        spectral = frame_features(
            hops.mel_db[lo : h0 + MAX_FUTURE_HOPS],
            hops.level_db[lo : h0 + MAX_FUTURE_HOPS],
            hops.noise_db[lo : h0 + MAX_FUTURE_HOPS],
            hops.cmn_db[min(h0 + 3, nh - 1)] if nh else None,
            h0 - lo,
            max(0, min(nh, h0 + MAX_FUTURE_HOPS) - lo),
            self._finished,
        )
        # Score rows of the visible hops only (row r, hop 2r, is known once hop 2r + 3 is).
        known = max(0, (nh - DELAY_HOPS + 1) // STEP)
        phones = phone_features(hops.phone_scores[:known], np.array([h0], dtype=np.intp))[0]
        x = np.concatenate([spectral, phones])
        return x, self._finished or nh >= h0 + MAX_FUTURE_HOPS

    def _abrupt_onset_after(self, n: int) -> bool:
        if self._gate(n + 1) != "speech":
            return False
        # The burst may fall in this frame's last hops, too few to make it a speech frame.
        h0 = n * self._hops_per_frame
        h1 = min(self._n_hops, h0 + 2 * self._hops_per_frame)
        lv, noise = self._hops.level_db, self._hops.noise_db
        return any(
            lv[h] - lv[h - 1] >= _ONSET_JUMP_DB and lv[h - 1] < noise[h - 1] + 10.0
            for h in range(max(1, h0), h1)
        )

    def _floor_shape(self, n: int) -> Shape:
        h0 = n * self._hops_per_frame
        h1 = min(self._n_hops, h0 + self._hops_per_frame)
        if h1 <= h0:
            return Shape.B
        bands = np.mean(self._hops.bands_db[h0:h1], axis=0)
        level = float(np.mean(self._hops.level_db[h0:h1]))
        lo = max(0, h0 - 3 * self._hops_per_frame)
        hi = min(self._n_hops, h1 + 3 * self._hops_per_frame)
        local_peak = float(np.max(self._hops.level_db[lo:hi]))
        return floor_shape(bands, level, local_peak, self._floor)

    def _commit(self) -> MouthPose:
        n = self._n
        if self._t_state is not None:
            self._step_temporal(n)
        shape = self._raw_shape(n)
        # A one-frame shape between two frames of another (P, Q, P) becomes P for the rule
        # methods (floor, recognizer) and known spans, whose single frames are mostly noise.
        # Not for the classifier: its one-frame shapes come as often as real one-frame phones
        # (2.8 vs 2.6 per 100 frames on the held-out human sets); holding them lost
        # 0.005-0.025 on every set.
        if (
            (self._model is None or self._spans is not None)
            and shape not in (Shape.A, self._prev.shape)
            and self._prev.shape is not Shape.X
        ):
            nxt = self._raw_shape(n + 1)
            if nxt is self._prev.shape:
                shape = self._prev.shape  # a one-frame flicker: hold the previous shape
        pose = self._pose(n, shape)
        self._prev = pose
        self._n += 1
        self._maybe_restart_recognizer()
        return pose

    def _closure_peak(self, n: int) -> bool:
        """Frame n's closure probability is ≥ CLOSURE_PEAK_PA and a local maximum (frame
        n + 1 is looked at while its audio is in, not after the end)."""
        pa = self._model_probs(n)[_A_INDEX]
        if pa < CLOSURE_PEAK_PA or (n > 0 and self._model_probs(n - 1)[_A_INDEX] > pa):
            return False
        if self._finished or self._n_hops <= (n + 1) * self._hops_per_frame:
            return True
        return bool(self._model_probs(n + 1)[_A_INDEX] <= pa)

    def _pose(self, n: int, shape: Shape) -> MouthPose:
        if shape in (Shape.X, Shape.A):
            return MouthPose(shape, 0.0)
        h0 = n * self._hops_per_frame
        h1 = min(self._n_hops, h0 + self._hops_per_frame)
        if h1 > h0:
            power = np.mean(np.power(10.0, self._hops.level_db[h0:h1] / 10.0))
            level = 10.0 * float(np.log10(power))
            noise, peak = float(self._hops.noise_db[h1 - 1]), float(self._hops.peak_db[h1 - 1])
            loud = min(1.0, max(0.0, (level - noise) / max(peak - noise, 20.0)))
        else:
            loud = 0.5
        target = DEFAULT_OPEN[shape] * (0.4 + 0.6 * loud)
        prev = self._prev.open
        value = prev + _EASE * (target - prev) if self._prev.shape is not Shape.X else target
        return MouthPose(shape, round(min(1.0, max(0.0, value)), 4))

    def _maybe_restart_recognizer(self) -> None:
        """Bound the recognizer's per-frame cost on long streams: restart it in a long pause."""
        rec = self._recognizer
        if rec is None or self._finished or self._spans is not None:
            return
        if rec.samples_fed < _RESTART_AFTER_S * SAMPLE_RATE_HZ:
            return
        # Everything from the last committed frame to the newest audio must be rest.
        nh = self._n_hops
        h_from = max(0, (self._n - 12) * self._hops_per_frame)
        if nh - h_from < 40 or bool(self._hops.speech[h_from:nh].any()):
            return
        now = self._fed / SAMPLE_RATE_HZ
        self._old_segs = [s for s in self._segs if s[1] > now - 1.0]
        self._rec_offset = now
        rec.reset()
        self._set_segments([])


_TEMPLATE_RATE_WPM = 175  # espeak's first rendering of known text; then matched to the input
_TEMPLATE_POSTERIOR = 0.5  # weight of the template's own classifier output vs its labels
_DTW_LABEL_DELAY = 1  # hops: input hop h takes the template shape matched to hop h - 1


def _speech_extent_s(an: HopAnalyzer) -> float:
    """Seconds from the first to the last voice-active hop (at least one hop)."""
    active = np.flatnonzero(an.speech)
    return (int(active[-1]) - int(active[0]) + 1) * 0.01 if active.size else 0.01


def dtw_spans(pcm: NDArray[np.int16], text: str) -> list[tuple[float, float, Shape]] | None:
    """Shapes of known English text, timed on `pcm` by warping espeak's own rendering.

    espeak-ng speaks the text (en-us, exact phoneme times), a second time at the speech rate
    that makes its voice-active extent match the input's. The classifier's per-hop shape
    probabilities p of the input and q of the template (mixed half and half with the
    template's exact labels) give the cost -log(p·q) of matching input hop i to template hop
    j; a monotone DTW (`dtw_path`) picks the warp, and each input hop takes the template
    label it is matched to. None if espeak cannot speak the text.
    """
    from avatarcast.errors import AvatarcastError
    from avatarcast.speech.espeak import RATE_RANGE_WPM
    from avatarcast.speech.lipsync_model import dtw_path, hop_log_probs
    from avatarcast.speech.tts import get_backend
    from avatarcast.speech.visemes import SHAPES

    if pcm.size < HOP * 8:
        return None
    an = HopAnalyzer(phones=True)
    an.add(pcm)
    model = load_ensemble()
    tts = get_backend("espeak")
    try:
        first = tts.synthesize(text, voice="en-us", rate_wpm=_TEMPLATE_RATE_WPM)
        t_an = HopAnalyzer(phones=True)
        t_an.add(first.pcm)
        ratio = _speech_extent_s(t_an) / _speech_extent_s(an)
        lo, hi = RATE_RANGE_WPM
        rate = int(np.clip(round(_TEMPLATE_RATE_WPM * ratio), lo, min(hi, 400)))
        tmpl = first
        if rate != _TEMPLATE_RATE_WPM:
            tmpl = tts.synthesize(text, voice="en-us", rate_wpm=rate)
            t_an = HopAnalyzer(phones=True)
            t_an.add(tmpl.pcm)
    except AvatarcastError:
        return None
    m = min(tmpl.pcm.size // HOP, t_an.n_hops)
    index = {sh: i for i, sh in enumerate(SHAPES)}
    starts = [sp.start_s for sp in tmpl.phonemes]
    segs = [(sp.start_s, sp.end_s, sp.shape) for sp in tmpl.phonemes]
    # Template label of the 40 ms window starting at each hop: the shape at its centre.
    ref = np.array(
        [
            index[shape_in_window(starts, segs, (j + 1.5) * 0.01, (j + 2.5) * 0.01)]
            for j in range(m)
        ],
        dtype=np.intp,
    )
    lp = hop_log_probs(an, model)
    n = lp.shape[0]
    if n < 2 or m < 2:
        return None
    q = np.exp(hop_log_probs(t_an, model)[:m].astype(np.float64)) * _TEMPLATE_POSTERIOR
    q[np.arange(m), ref] += 1.0 - _TEMPLATE_POSTERIOR
    path = dtw_path(-np.log(np.exp(lp.astype(np.float64)) @ q.T + 1e-6))
    out: list[tuple[float, float, Shape]] = []
    for h in range(n):
        shape = SHAPES[int(ref[path[min(n - 1, max(0, h - _DTW_LABEL_DELAY))]])]
        t0, t1 = h * 0.01, (h + 1) * 0.01
        if out and out[-1][2] is shape:
            out[-1] = (out[-1][0], t1, shape)
        else:
            out.append((t0, t1, shape))
    return out


def track_from_audio(
    pcm: NDArray[np.int16],
    text: str | None = None,
    language: str = "en",
    lookahead_ms: int = MAX_LOOKAHEAD_MS,
    aligner: Aligner | None = None,
    recognizer: PhoneRecognizer | None = None,
    text_method: str = "align",
    method: str = "model",
) -> list[MouthPose]:
    """Mouth track of a whole utterance known up front (ceil(samples/640) frames).

    With English text (text_method "align", the default): pocketsphinx forced alignment of
    the words, phones and pauses drawn as exact spans (`text_known.track_from_transcript`);
    when alignment fails, or with text_method "dtw", espeak's rendering of the text warped
    onto the audio (`dtw_spans`), gated by voice activity; without text, or when both fail,
    the streaming engine's own result.
    """
    pcm = np.asarray(pcm, dtype=np.int16).reshape(-1)
    spans: list[tuple[float, float, Shape]] | None = None
    if text and is_english(language) and text_method == "align":
        from avatarcast.speech.text_known import track_from_transcript

        track = track_from_transcript(pcm, text, aligner)
        if track is not None:
            return track
        text_method = "dtw"  # alignment failed: the previous text-known method
    if text and is_english(language):
        if text_method == "dtw":
            spans = dtw_spans(pcm, text)
        else:
            if aligner is None:
                from avatarcast.speech.recognizer import Aligner

                aligner = Aligner()
            aligned = aligner.align(pcm, text)
            if aligned is not None:
                spans = [(s.start_s, s.end_s, s.shape) for s in aligned]
    engine = StreamingLipSync(
        lookahead_ms=lookahead_ms,
        language=language,
        recognizer=recognizer if spans is None else None,
        method=method if spans is None else "floor",
    )
    if spans is not None:
        engine.use_spans(spans)
    return engine.push(pcm) + engine.finish()
