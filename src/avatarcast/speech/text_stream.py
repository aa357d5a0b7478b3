"""Streaming lip-sync for audio whose words are known: incremental forced alignment.

Streamed audio (`SEND_AUDIO` with `Text`) must get its mouth frame by frame: frame n is
committed once the audio up to (n + 1) / fps + lookahead (≤ 200 ms) has arrived, and never
revised, exactly as for audio alone. Forced alignment of the whole utterance is impossible
then — the end of the audio is not there yet. So:

* The known words become a grammar of PHONES (`grammar_transitions`): one pocketsphinx
  "word" per ARPAbet phone, the words' pronunciations (the CMU dictionary's alternatives,
  espeak-ng's for unknown words) as parallel phone chains, an optional pause before, between
  and after words (never inside one). The decoder runs over the audio as it arrives; its
  best partial path is the alignment of the audio so far against a prefix of the text.
* The partial path is pocketsphinx's best phone EXIT at the newest frame. Left alone it
  often stretched one phone or a pause over a second of speech (locally the better acoustic
  match; only the end of the text, not there yet, shows it wrong), and lost ~0.05 against the
  final path. Three things keep it on the text: no per-phone insertion penalty — a weight
  of 4 per phone instead, which pulls the path along the text (`_PHONE_WIP`); the decoder
  restarts from the measured cepstral mean of the audio so far at 1 and 2 s (the model's
  default mean is far from many recordings, and pocketsphinx's live update is slow:
  `_CMN_RESTARTS_S`); every utterance starts from a re-initialised feature pipeline.
* When frames are due, that path (over ALL audio received so far: at least the lookahead,
  more when the client sends ahead of real time, as TTS clients do) gives each frame its
  shape: a P/B/M or F/V covering 30 % of the frame wins it (closures stay visible), else the
  phone covering most of the frame; pauses are rest; a one-frame pause between two frames of
  one speech shape takes that shape (as in `text_lipsync`'s exact-timing track).
* Recognition fills in where alignment cannot answer: a frame beyond the path's end, any
  frame when the text has no alignable word or the decoder fails, a frame inside a consonant
  the path holds > 0.3 s (stuck), and a frame the path calls a pause while the audio-only
  engine hears speech AND the frame is ≥ 50 dB above the quietest frame so far (synthetic
  voices, whose pauses are digital silence: there the path parks in a pause while the speech
  goes on; in recordings the path's pauses were right more often than the recognised
  shape). An audio-only `StreamingLipSync` runs beside it on the same audio and commits the
  same frames at the same deadlines; its frame is used there.

Measured (160 ms chunks, each frame at its deadline): 0.792 frame accuracy on independent
human labels (benchmarks/alignment.py's set; 0.749 before the changes above; the offline
two-pass alignment of `text_known` scores 0.833, audio alone 0.60); 0.88 agreement with the
offline alignment on other human clips; 0.78 on espeak voices. Cost: ~0.04 CPU-s per
audio-s with the audio-only engine beside it.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from avatarcast import FRAME_RATE_HZ, SAMPLE_RATE_HZ
from avatarcast.speech.audio_lipsync import MAX_LOOKAHEAD_MS, StreamingLipSync
from avatarcast.speech.visemes import DEFAULT_OPEN, MouthPose, Shape, shape_of_arpabet

_PHONE_LIST = "AA AE AH AO AW AY B CH D DH EH ER EY F G HH IH IY JH K L M N NG OW OY P R S SH"
PHONES: tuple[str, ...] = (*_PHONE_LIST.split(), "T", "TH", "UH", "UW", "V", "W", "Y", "Z", "ZH")
_PREFIX = "ph_"
_SIL = "<sil>"
_CLOSURES = (Shape.A, Shape.G)
_CLOSURE_MIN_COVER = 0.3  # as in text_lipsync: a closure covering 30 % of a frame wins it
_EASE = 0.6
# Word insertion "penalty" of the phone decoder (each phone is a pocketsphinx word here).
# pocketsphinx's default, 0.65, charged every phone of the text: a partial path that stretched
# one phone (or a pause) over speech was cheaper than one that followed the text, and the
# partial path stuck there until the end of the text showed it wrong. The number of phones is
# fixed by the text, so 1 is neutral; > 1 pulls the partial path along the text. Chosen on
# sets other than the MFA benchmark's (streamed frame accuracy for 1 / 2 / 4 / 8: human clips
# labelled by the offline aligner .856 / .857 / .857 / .854, espeak on the TRAIN sentences
# .750 / .756 / .761 / .763).
_PHONE_WIP = 4.0
# A pause of the path is trusted unless the frame is this far above the quietest frame so far
# (then the path has parked in a pause over speech: synthetic voices, whose pauses are digital
# silence). Real recordings' pauses lie within ~40 dB of their floor (a quiet room is ~30 dB
# SPL, speech ~60-70 dB SPL): there the recognised shape was wrong more often than the pause.
# Checked on other sets than the MFA benchmark's: of the frames where the path has a pause and
# the audio-only engine speech, ≥ 50 dB over the floor the recognised shape was right in 1203
# of 1564 espeak frames and 2 of 23 human ones (offline-aligned clips), below it in 23 of 128
# espeak and 28 of 204 human ones (the path's pause: 69 and 151; measured with insertion
# weight 1, before the pause grammar and CMN restarts).
_PARKED_PAUSE_DB = 50.0
# A consonant the path holds longer than this is a path stuck on it (stops, fricatives and
# nasals inside words last well under 200 ms); the frame takes the recognised shape.
_MAX_CONSONANT_S = 0.3
# Cepstral mean: the decoder starts from the model's default estimate (recognizer.CMN_INIT),
# which pocketsphinx's live update moves only every few seconds and slowly; a recording far
# from it (level, room) is decoded badly at first, and the partial path goes wrong where the
# final path, with the whole audio, would not. So when the audio reaches each of these times,
# the mean of all the audio so far is measured and the decoder restarts from it on that audio
# (fixed times: chunking changes nothing). A restart re-decodes the audio so far inside one
# push: ~35 ms of CPU at 2 s; a third at 4 s cost ~70 ms in one push and gained nothing (frame
# accuracy 0.792 / 0.881 / 0.784 on the MFA / other human / espeak sets either way; rtf on the
# other human clips 0.038 -> 0.031 without it).
_CMN_RESTARTS_S = (1.0, 2.0)
_VOWELS = frozenset(
    ["AA", "AE", "AH", "AO", "AW", "AY", "EH", "ER", "EY", "IH", "IY", "OW", "OY", "UH", "UW"]
)
_MAX_WORDS = 2000  # a grammar this long is still cheap to build (~ms); longer text: recognition

Segment = tuple[float, float, str]  # start_s, end_s, ARPAbet phone or "SIL"


def _pronunciations(word: str, lookup: Callable[[str], str | None]) -> list[str]:
    """The dictionary's pronunciations of `word` ("word", "word(2)", …) through `lookup`."""
    out: list[str] = []
    first = lookup(word)
    while first is not None and len(out) < 8:
        out.append(first)
        first = lookup(f"{word}({len(out) + 1})")
    return out


def grammar_transitions(
    text: str, lookup: Callable[[str], str | None], silprob: float = 0.1
) -> tuple[list[tuple[int, int, float, str]], int]:
    """FSG transitions (from, to, probability, phone word) of `text` and its final state.

    `lookup`: word → ARPAbet pronunciation or None (the decoder's dictionary). A pause
    ("<sil>", probability `silprob`) may come before, between and after words, never inside
    a word (the decoder's own fillers, which it would put between any two phones, are off).
    """
    from avatarcast.speech.pronounce import espeak_arpabet, transcript_words

    trans: list[tuple[int, int, float, str]] = [(0, 0, silprob, _SIL)]
    state, fresh = 0, 1
    for word in transcript_words(text)[:_MAX_WORDS]:
        options = _pronunciations(word, lookup)
        if not options:
            guess = espeak_arpabet(word.replace("'", ""))
            options = [guess] if guess else []
        chains = [[p for p in o.split() if p in PHONES] for o in options]
        chains = [c for c in chains if c]
        if not chains:
            continue
        end, fresh = fresh, fresh + 1
        for chain in chains:
            cur = state
            for k, phone in enumerate(chain):
                if k == len(chain) - 1:
                    to = end
                else:
                    to, fresh = fresh, fresh + 1
                prob = 1.0 / len(chains) if k == 0 else 1.0
                trans.append((cur, to, prob, _PREFIX + phone.lower()))
                cur = to
        state = end
        trans.append((end, end, silprob, _SIL))
    return trans, state


class _PhoneDecoder:
    """A pocketsphinx decoder whose dictionary has one word per phone (~0.3 s to load)."""

    def __init__(self) -> None:
        from pocketsphinx import Decoder

        from avatarcast.speech.recognizer import (
            ALIGN_BEAM,
            ALIGN_SILPROB,
            ALIGN_WORD_BEAM,
            _model_paths,
        )

        paths = _model_paths()
        self.decoder: Any = Decoder(
            hmm=paths.hmm,
            dict=paths.dictionary,
            samprate=SAMPLE_RATE_HZ,
            beam=ALIGN_BEAM,
            pbeam=ALIGN_BEAM,
            wbeam=ALIGN_WORD_BEAM,
            silprob=ALIGN_SILPROB,
            wip=_PHONE_WIP,
            fsgusefiller=False,  # pauses only between words: `grammar_transitions`
            bestpath=False,
            loglevel="FATAL",
        )
        for i, phone in enumerate(PHONES):
            self.decoder.add_word(_PREFIX + phone.lower(), phone, i == len(PHONES) - 1)
        # A one-word grammar: searching it (end_utt) after measuring the mean costs nothing.
        self.decoder.add_fsg("cmn", self.decoder.create_fsg("cmn", 0, 1, [(0, 1, 1.0, _SIL)]))
        self.in_utt = False

    def start(self, cmn: str, search: str = "aligned") -> None:
        """Start an utterance of `search` from the cepstral mean `cmn` (ends one running)."""
        d = self.decoder
        if self.in_utt:
            d.end_utt()
            self.in_utt = False
        d.reinit_feat()  # live CMN keeps sums that set_cmn alone does not clear
        d.set_cmn(cmn)
        d.activate_search(search)
        d.start_utt()
        self.in_utt = True

    def cepstral_mean(self, data: bytes) -> str:
        """The cepstral mean of the whole of `data` (16 kHz PCM bytes); ends the utterance."""
        from avatarcast.speech.recognizer import CMN_INIT

        d = self.decoder
        self.start(CMN_INIT, "cmn")
        d.process_raw(data, True, True)  # features only, normalised over the whole buffer
        mean = str(d.get_cmn(False))
        d.end_utt()
        self.in_utt = False
        return mean


_POOL: list[_PhoneDecoder] = []
_POOL_LOCK = threading.Lock()


_warming = False


def _take_decoder() -> _PhoneDecoder:
    with _POOL_LOCK:
        if _POOL:
            return _POOL.pop()
    return _PhoneDecoder()


def prewarm() -> None:
    """Load one decoder into the pool in the background (once per process).

    Loading takes ~0.6 CPU-s; done on the first audio-with-text chunk it would hold up the
    command channel that long, so live sessions call this when they open.
    """
    global _warming
    with _POOL_LOCK:
        if _warming or _POOL:
            return
        _warming = True

    def load() -> None:
        dec = _PhoneDecoder()
        with _POOL_LOCK:
            _POOL.append(dec)

    threading.Thread(target=load, name="aligner-prewarm", daemon=True).start()


def _give_back(dec: _PhoneDecoder) -> None:
    if dec.in_utt:
        dec.decoder.end_utt()
        dec.in_utt = False
    with _POOL_LOCK:
        if len(_POOL) < 4:
            _POOL.append(dec)


def frame_pose(segs: Sequence[Segment], n: int, fps: int, prev: MouthPose) -> MouthPose | None:
    """The pose of frame n from aligned phone segments; None if they do not reach its end."""
    t0, t1 = n / fps, (n + 1) / fps
    if not segs or segs[-1][1] < t1 - 1e-9:
        return None
    cover: dict[Shape, float] = {}
    opened = weight = 0.0
    for a, b, phone in segs:
        if b <= t0 or a >= t1:
            continue
        ov = min(b, t1) - max(a, t0)
        shape = Shape.X if phone == "SIL" else shape_of_arpabet(phone)
        cover[shape] = cover.get(shape, 0.0) + ov
        opened += ov * DEFAULT_OPEN[shape]
        weight += ov
    if not cover:
        return MouthPose(Shape.X, 0.0)
    closure = max(_CLOSURES, key=lambda s: cover.get(s, 0.0))
    if cover.get(closure, 0.0) >= _CLOSURE_MIN_COVER / fps - 1e-12:
        shape = closure
    else:
        # Ties go to the earlier shape (A … H before X), as in text_lipsync.frame_labels.
        shape = max(sorted(cover), key=lambda s: cover[s])
    if shape in (Shape.X, Shape.A):
        return MouthPose(shape, 0.0)
    target = opened / weight if weight else DEFAULT_OPEN[shape]
    if shape is Shape.G:
        target = min(target, DEFAULT_OPEN[Shape.G])
    value = target if prev.shape is Shape.X else prev.open + _EASE * (target - prev.open)
    return MouthPose(shape, round(min(1.0, max(0.0, value)), 4))


def _stuck_on_consonant(segs: Sequence[Segment], t: float) -> bool:
    """Whether the segment at time t is a consonant held longer than speech holds one."""
    for a, b, phone in reversed(segs):
        if a <= t < b:
            return phone != "SIL" and phone not in _VOWELS and b - a > _MAX_CONSONANT_S
        if b <= t:
            break
    return False


class AlignedLipSync:
    """Streaming mouth track of one utterance whose English words are known.

    Same contract as `StreamingLipSync`: `push` returns the newly committed frames (frame n
    once the audio up to (n + 1) / fps + lookahead is in), `finish` the rest, none revised.
    One instance per utterance (not reusable); `close` returns its decoder to the pool.
    """

    def __init__(
        self,
        text: str,
        fps: int = FRAME_RATE_HZ,
        lookahead_ms: int = MAX_LOOKAHEAD_MS,
        method: str = "model",
    ) -> None:
        self.text = text
        self.fps = fps
        self.fallback = StreamingLipSync(
            fps=fps, lookahead_ms=lookahead_ms, language="en", method=method
        )
        self.aligned_frames = 0  # frames whose shape came from the alignment
        self._n = 0
        self._fed = 0
        self._prev = MouthPose(Shape.X, 0.0)
        self._spf = SAMPLE_RATE_HZ // fps
        self._levels: list[float] = []  # dB of each whole frame received
        self._tail = np.zeros(0, np.int16)  # samples of the frame not yet whole
        self._floor_db = np.inf  # the quietest frame committed so far
        self._dec: _PhoneDecoder | None = None
        self._restarts = [round(t * SAMPLE_RATE_HZ) for t in _CMN_RESTARTS_S]
        self._audio: list[NDArray[np.int16]] = []  # kept until the last restart
        # push/finish run on the input thread; close() may come from the frame thread (an
        # interrupt) in the middle of a push: it never waits, the push gives the decoder back.
        self._busy = threading.Lock()
        self._closed = False
        try:
            self._dec = _take_decoder()
            d = self._dec.decoder
            from avatarcast.speech.recognizer import ALIGN_SILPROB

            trans, final = grammar_transitions(text, d.lookup_word, ALIGN_SILPROB)
            if final == 0:
                self._drop_decoder()  # no alignable word: recognition only
            else:
                from avatarcast.speech.recognizer import CMN_INIT

                d.add_fsg("aligned", d.create_fsg("aligned", 0, final, trans))
                self._dec.start(CMN_INIT)
        except (RuntimeError, ValueError):
            self._drop_decoder()

    @property
    def frames_committed(self) -> int:
        return self._n

    @property
    def lookahead_ms(self) -> int:
        return self.fallback.lookahead_ms

    def push(self, pcm: NDArray[np.int16]) -> list[MouthPose]:
        with self._busy:
            out = self._push(pcm)
            if self._closed:
                self._drop_decoder()
            return out

    def _push(self, pcm: NDArray[np.int16]) -> list[MouthPose]:
        heard = self.fallback.push(pcm)  # validates pcm, decides which frames are due
        pcm = np.asarray(pcm).reshape(-1)
        if self._dec is not None and pcm.size:
            try:
                self._decode(pcm)
            except RuntimeError:
                self._drop_decoder()
        self._fed += int(pcm.size)
        self._add_levels(pcm)
        return self._commit(heard, self._segments() if heard else [])

    def _decode(self, pcm: NDArray[np.int16]) -> None:
        """Feed `pcm` (audio from sample self._fed on); restart at the CMN restart times."""
        from avatarcast.speech.recognizer import _pcm_bytes

        assert self._dec is not None
        start = self._fed
        while pcm.size:
            if not self._restarts:
                self._dec.decoder.process_raw(_pcm_bytes(pcm, start), False, False)
                return
            part = pcm[: self._restarts[0] - start]
            self._dec.decoder.process_raw(_pcm_bytes(part, start), False, False)
            self._audio.append(part)
            start += part.size
            pcm = pcm[part.size :]
            if start == self._restarts[0]:
                self._restarts.pop(0)
                data = _pcm_bytes(np.concatenate(self._audio))
                self._dec.start(self._dec.cepstral_mean(data))
                self._dec.decoder.process_raw(data, False, False)
                if not self._restarts:
                    self._audio = []

    def _add_levels(self, pcm: NDArray[np.int16]) -> None:
        buf = np.concatenate([self._tail, pcm.astype(np.int16, copy=False)])
        whole = buf.size // self._spf * self._spf
        if whole:
            x = buf[:whole].astype(np.float64).reshape(-1, self._spf)
            self._levels += (10.0 * np.log10(np.mean(x * x, axis=1) + 1.0)).tolist()
        self._tail = buf[whole:]

    def finish(self) -> list[MouthPose]:
        with self._busy:
            out = self._finish()
            self._drop_decoder()
            return out

    def _finish(self) -> list[MouthPose]:
        heard = self.fallback.finish()
        if self._tail.size:  # the last frame, zero-padded as the audio engine pads it
            self._add_levels(np.zeros(self._spf - self._tail.size, np.int16))
        segs: list[Segment] = []
        if self._dec is not None:
            partial = self._segments()
            try:
                self._dec.decoder.end_utt()
                self._dec.in_utt = False
                segs = self._segments() or partial  # no final path: the text was not all said
            except RuntimeError:
                segs = partial
        return self._commit(heard, segs)

    def close(self) -> None:
        """Give the decoder back (also when the utterance is dropped before its end).

        Never blocks: during a push, that push gives it back when it ends."""
        self._closed = True
        if self._busy.acquire(blocking=False):
            try:
                self._drop_decoder()
            finally:
                self._busy.release()

    def _drop_decoder(self) -> None:
        if self._dec is not None:
            dec, self._dec = self._dec, None
            with contextlib.suppress(RuntimeError):  # a broken decoder is not pooled
                _give_back(dec)

    def _segments(self) -> list[Segment]:
        if self._dec is None:
            return []
        try:
            raw = self._dec.decoder.seg()
        except RuntimeError:
            return []
        out: list[Segment] = []
        for s in raw or ():
            word = str(s.word)
            phone = word[len(_PREFIX) :].upper() if word.startswith(_PREFIX) else "SIL"
            # end_frame is inclusive in pocketsphinx (10 ms frames).
            out.append((s.start_frame * 0.01, (s.end_frame + 1) * 0.01, phone))
        return out

    def _commit(self, heard: list[MouthPose], segs: list[Segment]) -> list[MouthPose]:
        out: list[MouthPose] = []
        for fb in heard:
            pose = frame_pose(segs, self._n, self.fps, self._prev)
            level = self._levels[self._n] if self._n < len(self._levels) else 0.0
            self._floor_db = min(self._floor_db, level)
            if (
                pose is None
                or (
                    pose.shape is Shape.X
                    and fb.shape is not Shape.X
                    and level - self._floor_db >= _PARKED_PAUSE_DB
                )
                or _stuck_on_consonant(segs, (self._n + 0.5) / self.fps)
            ):
                # Not reached yet, or a path that cannot be right there: parked in a pause
                # over loud speech (synthetic voices), or holding one consonant for longer
                # than speech does. Its final path is right, but frames cannot wait for it.
                pose = fb
            else:
                self.aligned_frames += 1
                pose = self._no_flicker(pose, segs)
            out.append(pose)
            self._prev = pose
            self._n += 1
        return out

    def _no_flicker(self, pose: MouthPose, segs: list[Segment]) -> MouthPose:
        """A one-frame rest between two frames of the same speech shape takes that shape,
        as in the exact-timing track (`text_lipsync`); the path has the next frame already."""
        left = self._prev.shape
        if pose.shape is not Shape.X or left in (Shape.X, *_CLOSURES):
            return pose
        right = frame_pose(segs, self._n + 1, self.fps, pose)
        if right is None or right.shape is not left:
            return pose
        return MouthPose(left, round(self._prev.open + _EASE * (right.open - self._prev.open), 4))

    def __del__(self) -> None:  # an utterance dropped without finish() (interrupt)
        with contextlib.suppress(Exception):
            self.close()
