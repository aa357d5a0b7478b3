"""From frames on the stream to speaking statuses (downstream Type 3).

Statuses of one request, in order: Waiting{X}Start → {X}Start → Waiting{X}Over → {X}Over, with
X = Audio or Text. {X}Start goes out for the frame whose engine events hold START, {X}Over for
the frame holding END: what viewers see, not what was received. A request cut before it
started goes straight to {X}Over with FinalType 3. Streamed text adds SentenceStart and
SentenceOver per sentence between TextStart and TextOver.

Interrupts: the engine reports INTERRUPTED only for the utterance it was playing, and frames
made before the cut may still be on their way to the stream. So every cut request gets its
Over at the first frame made after the cut (its index is at least the engine's frame counter
read right after `interrupt()`, or it carries the INTERRUPTED event).
"""

from __future__ import annotations

from collections.abc import Callable

from avatarcast import SAMPLES_PER_FRAME
from avatarcast.media import FrameMeta, SpeechEvent
from avatarcast.sessions.drive_messages import FinalType, status_message
from avatarcast.sessions.drive_outbox import Outbox
from avatarcast.sessions.drive_state import Kind, Utterance


class Statuses:
    def __init__(self, session_id: str, out: Outbox, on_over: Callable[[Utterance], None]) -> None:
        self._session_id = session_id
        self._out = out
        self._on_over = on_over  # the channel forgets finished requests, cancels timers
        self.uids: dict[str, Utterance] = {}  # engine utterance id → its request
        self._cut: list[Utterance] = []
        self._cut_frame = 0
        self.last = "Idle"  # `SpeakStatus` for statsession

    def cut(self, requests: list[Utterance], next_frame_index: int) -> None:
        """`requests` were interrupted; frames from `next_frame_index` on were made after."""
        self._cut.extend(requests)
        self._cut_frame = next_frame_index

    def on_frame(self, frame: FrameMeta) -> None:
        interrupted = any(ev is SpeechEvent.INTERRUPTED for ev, _ in frame.events)
        if self._cut and (interrupted or frame.index >= self._cut_frame):
            cut, self._cut = self._cut, []
            for u in cut:
                self.finish(u, FinalType.INTERRUPTED)
        playing = self.uids.get(frame.utterance_id) if frame.utterance_id else None
        if playing is not None:
            playing.played_samples += SAMPLES_PER_FRAME
        for ev, uid in frame.events:
            found = self.uids.get(uid)
            if found is None or found.over:
                continue
            u = found
            if ev is SpeechEvent.START:
                self.announce(u)
                self._status(u, u.kind.prefix + "Start")
                if u.kind is Kind.STREAM:
                    self._status(u, "SentenceStart", once=False)
                if u.final:
                    self.input_final(u)
            elif ev is SpeechEvent.END:
                if u.kind is Kind.STREAM:
                    self._status(u, "SentenceOver", once=False)
                    u.n_over += 1
                    del self.uids[uid]
                    self.stream_done(u)
                else:
                    self.finish(u, u.final_type)

    def announce(self, u: Utterance) -> None:
        """The request is accepted and queued."""
        self._status(u, f"Waiting{u.kind.prefix}Start")

    def input_final(self, u: Utterance) -> None:
        """All input of `u` is in; once it also started, say it is waiting for its end."""
        if u.prefix_sent("Start"):
            self._status(u, f"Waiting{u.kind.prefix}Over")
        self.stream_done(u)

    def stream_done(self, u: Utterance) -> None:
        """A text stream is over when its input is and every sentence given was shown."""
        if (
            u.kind is Kind.STREAM
            and u.final
            and not u.cut
            and not u.feeding
            and not u.sentences
            and u.n_over == u.n_spoken
        ):
            self.finish(u, u.final_type)

    def finish(self, u: Utterance, final_type: int) -> None:
        if u.over:
            return
        u.over = True
        if u.prefix_sent("Start"):
            self._status(u, f"Waiting{u.kind.prefix}Over")
        self._status(u, f"{u.kind.prefix}Over", final_type=final_type)
        for uid in [k for k, owner in self.uids.items() if owner is u]:
            del self.uids[uid]
        self._on_over(u)

    def _status(
        self, u: Utterance, name: str, *, final_type: int | None = None, once: bool = True
    ) -> None:
        if once and name in u.sent:
            return
        u.sent.add(name)
        u.out_seq += 1
        self.last = name
        msg = status_message(self._session_id, u.req_id, u.out_seq, name, final_type)
        self._out.status(u.rank, u.req_id, msg)
