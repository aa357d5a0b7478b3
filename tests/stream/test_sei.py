"""SEI metadata: build → insert → parse round trips, emulation prevention, the frame hook."""

from __future__ import annotations

import json

import numpy as np

from avatarcast.engine.timeline import EngineFrame, SpeechEvent
from avatarcast.render.frame import YuvFrame
from avatarcast.speech.visemes import MouthPose, Shape
from avatarcast.stream.encoder import H264Encoder, VideoOptions, encode_h264
from avatarcast.stream.sei import (
    SEI_UUID,
    build_sei_nal,
    escape,
    find_sei,
    insert_sei,
    sei_for_frames,
    sei_payload,
    split_annexb,
    unescape,
    with_sei,
)


def test_emulation_prevention_round_trips_and_leaves_no_start_code() -> None:
    raw = bytes([0, 0, 0, 0, 0, 1, 0, 0, 2, 0, 0, 3, 0, 0, 4, 0xAB, 0, 0])
    esc = escape(raw)
    assert esc == bytes([0, 0, 3, 0, 0, 3, 0, 1, 0, 0, 3, 2, 0, 0, 3, 3, 0, 0, 4, 0xAB, 0, 0])
    assert unescape(esc) == raw
    for k in range(len(esc) - 2):  # no 00 00 0x (x <= 2) can be mistaken for a start code
        assert not (esc[k] == 0 and esc[k + 1] == 0 and esc[k + 2] <= 2)


def test_build_and_parse_round_trip_with_long_and_awkward_payloads() -> None:
    for info in ("", "hi", "ü" * 200, "\x00\x00\x01\x00\x00\x03" * 100, "x" * 4096):
        nal = build_sei_nal(sei_payload(info, "AudioStart"))
        assert nal[0] == 6
        stream = b"\x00\x00\x00\x01" + nal
        (msg,) = find_sei(stream)
        assert msg.sei_data == info and msg.status == "AudioStart"
        assert b"\x00\x00\x01" not in nal and b"\x00\x00\x00" not in nal
        # The same unit in AVCC form (4-byte length), as FLV and MP4 carry it.
        (again,) = find_sei(len(nal).to_bytes(4, "big") + nal)
        assert again == msg
    doc = json.loads(sei_payload("v", ""))
    assert doc == {"sei_data": "v", "status_data": {"STATUS": ""}}


def test_other_uuids_and_other_sei_are_ignored() -> None:
    other = build_sei_nal(sei_payload("x"), uuid=bytes(16))
    assert find_sei(b"\x00\x00\x00\x01" + other) == []
    assert find_sei(b"\x00\x00\x00\x01" + other, uuid=bytes(16))[0].sei_data == "x"
    assert len(SEI_UUID) == 16


def encoded_frames(n: int) -> list[bytes]:
    enc = H264Encoder.standalone(VideoOptions(width=64, height=64))
    out = []
    for i in range(n):
        data = np.full((96, 64), 128, np.uint8)
        data[:64] = (i * 37) % 256
        (p,) = encode_h264(enc, YuvFrame(data, 64, 64), i, i == 0)
        out.append(bytes(p))
    return out


def test_insert_goes_before_the_first_slice_and_the_picture_still_decodes() -> None:
    import av

    frames = encoded_frames(3)
    key = frames[0]
    types = [u[0] & 0x1F for u in split_annexb(key)]
    assert 7 in types and 8 in types and 5 in types  # SPS, PPS, IDR slice
    nal = build_sei_nal(sei_payload("meta", "AudioOver"))
    with_it = insert_sei(key, nal)
    new_types = [u[0] & 0x1F for u in split_annexb(with_it)]
    first_slice = new_types.index(5)
    assert new_types[first_slice - 1] == 6 and new_types.count(6) == types.count(6) + 1
    assert [m.status for m in find_sei(with_it)] == ["AudioOver"]
    dec = av.CodecContext.create("h264", "r")
    pictures = []
    for au in (with_it, insert_sei(frames[1], nal), frames[2]):
        pictures += dec.decode(av.Packet(au))
    pictures += dec.decode(None)
    assert len(pictures) == 3 and pictures[0].width == 64


def test_with_sei_keeps_timestamps_and_key_flag_and_leaves_the_original_alone() -> None:
    import av

    p = av.Packet(encoded_frames(1)[0])
    p.pts = p.dts = 3600
    p.is_keyframe = True
    before = bytes(p)
    (q,) = with_sei((p,), build_sei_nal(sei_payload("m")))
    assert bytes(p) == before
    assert q.pts == 3600 and q.dts == 3600 and q.is_keyframe
    assert find_sei(bytes(q))[0].sei_data == "m"


def frame(uid: str | None, events: list[tuple[SpeechEvent, str]]) -> EngineFrame:
    video = YuvFrame(np.zeros((96, 64), np.uint8), 64, 64)
    return EngineFrame(0, video, np.zeros(640, np.int16), MouthPose(Shape.A, 0.0), uid, events)


def test_frame_hook_sets_status_on_the_first_and_last_frame_only() -> None:
    infos = {"u1": "meta-1"}
    hook = sei_for_frames(lambda uid: infos.get(uid) if uid else None)

    def status(f: EngineFrame) -> str | None:
        nal = hook(f)
        return None if nal is None else find_sei(b"\x00\x00\x01" + nal)[0].status

    assert status(frame(None, [])) is None  # silence: no SEI
    assert status(frame("u2", [(SpeechEvent.START, "u2")])) is None  # no VideoSeiInfo
    assert status(frame("u1", [(SpeechEvent.START, "u1")])) == "AudioStart"
    assert status(frame("u1", [])) == ""
    assert status(frame("u1", [(SpeechEvent.END, "u1")])) == "AudioOver"
    # Cut by an interrupt: the first frame after the cut says it is over.
    assert status(frame(None, [(SpeechEvent.INTERRUPTED, "u1")])) == "AudioOver"
