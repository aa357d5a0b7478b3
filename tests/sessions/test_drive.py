"""The drive channel on a real engine: statuses follow frames, queueing, timeouts, errors."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from drive_harness import REQ, SID, Harness, arun, audio, like_speech, msg, same_audio, text

from avatarcast.errors import SessionNotStarted
from avatarcast.sessions.drive_messages import split_sentences
from avatarcast.speech.tts import get_backend

CHUNK = 2560  # 160 ms


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    return get_backend("espeak").synthesize("Bob made a map of the bay.", voice="en-us").pcm


def chunks(pcm: np.ndarray) -> list[np.ndarray]:
    return [pcm[i : i + CHUNK] for i in range(0, pcm.size, CHUNK)]


async def send_utterance(h: Harness, req_id: str, pcm: np.ndarray, final: bool = True) -> int:
    parts = chunks(pcm)
    for seq, part in enumerate(parts, 1):
        assert await h.send(audio(req_id, seq, part)) == [] or seq == 1
    if final:
        assert not [
            m for m in await h.send(audio(req_id, len(parts) + 1, None, True)) if m["Type"] == 9
        ]
    return len(parts)


@arun
async def test_audio_statuses_follow_the_frames(speech: np.ndarray) -> None:
    h = Harness()
    r = REQ[0]
    first = await h.send(audio(r, 1, speech[:CHUNK]))
    assert first == [
        {"Type": 3, "SessionId": SID, "ReqId": r, "Seq": 1, "SpeakStatus": "WaitingAudioStart"}
    ]
    for seq, part in enumerate(chunks(speech)[1:], 2):
        await h.send(audio(r, seq, part))
    await h.until_status(r, "AudioStart")
    # AudioStart went out right after the frame holding START, not when audio arrived.
    assert h.sent_frame(r, "AudioStart") == h.frame_of_event("start", r) == h.frames[-1].index
    assert h.statuses(r) == [("WaitingAudioStart", None), ("AudioStart", None)]
    n = len(chunks(speech))
    await h.send(audio(r, n + 1, None, final=True))
    assert h.statuses(r)[-1] == ("WaitingAudioOver", None)
    await h.until_status(r, "AudioOver")
    assert h.sent_frame(r, "AudioOver") == h.frame_of_event("end", r) == h.frames[-1].index
    assert h.statuses(r) == [
        ("WaitingAudioStart", None),
        ("AudioStart", None),
        ("WaitingAudioOver", None),
        ("AudioOver", 1),
    ]
    assert [m["Seq"] for m in h.out] == [1, 2, 3, 4]  # numbers the statuses of one request
    assert same_audio(h.played(r), speech)
    assert h.channel.speak_status == "AudioOver"
    assert h.activity == n + 1 and not h.errors()


@arun
async def test_stream_max_interval_ends_the_utterance_with_final_type_2(
    speech: np.ndarray,
) -> None:
    h = Harness(interval_ms=2000)
    r = REQ[1]
    parts = chunks(speech)
    await h.send(audio(r, 1, parts[0]))
    await h.send(audio(r, 2, parts[1]))
    h.clock.advance(1.9)
    await h.settle()
    assert await h.send(audio(r, 3, parts[2])) == []  # still open: the deadline moved
    h.clock.advance(1.9)
    await h.settle()
    assert await h.send(audio(r, 4, parts[3])) == []
    h.clock.advance(2.01)
    await h.settle()
    late = await h.send(audio(r, 5, parts[4]))
    assert [(m["Type"], m["ErrorCode"], m["Seq"]) for m in late] == [(9, 110015, 5)]
    assert "StreamMaxInterval" in late[0]["ErrorMessage"]
    await h.until_status(r, "AudioOver")
    assert h.statuses(r)[-1] == ("AudioOver", 2)
    assert same_audio(h.played(r), np.concatenate(parts[:4]))  # everything accepted played


@arun
async def test_interrupt_cuts_current_and_queued_with_final_type_3(speech: np.ndarray) -> None:
    h = Harness()
    a, b, stop = REQ[2], REQ[3], REQ[4]
    await send_utterance(h, a, speech)
    await send_utterance(h, b, speech[:8000])
    await h.until_status(a, "AudioStart")
    await h.step(5)
    back = await h.send(msg(stop, "SEND_AUDIO", {"Interrupt": True}))
    assert back == []  # the Over statuses wait for a frame made after the cut
    await h.step(1)
    assert h.statuses(a)[-1] == ("AudioOver", 3)
    assert h.statuses(b) == [("WaitingAudioStart", None), ("AudioOver", 3)]
    assert h.frames[-1].utterance_id is None and not h.frames[-1].audio.any()
    assert h.statuses(stop) == []
    late = await h.send(audio(a, 99, speech[:CHUNK]))
    assert late[0]["ErrorCode"] == 110015 and "interrupted" in late[0]["ErrorMessage"]


@arun
async def test_interrupt_with_audio_barges_in(speech: np.ndarray) -> None:
    h = Harness()
    a, b = REQ[5], REQ[6]
    await send_utterance(h, a, speech)
    await h.until_status(a, "AudioStart")
    await h.send(audio(b, 1, speech[:6000], final=True, Interrupt=True))
    await h.until_status(b, "AudioOver")
    assert h.statuses(a)[-1] == ("AudioOver", 3)
    assert h.frame_of_event("start", b) > h.sent_frame(a, "AudioOver") - 1
    assert same_audio(h.played(b), speech[:6000])


@arun
async def test_a_second_utterance_queues_behind_the_open_one(speech: np.ndarray) -> None:
    h = Harness()
    a, b = REQ[7], REQ[8]
    pa, pb = speech, speech[::-1].copy()
    parts = chunks(pa)
    for seq, part in enumerate(parts[:3], 1):
        await h.send(audio(a, seq, part))
    await send_utterance(h, b, pb)  # arrives complete while `a` is still open
    assert h.statuses(b) == [("WaitingAudioStart", None)]
    await h.step(10)
    for seq, part in enumerate(parts[3:], 4):
        await h.send(audio(a, seq, part))
        await h.step(2)
    await h.send(audio(a, len(parts) + 1, None, True))
    await h.until_status(b, "AudioOver")
    assert same_audio(h.played(a), pa) and same_audio(h.played(b), pb)
    assert h.frame_of_event("start", b) == h.frame_of_event("end", a) + 1
    assert [s for s, _ in h.statuses(a)] == [s for s, _ in h.statuses(b)]


@arun
async def test_text_statuses_and_a_new_text_interrupts() -> None:
    h = Harness()
    a, b, stop = REQ[9], REQ[10], REQ[11]
    await h.send(text(a, "Bob made a map of the bay and a boat."))
    await h.until_status(a, "TextStart")
    assert h.statuses(a) == [
        ("WaitingTextStart", None),
        ("TextStart", None),
        ("WaitingTextOver", None),
    ]
    await h.send(text(b, "A map."))
    await h.until_status(b, "TextOver")
    assert h.statuses(a)[-1] == ("TextOver", 3)
    assert h.statuses(b) == [
        ("WaitingTextStart", None),
        ("TextStart", None),
        ("WaitingTextOver", None),
        ("TextOver", 1),
    ]
    expected = get_backend("espeak").synthesize("A map.").pcm
    assert like_speech(h.played(b), expected)
    # Empty text + Interrupt stops speaking.
    await h.send(text(REQ[12], "Bob made a map of the bay and a boat."))
    await h.until_status(REQ[12], "TextStart")
    assert await h.send(text(stop, "", interrupt=True)) == []
    await h.step(1)
    assert h.statuses(REQ[12])[-1] == ("TextOver", 3)
    assert not h.errors()


@arun
async def test_stream_text_speaks_sentences_as_they_complete() -> None:
    h = Harness()
    r = REQ[13]
    send = [("Hello there. How", False), (" are you? Fi", False), ("ne", True)]
    for seq, (frag, final) in enumerate(send, 1):
        data = {"Text": frag, "Seq": seq, "IsFinal": final}
        assert [m["Type"] for m in await h.send(msg(r, "SEND_STREAMTEXT", data))] in ([], [3])
    await h.until_status(r, "TextOver")
    assert h.statuses(r) == [
        ("WaitingTextStart", None),
        ("TextStart", None),
        ("SentenceStart", None),
        ("WaitingTextOver", None),
        ("SentenceOver", None),
        ("SentenceStart", None),
        ("SentenceOver", None),
        ("SentenceStart", None),
        ("SentenceOver", None),
        ("TextOver", 1),
    ]
    tts = get_backend("espeak")
    for i, sentence in enumerate(["Hello there.", "How are you?", "Fine"], 1):
        assert like_speech(h.played(f"{r}.{i}"), tts.synthesize(sentence).pcm)


def test_sentence_cutting() -> None:
    assert split_sentences("你好。今天天气很好！明天") == (["你好。", "今天天气很好！"], "明天")
    assert split_sentences("Pi is 3.14 and e is 2.") == ([], "Pi is 3.14 and e is 2.")
    assert split_sentences("One. Two? ...  Three") == (["One.", "Two?"], "  Three")


@arun
async def test_reattach_replays_the_statuses_of_the_last_three_requests(
    speech: np.ndarray,
) -> None:
    h = Harness()
    ids = REQ[14:18]
    for r in ids:
        await send_utterance(h, r, speech[:3000])
    await h.until_status(ids[-1], "AudioOver")
    assert not h.replaced.is_set()
    second: list[dict[str, Any]] = []
    replaced = h.channel.attach(h.sender(second))
    await h.channel.flush()
    assert h.replaced.is_set() and not replaced.is_set()
    expected = [m for m in h.out if m["Type"] == 3 and m["ReqId"] in ids[1:]]
    assert second == expected and len(second) == 12
    # The old socket gets nothing more; the new one gets what follows.
    n_old = len(h.out)
    await send_utterance(h, REQ[18], speech[:3000])
    await h.channel.flush()
    assert len(h.out) == n_old and second[-1]["SpeakStatus"] == "WaitingAudioStart"


def _bad_messages(open_req: str) -> list[tuple[str, Any, int, str]]:
    other = REQ[30]
    one = np.ones(320, np.int16)
    return [
        ("not json", "{nope", 100001, "not valid JSON"),
        ("not an object", "[1, 2]", 100001, "JSON object"),
        ("no payload", {"Header": {}}, 100001, "Payload is required"),
        ("payload not object", {"Payload": 3}, 100001, "Payload must be"),
        ("no ReqId", {"Payload": {"SessionId": SID, "Command": "SEND_AUDIO"}}, 100001, "ReqId"),
        ("bad ReqId", audio(open_req[:-1] + "A", 3, one), 100001, "32 lowercase hex"),
        ("unknown command", msg(other, "SEND_VIDEO", {}), 100001, "unknown Command"),
        (
            "other session",
            msg(other, "SEND_TEXT", {"Text": "hi"}, sid="x" * 32),
            100001,
            "SessionId",
        ),
        ("data not object", msg(other, "SEND_AUDIO", [1]), 100001, "Data must be"),
        ("bad base64", msg(open_req, "SEND_AUDIO", {"Audio": "@@@", "Seq": 3}), 100001, "Base64"),
        ("odd bytes", msg(open_req, "SEND_AUDIO", {"Audio": "AAAA", "Seq": 3}), 100001, "odd"),
        (
            "seq not int",
            msg(open_req, "SEND_AUDIO", {"Audio": "AAA=", "Seq": "3"}),
            100001,
            "integer",
        ),
        ("seq gap", audio(open_req, 4, one), 100001, "gap"),
        ("seq repeat", audio(open_req, 2, one), 100001, "repeats"),
        ("seq back", audio(open_req, 1, one), 100001, "goes back"),
        ("new at seq 2", audio(other, 2, one), 100001, "starts at Seq 1"),
        ("empty chunk", audio(open_req, 3, None), 100001, "empty"),
        ("text too many bytes", text(other, "语" * 1400), 100001, "4000"),
        ("text too many chars", text(other, "a" * 3001), 100001, "3000"),
        ("empty text", text(other, "  "), 100001, "empty"),
        ("buffer full", audio(other, 1, np.ones(16000 * 4, np.int16)), -111005, "buffer full"),
        (
            "seq bool",
            msg(open_req, "SEND_AUDIO", {"Audio": "AAA=", "Seq": True}),
            100001,
            "integer",
        ),
    ]


@arun
async def test_every_bad_message_gets_one_type_9_and_loses_nothing(speech: np.ndarray) -> None:
    h = Harness(max_text_chars=3000, max_audio_buffer_s=3.0, max_messages_per_s=1000)
    r = REQ[20]
    parts = chunks(speech[: CHUNK * 2])
    await h.send(audio(r, 1, parts[0]))
    await h.send(audio(r, 2, parts[1]))
    for name, bad, code, words in _bad_messages(r):
        back = await h.send(bad)
        assert len(back) == 1, name
        err = back[0]
        assert err["Type"] == 9 and err["SessionId"] == SID, name
        assert err["ErrorCode"] == code, (name, err)
        assert words in err["ErrorMessage"], (name, err)
    assert h.statuses(REQ[30]) == []  # no bad message opened a request
    await h.send(audio(r, 3, None, True))
    await h.until_status(r, "AudioOver")
    assert same_audio(h.played(r), speech[: CHUNK * 2])
    assert h.statuses(r)[-1] == ("AudioOver", 1)


@arun
async def test_a_flood_gets_100012_and_the_rest_still_plays(speech: np.ndarray) -> None:
    h = Harness(max_messages_per_s=5)
    r = REQ[21]
    parts = chunks(speech[: CHUNK * 6])
    codes = []
    for seq, part in enumerate(parts, 1):
        codes.append([m.get("ErrorCode") for m in await h.send(audio(r, seq, part))])
    assert codes[5] == [100012]  # the 6th message in the same second
    err = h.errors()[0]
    assert err["ReqId"] == r and err["Seq"] == 6 and "5 messages" in err["ErrorMessage"]
    h.clock.advance(1.0)
    assert await h.send(audio(r, 6, parts[5], final=True)) == []  # resent after the burst
    await h.until_status(r, "AudioOver")
    assert same_audio(h.played(r), speech[: CHUNK * 6])


@arun
async def test_session_not_started_and_http_form() -> None:
    h = Harness(started=False)
    back = await h.send(text(REQ[22], "Hello."))
    assert back[0]["ErrorCode"] == 110016
    with pytest.raises(SessionNotStarted):
        await h.channel.handle_command(text(REQ[22], "Hello.")["Payload"])
    h.session.started = True
    out = await h.channel.handle_command(text(REQ[22], "Hello.")["Payload"])
    assert out == {"ReqId": REQ[22], "SessionId": SID}
    await h.until_status(REQ[22], "TextOver")  # statuses of HTTP commands go to the socket


@arun
async def test_heartbeat_renews_activity_without_reply_and_sei_is_kept(
    speech: np.ndarray,
) -> None:
    h = Harness()
    assert await h.send(msg(REQ[23], "SEND_HEARTBEAT", {"Text": "PING"})) == []
    assert h.activity == 1
    r = REQ[24]
    await h.send(audio(r, 1, speech[:CHUNK], VideoSeiInfo='{"slide": 3}'))
    assert h.controls.sei_info(r) == '{"slide": 3}'
    bad = await h.send(audio(r, 2, speech[:CHUNK], VideoSeiInfo=7))
    assert bad[0]["ErrorCode"] == 100001 and "VideoSeiInfo" in bad[0]["ErrorMessage"]
    await h.channel.close()
    assert h.replaced.is_set()
    h.clock.advance(10)
    await h.settle()
    assert [s for s, _ in h.statuses(r)] == ["WaitingAudioStart"]  # no timer after close
