"""Per-utterance metadata inside the H.264 stream: user-data-unregistered SEI messages.

Every frame of an utterance that carries `VideoSeiInfo` gets one SEI NAL unit (type 6) holding
one message of payload type 5 (user data unregistered, ITU-T H.264 D.1.7):

    16-byte UUID `SEI_UUID`, then UTF-8 JSON
    {"sei_data": "<VideoSeiInfo>", "status_data": {"STATUS": "AudioStart"}}

`STATUS` is "AudioStart" on the utterance's first frame, "AudioOver" on its last one (or on the
frame where it is cut by an interrupt), and "" on the frames in between. Only `SEND_AUDIO`
carries `VideoSeiInfo` (docs/protocol.md), hence the Audio* names.

The NAL unit is inserted into the encoder's Annex-B access unit after AUD/SPS/PPS (and x264's
own SEI) and before the first slice, as H.264 7.4.1.2.3 requires, so every H.264 output (WebRTC,
RTMP, recordings) carries it unchanged. `find_sei` reads them back from Annex-B (x264, MPEG-TS,
RTP depacketised) or AVCC (FLV/MP4, 4-byte lengths) data.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import av

from avatarcast.media import FrameMeta, SpeechEvent

# uuid5(NAMESPACE_URL, "https://avatarcast/sei/v1") = e289d289-13d9-530d-9627-bea675320482,
# fixed forever: readers match on it.
SEI_UUID = bytes.fromhex("e289d28913d9530d9627bea675320482")
NAL_SEI = 6
SEI_USER_DATA_UNREGISTERED = 5
_VCL_TYPES = frozenset(range(1, 6))  # coded slices; an SEI must come before the first one
_START_CODE = re.compile(b"\x00\x00\x01")


@dataclass(frozen=True, slots=True)
class SeiMessage:
    sei_data: str
    status: str  # "AudioStart", "AudioOver", ... or ""
    raw: dict[str, Any]


# ---- building ----------------------------------------------------------------------------------
def escape(rbsp: bytes) -> bytes:
    """Add emulation-prevention bytes: 00 00 followed by 00..03 becomes 00 00 03 0x."""
    out = bytearray()
    zeros = 0
    for b in rbsp:
        if zeros >= 2 and b <= 3:
            out.append(3)
            zeros = 0
        out.append(b)
        zeros = zeros + 1 if b == 0 else 0
    return bytes(out)


def unescape(ebsp: bytes) -> bytes:
    """Remove emulation-prevention bytes (the 03 of every 00 00 03)."""
    if b"\x00\x00\x03" not in ebsp:
        return ebsp
    out = bytearray()
    zeros = 0
    for b in ebsp:
        if zeros >= 2 and b == 3:
            zeros = 0
            continue
        out.append(b)
        zeros = zeros + 1 if b == 0 else 0
    return bytes(out)


def _ff_coded(value: int) -> bytes:
    """SEI payload type/size coding: 0xFF per full 255, then the remainder."""
    return b"\xff" * (value // 255) + bytes([value % 255])


def sei_payload(sei_data: str, status: str = "") -> bytes:
    """The JSON of one frame (compact, so it stays small on every frame)."""
    doc = {"sei_data": sei_data, "status_data": {"STATUS": status}}
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def build_sei_nal(payload: bytes, uuid: bytes = SEI_UUID) -> bytes:
    """One SEI NAL unit (header byte included, no start code) with a type-5 message."""
    if len(uuid) != 16:
        raise ValueError("the SEI UUID must be 16 bytes")
    body = uuid + payload
    rbsp = (
        bytes([SEI_USER_DATA_UNREGISTERED])
        + _ff_coded(len(body))
        + body
        + b"\x80"  # rbsp_trailing_bits
    )
    return bytes([NAL_SEI]) + escape(rbsp)  # nal_ref_idc 0: SEI is never a reference


# ---- Annex-B access units ----------------------------------------------------------------------
def split_annexb(data: bytes) -> list[bytes]:
    """NAL units of an Annex-B byte stream (without start codes or trailing zero bytes)."""
    starts = [m.end() for m in _START_CODE.finditer(data)]
    units: list[bytes] = []
    for k, s in enumerate(starts):
        end = starts[k + 1] - 3 if k + 1 < len(starts) else len(data)
        unit = data[s:end]
        if k + 1 < len(starts):
            unit = unit.rstrip(b"\x00")  # the 4-byte start code's leading zero
        if unit:
            units.append(unit)
    return units


def insert_sei(access_unit: bytes, sei_nal: bytes) -> bytes:
    """`access_unit` (Annex-B) with `sei_nal` placed right before its first slice."""
    for m in _START_CODE.finditer(access_unit):
        if m.end() < len(access_unit) and access_unit[m.end()] & 0x1F in _VCL_TYPES:
            at = m.start()
            if at > 0 and access_unit[at - 1] == 0:
                at -= 1  # keep a 4-byte start code whole
            return access_unit[:at] + b"\x00\x00\x00\x01" + sei_nal + access_unit[at:]
    raise ValueError("no coded slice in the access unit")


# ---- parsing -----------------------------------------------------------------------------------
def split_avcc(data: bytes, length_size: int = 4) -> list[bytes]:
    """NAL units of length-prefixed (AVCC: FLV, MP4) data."""
    units: list[bytes] = []
    i = 0
    while i + length_size <= len(data):
        n = int.from_bytes(data[i : i + length_size], "big")
        i += length_size
        if n == 0 or i + n > len(data) or data[i] & 0x80:  # forbidden_zero_bit set: not NAL
            raise ValueError("not length-prefixed NAL units")
        units.append(data[i : i + n])
        i += n
    if i != len(data):
        raise ValueError("trailing bytes after the last NAL unit")
    return units


def nal_units(data: bytes, fmt: str = "auto") -> list[bytes]:
    """NAL units of one packet: fmt "annexb", "avcc" (4-byte lengths) or "auto".

    "auto" takes the data as AVCC when its lengths add up exactly to its size (a length of
    256..511 begins with 00 00 01, so a start-code test alone would misread it), else Annex-B.
    """
    if fmt == "annexb":
        return split_annexb(data)
    if fmt == "avcc":
        return split_avcc(data)
    if not data.startswith(b"\x00\x00\x00\x01"):
        try:
            return split_avcc(data)
        except ValueError:
            pass
    return split_annexb(data)


def sei_messages(nal: bytes) -> Iterator[tuple[int, bytes]]:
    """(payload type, payload) of each message in one SEI NAL unit."""
    if not nal or nal[0] & 0x1F != NAL_SEI:
        return
    rbsp = unescape(nal[1:])
    i = 0
    while i < len(rbsp) and not (rbsp[i] == 0x80 and i == len(rbsp) - 1):
        ptype = 0
        while i < len(rbsp) and rbsp[i] == 0xFF:
            ptype += 255
            i += 1
        if i >= len(rbsp):
            return
        ptype += rbsp[i]
        i += 1
        size = 0
        while i < len(rbsp) and rbsp[i] == 0xFF:
            size += 255
            i += 1
        if i >= len(rbsp):
            return
        size += rbsp[i]
        i += 1
        if i + size > len(rbsp):
            return  # truncated: ignore the rest
        yield ptype, rbsp[i : i + size]
        i += size


def find_sei(data: bytes, uuid: bytes = SEI_UUID, fmt: str = "auto") -> list[SeiMessage]:
    """Our SEI messages in one packet / access unit (Annex-B or AVCC, see `nal_units`)."""
    found: list[SeiMessage] = []
    for nal in nal_units(data, fmt):
        for ptype, payload in sei_messages(nal):
            if ptype != SEI_USER_DATA_UNREGISTERED or payload[:16] != uuid:
                continue
            try:
                doc = json.loads(payload[16:].decode("utf-8"))
            except (UnicodeDecodeError, ValueError):
                continue
            if not isinstance(doc, dict):
                continue
            status = doc.get("status_data", {})
            found.append(
                SeiMessage(
                    str(doc.get("sei_data", "")),
                    str(status.get("STATUS", "")) if isinstance(status, dict) else "",
                    doc,
                )
            )
    return found


# ---- the live stream's hook --------------------------------------------------------------------
def sei_for_frames(
    lookup: Callable[[str | None], str | None],
) -> Callable[[FrameMeta], bytes | None]:
    """`LiveStream(sei_for=...)`: the SEI NAL of a frame; `lookup` gives the `VideoSeiInfo`
    of an utterance id (the session host keeps them).

    Runs on the session's worker thread before the frame is published, so the drive channel
    has not yet processed this frame's events (an utterance's END frame still finds it).
    """

    def sei_for(frame: FrameMeta) -> bytes | None:
        status = ""
        uid = frame.utterance_id
        for ev, ev_uid in frame.events:
            if ev_uid != uid and not (uid is None and ev is SpeechEvent.INTERRUPTED):
                continue
            if ev is SpeechEvent.START:
                status = "AudioStart"
            else:  # its last frame, or (silent) the first frame after it was cut
                uid, status = ev_uid, "AudioOver"
        info = lookup(uid) if uid else None
        if info is None:
            return None
        return build_sei_nal(sei_payload(info, status))

    return sei_for


def with_sei(packets: tuple[av.Packet, ...], sei_nal: bytes) -> tuple[av.Packet, ...]:
    """The frame's packets with `sei_nal` inserted before the first slice of the first one.

    Packets are shared by every output once published, so a new packet replaces the
    encoder's (same timestamps and key flag) rather than editing it.
    """
    if not packets:
        return packets
    first = packets[0]
    out = av.Packet(insert_sei(bytes(first), sei_nal))
    out.pts, out.dts = first.pts, first.dts
    if first.time_base is not None:
        out.time_base = first.time_base
    out.is_keyframe = first.is_keyframe
    return (out, *packets[1:])
