"""The drive channel of one session: commands in, speaking statuses out (spec section 3).

Transport-free: the WebSocket route feeds `handle_raw`, the HTTP route `handle_command`, and
the live stream calls `on_frame` for every frame right after it is on the stream. Statuses
follow what viewers see, never what was received: `AudioStart` goes out for the frame whose
engine events hold START, `AudioOver` for the frame holding END.

Input order. Utterances play in the order their first message was accepted. Only the *head*
of the input queue is handed to the engine (the engine appends streamed audio to whichever
utterance is open, so a second one must wait here until the head's input is complete); the
others are kept here, counted in the same bounded audio budget (`max_audio_buffer_s`).
An interrupt cuts everything: the engine's queue and ours.

Parts: `drive_messages` (wire format, field checks), `drive_state` (one request),
`drive_status` (frames → statuses), `drive_outbox` (one socket, ordering, replay).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

from avatarcast import SAMPLE_RATE_HZ
from avatarcast.codes import public_reason
from avatarcast.errors import (
    AudioInputError,
    AvatarcastError,
    RateLimitError,
    RequestError,
    SessionClosed,
    SessionNotStarted,
    TextInputError,
    TtsError,
    WrongTime,
)
from avatarcast.media import FrameMeta
from avatarcast.sessions.drive_messages import (
    OUTPUT_NOTICE,
    AudioChunk,
    Command,
    FinalType,
    TextFragment,
    TextRequest,
    echo_ids,
    error_message,
    parse_audio,
    parse_fragment,
    parse_json,
    parse_request,
    parse_text,
    payload_of,
    speakable,
    split_sentences,
)
from avatarcast.sessions.drive_outbox import Outbox, Sender
from avatarcast.sessions.drive_state import Kind, Utterance
from avatarcast.sessions.drive_status import Statuses
from avatarcast.sessions.handle import HostHandle
from avatarcast.settings import Settings
from avatarcast.stream.clock import Clock

log = logging.getLogger(__name__)

KNOWN_FINISHED = 256  # finished ReqIds remembered, so a reused one is refused
MAX_PENDING_TEXT_CHARS = 20_000  # streamed text not yet spoken
_FINAL_REASONS = {
    FinalType.CLIENT: "the client sent IsFinal",
    FinalType.TIMEOUT: "nothing arrived within StreamMaxInterval",
    FinalType.INTERRUPTED: "it was interrupted",
}


class DriveOwner(Protocol):
    """What the channel reads of its session (a `Session` is one)."""

    @property
    def id(self) -> str: ...

    @property
    def is_open(self) -> bool: ...

    @property
    def started(self) -> bool: ...

    @property
    def voice(self) -> str | None: ...

    @property
    def stream_max_interval_ms(self) -> int: ...


class DriveChannel:
    def __init__(
        self,
        session: DriveOwner,
        host: HostHandle,
        settings: Settings,
        clock: Clock,
        *,
        on_activity: Callable[[], None] = lambda: None,
    ) -> None:
        self._session = session
        self._host = host
        self._settings = settings
        self._clock = clock
        self._on_activity = on_activity
        self._lock = asyncio.Lock()  # one command at a time mutates the queues and the engine
        self._known: OrderedDict[str, Utterance] = OrderedDict()  # ReqId → request
        self._finished: deque[str] = deque()
        self._ranks = itertools.count(1)
        self._inputs: deque[Utterance] = deque()  # requests still taking input, in play order
        self._stuck = False  # the engine refused buffered audio; retry on a later frame
        self._recent: deque[float] = deque()  # arrival times within the last second
        self._out = Outbox(session.id)
        self._st = Statuses(session.id, self._out, self._forget)
        self._closed = False

    # ---- transport side ---------------------------------------------------------------------
    @property
    def speak_status(self) -> str:
        """`SpeakStatus` for statsession: the last status sent, "Idle" before any."""
        return self._st.last

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def busy(self) -> bool:
        """Something is speaking or waits to be spoken (a request whose Over is not sent).

        Speaking is activity: the session's idle limit and the socket's do not run meanwhile.
        """
        return not self._closed and any(not u.over for u in self._known.values())

    def attach(self, send: Sender) -> asyncio.Event:
        """Make `send` the socket of this channel; replay the last statuses to it.

        Returns an event set when this socket is replaced by a newer one or the channel
        closes: the transport then closes its socket (one channel per session).
        """
        return self._out.attach(send)

    def notice(self, msg: dict[str, Any]) -> None:
        """An out-of-band message to the current socket (e.g. an output's state); not replayed."""
        self._out.post(msg)

    def media_failed(self, code: int, reason: str) -> None:
        """The session's media died (status 4): a Type 10 notice with `Output` "session"."""
        self.notice(
            {
                "Type": OUTPUT_NOTICE,
                "SessionId": self._session.id,
                "Output": "session",
                "State": "failed",
                "ErrorCode": code,
                "Message": reason,
            }
        )

    def output_notice(self, event: dict[str, Any]) -> None:
        """An output's state changed: a Type 10 notice (ours, docs/outputs.md)."""
        self.notice({"Type": OUTPUT_NOTICE, "SessionId": self._session.id, **event})

    def detach(self, send: Sender) -> None:
        """The socket of `send` is gone (a no-op if it was already replaced)."""
        self._out.detach(send)

    async def flush(self) -> None:
        """Wait until every message posted so far went to the socket (tests, shutdown)."""
        await self._out.flush()

    async def close(self) -> None:
        self._closed = True
        for u in self._known.values():
            self._cancel_timer(u)
        await self._out.close()

    # ---- commands in --------------------------------------------------------------------------
    async def handle_raw(self, text: str) -> None:
        """One upstream frame; any failure becomes exactly one Type 9 message, never a raise."""
        message: Any = None
        try:
            try:
                self._check_rate()
            except RateLimitError:
                with contextlib.suppress(AvatarcastError):
                    message = parse_json(text)
                raise
            message = parse_json(text)
            await self._dispatch(payload_of(message))
        except Exception as exc:
            self._post_error(exc, *echo_ids(message))

    async def handle_command(self, payload: dict[str, Any]) -> dict[str, Any]:
        """The HTTP form: the same dispatch; raises AvatarcastError instead of a Type 9."""
        self._check_rate()
        req_id = await self._dispatch(payload)
        return {"ReqId": req_id, "SessionId": self._session.id}

    async def _dispatch(self, payload: dict[str, Any]) -> str:
        if self._closed or not self._session.is_open:
            raise SessionClosed(f"session {self._session.id} is closed")
        if not self._session.started:
            raise SessionNotStarted(f"session {self._session.id} was not started")
        req = parse_request(payload, self._session.id)
        self._on_activity()  # any well-formed drive command renews the session's idle timer
        if req.command is Command.SEND_HEARTBEAT:
            return req.req_id
        max_chars = self._settings.max_text_chars
        async with self._lock:
            if req.command is Command.SEND_AUDIO:
                await self._audio(req.req_id, parse_audio(req.data))
            elif req.command is Command.SEND_TEXT:
                await self._text(req.req_id, parse_text(req.data, max_chars))
            else:
                await self._stream(req.req_id, parse_fragment(req.data, max_chars))
        return req.req_id

    def _check_rate(self) -> None:
        now = self._clock.now()
        while self._recent and self._recent[0] <= now - 1.0:
            self._recent.popleft()
        limit = self._settings.max_messages_per_s
        if len(self._recent) >= limit:
            raise RateLimitError(f"more than {limit} messages in one second; message dropped")
        self._recent.append(now)

    def _existing(self, req_id: str, kind: Kind, seq: int) -> Utterance:
        """The open request `req_id` of `kind`, checked to take message number `seq` next."""
        u = self._known[req_id]
        if u.kind is not kind:
            raise RequestError(f"ReqId {req_id} already names a {u.kind.command} request")
        if u.final:
            why = _FINAL_REASONS[FinalType.INTERRUPTED if u.cut else u.final_type]
            raise WrongTime(f"request {req_id} already ended ({why}); Seq {seq} dropped")
        if seq == u.last_seq:
            raise RequestError(f"Data.Seq {seq} repeats the previous message")
        if seq < u.last_seq:
            raise RequestError(f"Data.Seq {seq} goes back (last accepted {u.last_seq})")
        if seq > u.last_seq + 1:
            raise RequestError(f"Data.Seq {seq} leaves a gap: expected {u.last_seq + 1}")
        return u

    def _new(self, req_id: str, kind: Kind, seq: int | None) -> Utterance:
        if seq is not None and seq != 1:
            raise RequestError(f"Data.Seq {seq}: a new request ({req_id}) starts at Seq 1")
        return Utterance(req_id, kind, rank=next(self._ranks))

    async def _audio(self, req_id: str, chunk: AudioChunk) -> None:
        if chunk.seq is None:  # a bare {"Interrupt": true}
            await self._interrupt()
            return
        u = self._known.get(req_id)
        if u is None:
            u = self._new(req_id, Kind.AUDIO, chunk.seq)
            if chunk.pcm.size == 0:
                raise RequestError("Data.Audio is empty in the first chunk of an utterance")
            self._check_room(chunk.pcm.size, after_interrupt=chunk.interrupt)
            if chunk.interrupt:
                await self._interrupt()
            self._open(u)
        else:
            u = self._existing(req_id, Kind.AUDIO, chunk.seq)
            self._check_room(chunk.pcm.size)
        u.last_seq = chunk.seq
        if chunk.text is not None:
            u.text = chunk.text
        if chunk.pcm.size:
            u.pending.append(chunk.pcm)
            u.accepted_samples += chunk.pcm.size
        if chunk.sei is not None:
            u.sei = chunk.sei
        self._renew(u)
        if chunk.is_final:
            u.final_type = FinalType.CLIENT
            self._cancel_timer(u)
        await self._advance()
        if u.final:
            self._st.input_final(u)
        if chunk.text_error is not None:  # after the chunk was taken: its audio plays
            self._post_error(
                RequestError(
                    f"{chunk.text_error}; Data.Text ignored: the chunk was accepted and plays "
                    "with a recognised mouth (do not resend it)"
                ),
                req_id,
                chunk.seq,
            )

    async def _text(self, req_id: str, req: TextRequest) -> None:
        if req_id in self._known:
            raise RequestError(f"ReqId {req_id} was already used by an earlier request")
        await self._interrupt()  # spec: a new text interrupts; an empty one only stops
        if not req.text.strip():
            return
        u = Utterance(
            req_id, Kind.TEXT, rank=next(self._ranks), last_seq=1, final_type=FinalType.CLIENT
        )
        self._st.uids[req_id] = u  # before queueing: a frame may start it at once
        voice = req.voice or self._session.voice
        try:  # returns once the first sentence is queued (long text goes on meanwhile)
            await self._host.say_text(req.text, voice, req_id, None)
        except BaseException:
            del self._st.uids[req_id]
            raise
        self._known[req_id] = u
        self._st.announce(u)

    async def _stream(self, req_id: str, frag: TextFragment) -> None:
        u = self._known.get(req_id)
        if u is None:
            u = self._new(req_id, Kind.STREAM, frag.seq)
            u.voice = frag.voice
            if frag.interrupt:
                await self._interrupt()
            self._open(u)
        else:
            u = self._existing(req_id, Kind.STREAM, frag.seq)
            waiting = len(u.text_rest) + sum(len(s) for s in u.sentences)
            if waiting + len(frag.text) > MAX_PENDING_TEXT_CHARS:
                raise TextInputError(
                    f"streamed text buffer full ({waiting} characters not yet spoken); "
                    f"Seq {frag.seq} dropped"
                )
        u.last_seq = frag.seq
        sentences, u.text_rest = split_sentences(u.text_rest + frag.text)
        u.sentences.extend(sentences)
        self._renew(u)
        if frag.is_final:
            self._end_stream_text(u)
            u.final_type = FinalType.CLIENT
            self._cancel_timer(u)
        await self._advance()
        if u.final:
            self._st.input_final(u)

    # ---- feeding the engine -----------------------------------------------------------------
    def _open(self, u: Utterance) -> None:
        self._known[u.req_id] = u
        self._inputs.append(u)
        u.feeding = True
        if u.kind is Kind.AUDIO:
            self._st.uids[u.req_id] = u
        self._st.announce(u)
        self._renew(u)
        u.timer = asyncio.create_task(self._watch(u), name=f"drive-timeout-{u.req_id}")

    def _end_stream_text(self, u: Utterance) -> None:
        if speakable(u.text_rest):
            u.sentences.append(u.text_rest.strip())
        u.text_rest = ""

    async def _advance(self) -> None:
        """Hand the head's input to the engine; move to the next request once it is complete."""
        while self._inputs:
            head = self._inputs[0]
            if not await self._feed(head):
                return
            if not head.final:
                return
            if head.kind is Kind.AUDIO:
                await self._host.end_audio()
            self._inputs.popleft().feeding = False
            self._st.stream_done(head)

    async def _feed(self, u: Utterance) -> bool:
        if u.kind is Kind.AUDIO:
            if not u.pending:
                return True
            pcm = u.pending[0] if len(u.pending) == 1 else np.concatenate(u.pending)
            u.pending = []
            try:
                await self._host.push_audio(pcm, u.req_id, u.text, u.sei)
            except AudioInputError:  # the engine's own bound is tighter than ours: keep it
                u.pending = [pcm]
                self._stuck = True
                return False
            return True
        while u.sentences:
            sentence = u.sentences.pop(0)
            uid = f"{u.req_id}.{u.n_spoken + 1}"
            self._st.uids[uid] = u
            try:
                voice = u.voice or self._session.voice
                await self._host.say_text(sentence, voice, uid, None)
            except Exception as exc:  # one unspeakable sentence must not end the stream
                del self._st.uids[uid]
                err = exc if isinstance(exc, AvatarcastError) else TtsError(str(exc))
                self._post_error(err, u.req_id, u.last_seq, f"sentence {sentence[:40]!r}: ")
                continue
            u.n_spoken += 1
        return True

    def _check_room(self, n: int, *, after_interrupt: bool = False) -> None:
        limit_s = self._settings.max_audio_buffer_s
        queued = 0
        if not after_interrupt:
            queued = sum(
                max(0, u.accepted_samples - u.played_samples)
                for u in self._known.values()
                if u.kind is Kind.AUDIO and not u.over and not u.cut
            )
        if queued + n > limit_s * SAMPLE_RATE_HZ:
            raise AudioInputError(
                f"audio buffer full: {queued / SAMPLE_RATE_HZ:.1f} s waiting to play, at most "
                f"{limit_s:g} s; chunk dropped, send it again with the same Seq later"
            )

    async def _interrupt(self) -> None:
        """Cut every request; each one's Over waits for a frame made after the cut."""
        # The host also drops what its outputs queued and not sent: cut speech never plays.
        after = await self._host.interrupt()
        cut = [u for u in self._known.values() if not (u.over or u.cut)]
        for u in cut:
            u.cut = True
            if not u.final:
                u.final_type = FinalType.INTERRUPTED
            u.pending, u.sentences, u.text_rest, u.feeding = [], [], "", False
            self._cancel_timer(u)
        self._st.cut(cut, after)
        self._inputs.clear()
        self._stuck = False

    # ---- StreamMaxInterval --------------------------------------------------------------------
    def _renew(self, u: Utterance) -> None:
        u.deadline = self._clock.now() + self._session.stream_max_interval_ms / 1000.0

    def _cancel_timer(self, u: Utterance) -> None:
        if u.timer is not None and u.timer is not asyncio.current_task():
            u.timer.cancel()
        u.timer = None

    async def _watch(self, u: Utterance) -> None:
        """End `u` when its input stops for StreamMaxInterval; deadlines move with each message."""
        try:
            while True:
                await self._clock.sleep_until(u.deadline)
                if self._clock.now() >= u.deadline:
                    break
            async with self._lock:
                if u.final or u.over or self._closed:
                    return
                u.timer = None
                u.final_type = FinalType.TIMEOUT
                self._end_stream_text(u)
                await self._advance()
                self._st.input_final(u)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("session %s: StreamMaxInterval of %s failed", self._session.id, u.req_id)

    async def _retry(self) -> None:
        async with self._lock:
            await self._advance()

    # ---- frames → statuses ----------------------------------------------------------------
    def on_frame(self, frame: FrameMeta) -> None:
        """Called on the event loop for every frame right after it is on the stream."""
        if self._closed:
            return
        self._st.on_frame(frame)
        if self._stuck:
            self._stuck = False
            asyncio.get_running_loop().create_task(self._retry())

    def _forget(self, u: Utterance) -> None:
        """`u` is over: stop its timer; remember its ReqId a while, so reuse is refused."""
        self._cancel_timer(u)
        self._finished.append(u.req_id)
        while len(self._finished) > KNOWN_FINISHED:
            self._known.pop(self._finished.popleft(), None)

    # ---- messages out ---------------------------------------------------------------------------
    def _post_error(self, exc: BaseException, req_id: str, seq: int, prefix: str = "") -> None:
        code, reason = public_reason(
            exc,
            log,
            f"session {self._session.id}: drive message failed",
            "internal error; the session keeps streaming",
        )
        self._out.post(error_message(self._session.id, req_id, seq, code, prefix + reason))
