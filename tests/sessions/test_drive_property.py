"""Hypothesis throws random and malformed messages at the drive channel.

Whatever arrives: `handle_raw` never raises, each bad message gets exactly one Type 9 (and a
good one none), and the audio of the accepted chunks plays in full, in order, each utterance
behind the one whose first chunk came earlier.
"""

from __future__ import annotations

import asyncio
import base64
import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from drive_harness import REQ, SID, Harness, audio, same_audio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from avatarcast.avatars.registry import load_avatar
from avatarcast.engine.timeline import Engine

ENGINE = Engine(load_avatar("default"))  # shared: every example leaves it idle
IDS = REQ[:3]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner),
    max_leaves=8,
)


@dataclass
class Chunk:
    """A well-formed SEND_AUDIO message; whether it is accepted depends on Seq and state."""

    req_id: str
    seq: int | None  # None: the next Seq of its request (what a good client sends)
    pcm: np.ndarray
    final: bool


@dataclass
class Bad:
    """A message that is wrong whatever the state."""

    raw: str


@dataclass
class Model:
    last_seq: dict[str, int] = field(default_factory=dict)
    final: set[str] = field(default_factory=set)
    audio: dict[str, list[np.ndarray]] = field(default_factory=dict)  # in acceptance order

    def next_seq(self, req_id: str) -> int:
        return self.last_seq.get(req_id, 0) + 1

    def accepts(self, c: Chunk) -> bool:
        if c.req_id in self.final:
            return False
        expected = self.last_seq.get(c.req_id, 0) + 1
        return c.seq == expected and (c.pcm.size > 0 or (c.final and expected > 1))

    def take(self, c: Chunk, seq: int) -> None:
        self.last_seq[c.req_id] = seq
        self.audio.setdefault(c.req_id, []).append(c.pcm)
        if c.final:
            self.final.add(c.req_id)


@st.composite
def chunks(draw: st.DrawFn) -> Chunk:
    n = draw(st.integers(0, 400) | st.just(0) | st.integers(1, 40))
    samples = draw(st.lists(st.integers(-32768, 32767), min_size=n, max_size=n))
    return Chunk(
        draw(st.sampled_from(IDS)),
        draw(st.none() | st.none() | st.integers(-1, 6)),
        np.array(samples, np.int16),
        draw(st.integers(0, 4)) == 0 if n else True,  # mostly open: utterances overlap
    )


def _payload(data: Any, **over: Any) -> str:
    p = {"ReqId": IDS[0], "SessionId": SID, "Command": "SEND_AUDIO", "Data": data, **over}
    return json.dumps({"Header": {}, "Payload": p})


bad_messages = st.one_of(
    json_values.map(json.dumps),  # random JSON: never a valid envelope
    st.text(max_size=20).filter(lambda s: not s.strip().startswith(("{", "[", '"'))),
    st.binary(max_size=30).map(lambda b: _payload({"Audio": "!" + b.hex(), "Seq": 1})),
    st.binary(max_size=30).map(
        lambda b: _payload({"Audio": base64.b64encode(b + b"x" * (1 - len(b) % 2)).decode()})
    ),
    json_values.filter(lambda v: not isinstance(v, int) or isinstance(v, bool)).map(
        lambda v: _payload({"Audio": "AAA=", "Seq": v}) if v is not None else _payload([v])
    ),
    json_values.filter(lambda v: not isinstance(v, str)).map(lambda v: _payload({}, ReqId=v)),
    st.text(max_size=12).map(lambda c: _payload({}, Command="X" + c)),
    st.text(max_size=40).map(lambda s: _payload({"Audio": "AAA=", "Seq": 1}, SessionId="!" + s)),
).map(Bad)


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    st.lists(st.integers(0, 2).flatmap(lambda i: bad_messages if i == 0 else chunks()), max_size=40)
)
def test_random_messages_never_lose_accepted_audio(messages: list[Chunk | Bad]) -> None:
    asyncio.run(asyncio.wait_for(_run(messages), 30))


async def _run(messages: list[Chunk | Bad]) -> None:
    h = Harness(engine=ENGINE, max_messages_per_s=10**6)
    model = Model()
    for m in messages:
        if isinstance(m, Bad):
            back = await h.send(m.raw)  # must not raise
            assert [x["Type"] for x in back] == [9], (m, back)
            continue
        if m.seq is None:
            m.seq = model.next_seq(m.req_id)
        ok = model.accepts(m)
        n_errors = len(h.errors())
        await h.send(audio(m.req_id, m.seq, m.pcm if m.pcm.size else None, m.final))
        assert len(h.errors()) == n_errors + (0 if ok else 1), (m, h.out[-1:])
        if ok:
            model.take(m, m.seq)
    for r in reversed(IDS):  # close what is open, newest first: play order must not change
        if r in model.last_seq and r not in model.final:
            seq = model.last_seq[r] + 1
            await h.send(audio(r, seq, None, True))
            model.take(Chunk(r, seq, np.zeros(0, np.int16), True), seq)
    await h.until_idle()
    assert not [e for e in h.errors() if e["ErrorCode"] not in (100001, 110015)]
    order = list(model.audio)  # dicts keep insertion order: first acceptance
    for r in order:
        assert same_audio(h.played(r), np.concatenate(model.audio[r])), r
        assert [s for s, _ in h.statuses(r)] == [
            "WaitingAudioStart",
            "AudioStart",
            "WaitingAudioOver",
            "AudioOver",
        ]
    starts = [h.frame_of_event("start", r) for r in order]
    assert starts == sorted(starts)
    played_ids = [f.utterance_id for f in h.frames if f.utterance_id]
    assert played_ids == sorted(played_ids, key=order.index)  # never interleaved
    await h.channel.close()
