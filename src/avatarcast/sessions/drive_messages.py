"""The command channel's wire format: parse and check upstream messages, build downstream ones.

Pure functions, no state: every check here names the field it rejects and raises
`RequestError` (wire code 100001). State-dependent checks (Seq order, ReqId reuse, buffer
room) live in `drive.py`. Spec: `ivh-api.md` section 3.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import numpy as np

from avatarcast.errors import RequestError
from avatarcast.media import Pcm
from avatarcast.validate import JsonSyntaxError, check_free_text, check_name, loads

MAX_MESSAGE_CHARS = 1 << 20  # far above a 160 ms chunk (6.8 kB of Base64) or a 4000-byte text
MAX_TEXT_BYTES = 4000  # spec: Text ≤ 4000 bytes (UTF-8)
MAX_SEI_BYTES = 4096  # one SEI NAL per frame; keep it well under a frame's size
OUTPUT_NOTICE = 10  # ours: downstream message type of output notices (see docs/outputs.md)
MAX_SENTENCE_CHARS = 600  # a streamed text with no punctuation is still spoken in pieces
REQ_ID = re.compile(r"[0-9a-f]{32}")

# Chinese/full-width punctuation ends a sentence at once; ASCII punctuation only when followed
# by white space, so "3.14" or "e.g." split across two fragments is not cut in the middle.
_CJK_ENDS = "。！？；…"
_ASCII_ENDS = ".!?;"


class Command(StrEnum):
    SEND_AUDIO = "SEND_AUDIO"
    SEND_TEXT = "SEND_TEXT"
    SEND_STREAMTEXT = "SEND_STREAMTEXT"
    SEND_HEARTBEAT = "SEND_HEARTBEAT"


class MessageType:
    STATUS = 3
    ERROR = 9


class FinalType:
    CLIENT = 1  # the client sent IsFinal
    TIMEOUT = 2  # nothing arrived within StreamMaxInterval
    INTERRUPTED = 3


@dataclass(frozen=True, slots=True)
class Request:
    """A checked upstream Payload; `data` is still raw (checked per command)."""

    req_id: str
    command: Command
    data: dict[str, Any]


@dataclass(frozen=True, slots=True)
class AudioChunk:
    pcm: Pcm  # empty for a bare final packet or a bare interrupt
    seq: int | None  # None only for a bare interrupt
    is_final: bool
    interrupt: bool
    sei: str | None
    text: str | None = None  # ours: the words this utterance speaks (read at Seq 1)
    text_error: str | None = None  # why Data.Text was ignored (the audio still plays)


@dataclass(frozen=True, slots=True)
class TextRequest:
    text: str
    interrupt: bool
    voice: str | None  # ours: Data.Voice overrides the session's voice for this request


@dataclass(frozen=True, slots=True)
class TextFragment:
    text: str
    seq: int
    is_final: bool
    interrupt: bool
    voice: str | None


# ---- upstream --------------------------------------------------------------------------------
def parse_json(raw: str) -> Any:
    if len(raw) > MAX_MESSAGE_CHARS:
        raise RequestError(f"message is {len(raw)} characters; at most {MAX_MESSAGE_CHARS}")
    try:
        return loads(raw)  # RequestError for bad values (a lone surrogate, a huge integer)
    except JsonSyntaxError as exc:
        raise RequestError(f"message is not valid JSON: {exc}") from None


def payload_of(message: Any) -> dict[str, Any]:
    """`Payload` of `{"Header": {}, "Payload": {...}}`; a message with only Payload is fine."""
    if not isinstance(message, dict):
        raise RequestError("message must be a JSON object with a Payload object")
    if "Payload" not in message:
        raise RequestError("Payload is required")
    payload = message["Payload"]
    if not isinstance(payload, dict):
        raise RequestError("Payload must be a JSON object")
    header = message.get("Header")
    if header is not None and not isinstance(header, dict):
        raise RequestError("Header must be a JSON object")
    return payload


def parse_request(payload: dict[str, Any], session_id: str) -> Request:
    req_id = payload.get("ReqId")
    if req_id is None:
        raise RequestError("ReqId is required")
    if not isinstance(req_id, str) or not REQ_ID.fullmatch(req_id):
        raise RequestError("ReqId must be 32 lowercase hex characters (a UUID without dashes)")
    sid = payload.get("SessionId")
    if sid is None:
        raise RequestError("SessionId is required")
    if sid != session_id:
        raise RequestError("SessionId is not the session of this command channel")
    command = payload.get("Command")
    if command is None:
        raise RequestError("Command is required")
    if not isinstance(command, str) or command not in Command.__members__:
        shown = command[:40] if isinstance(command, str) else type(command).__name__
        raise RequestError(
            f"unknown Command {shown!r}; expected one of {', '.join(Command.__members__)}"
        )
    data = payload.get("Data")
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise RequestError("Data must be a JSON object")
    return Request(req_id, Command(command), data)


def _opt_bool(data: dict[str, Any], name: str) -> bool:
    value = data.get(name)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise RequestError(f"Data.{name} must be true or false")
    return value


def _seq(data: dict[str, Any], required: bool) -> int | None:
    value = data.get("Seq")
    if value is None:
        if required:
            raise RequestError("Data.Seq is required")
        return None
    # bool is an int in Python but not in JSON.
    if isinstance(value, bool) or not isinstance(value, int):
        raise RequestError("Data.Seq must be an integer")
    if value < 1:
        raise RequestError(f"Data.Seq must be 1 or more, got {value}")
    return value


def _text(data: dict[str, Any], max_chars: int) -> str:
    value = data.get("Text", "")
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise RequestError("Data.Text must be a string")
    if len(value) > max_chars:
        raise RequestError(f"Data.Text is {len(value)} characters; at most {max_chars}")
    check_free_text(value, "Data.Text", max_chars)
    n_bytes = len(value.encode("utf-8"))
    if n_bytes > MAX_TEXT_BYTES:
        raise RequestError(f"Data.Text is {n_bytes} bytes; at most {MAX_TEXT_BYTES} (UTF-8)")
    return value


def _voice(data: dict[str, Any]) -> str | None:
    value = data.get("Voice")
    if value is None:
        return None
    if not isinstance(value, str) or not 0 < len(value) <= 64:
        raise RequestError("Data.Voice must be a voice name of 1 to 64 characters")
    return check_name(value, "Data.Voice", 64)


def decode_pcm(value: Any) -> Pcm:
    """Base64 of s16le mono PCM → samples; names the fault (type, alphabet, odd byte count)."""
    if value is None or value == "":
        return np.zeros(0, np.int16)
    if not isinstance(value, str):
        raise RequestError("Data.Audio must be a Base64 string")
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise RequestError("Data.Audio is not valid Base64") from None
    if len(raw) % 2:
        raise RequestError(
            f"Data.Audio has {len(raw)} bytes, an odd count: PCM s16le needs 2 bytes a sample"
        )
    return np.frombuffer(raw, dtype="<i2").astype(np.int16)


def parse_audio(data: dict[str, Any]) -> AudioChunk:
    interrupt = _opt_bool(data, "Interrupt")
    is_final = _opt_bool(data, "IsFinal")
    carries_audio = any(data.get(k) is not None for k in ("Audio", "Seq")) or is_final
    seq = _seq(data, required=carries_audio or not interrupt)
    pcm = decode_pcm(data.get("Audio"))
    if seq is not None and pcm.size == 0 and not is_final:
        raise RequestError("Data.Audio is empty and IsFinal is false: nothing to play")
    if interrupt and seq is not None and seq != 1:
        raise RequestError("Data.Interrupt with audio must start a new utterance (Seq 1)")
    sei = data.get("VideoSeiInfo")
    if sei is not None:
        if not isinstance(sei, str):
            raise RequestError("Data.VideoSeiInfo must be a string")
        check_free_text(sei, "Data.VideoSeiInfo", MAX_SEI_BYTES)
        if len(sei.encode("utf-8")) > MAX_SEI_BYTES:
            raise RequestError(f"Data.VideoSeiInfo is longer than {MAX_SEI_BYTES} bytes")
    text, text_error = _audio_text(data, seq)
    return AudioChunk(pcm, seq, is_final, interrupt, sei, text, text_error)


def _audio_text(data: dict[str, Any], seq: int | None) -> tuple[str | None, str | None]:
    """`Data.Text` of a SEND_AUDIO chunk (ours) and, when it cannot be used, why.

    Never raises: bad text must not cost the client its audio. The caller reports the reason
    as a Type 9 and the chunk plays with a recognised mouth.
    """
    value = data.get("Text")
    if value is None or value == "":
        return None, None
    if not isinstance(value, str):
        return None, f"Data.Text must be a string, got {type(value).__name__}"
    if seq != 1:
        return None, "Data.Text is read only on the first chunk of an utterance (Seq 1)"
    n_bytes = len(value.encode("utf-8", "surrogatepass"))
    if n_bytes > MAX_TEXT_BYTES:
        return None, f"Data.Text is {n_bytes} bytes; at most {MAX_TEXT_BYTES} (UTF-8)"
    return (value if value.strip() else None), None


def parse_text(data: dict[str, Any], max_chars: int) -> TextRequest:
    text = _text(data, max_chars)
    interrupt = _opt_bool(data, "Interrupt")
    if not text.strip() and not interrupt:
        raise RequestError("Data.Text is empty; send Interrupt true with empty Text to stop")
    return TextRequest(text, interrupt, _voice(data))


def parse_fragment(data: dict[str, Any], max_chars: int) -> TextFragment:
    text = _text(data, max_chars)
    seq = _seq(data, required=True)
    assert seq is not None
    is_final, interrupt = _opt_bool(data, "IsFinal"), _opt_bool(data, "Interrupt")
    return TextFragment(text, seq, is_final, interrupt, _voice(data))


def split_sentences(buffer: str) -> tuple[list[str], str]:
    """Complete sentences at the front of `buffer`, and the incomplete rest."""
    out: list[str] = []
    start = 0
    for i, ch in enumerate(buffer):
        nxt = buffer[i + 1] if i + 1 < len(buffer) else ""
        if ch in _CJK_ENDS or (ch in _ASCII_ENDS and nxt.isspace()):
            out.append(buffer[start : i + 1])
            start = i + 1
    rest = buffer[start:]
    while len(rest) > MAX_SENTENCE_CHARS:  # run-on text: cut at the last space or comma
        cut = max(rest.rfind(" ", 0, MAX_SENTENCE_CHARS), rest.rfind(",", 0, MAX_SENTENCE_CHARS))
        cut = cut + 1 if cut > 0 else MAX_SENTENCE_CHARS
        out.append(rest[:cut])
        rest = rest[cut:]
    return [s.strip() for s in out if speakable(s)], rest


def speakable(text: str) -> bool:
    """A sentence worth sending to TTS (not only punctuation or blanks)."""
    return any(ch.isalnum() for ch in text)


def echo_ids(message: Any) -> tuple[str, int]:
    """Best-effort ReqId and Seq of a rejected message, so its Type 9 can be matched to it."""
    payload = message.get("Payload") if isinstance(message, dict) else None
    if not isinstance(payload, dict):
        return "", 0
    req_id = payload.get("ReqId")
    data = payload.get("Data")
    seq = data.get("Seq") if isinstance(data, dict) else None
    return (
        req_id if isinstance(req_id, str) and REQ_ID.fullmatch(req_id) else "",
        seq if isinstance(seq, int) and not isinstance(seq, bool) and 0 < seq < 2**31 else 0,
    )


# ---- downstream ------------------------------------------------------------------------------
def status_message(
    session_id: str, req_id: str, seq: int, status: str, final_type: int | None = None
) -> dict[str, Any]:
    msg: dict[str, Any] = {
        "Type": MessageType.STATUS,
        "SessionId": session_id,
        "ReqId": req_id,
        "Seq": seq,
        "SpeakStatus": status,
    }
    if final_type is not None:
        msg["FinalType"] = final_type
    return msg


def error_message(session_id: str, req_id: str, seq: int, code: int, reason: str) -> dict[str, Any]:
    return {
        "Type": MessageType.ERROR,
        "SessionId": session_id,
        "ReqId": req_id,
        "Seq": seq,
        "SpeakStatus": "",
        "ErrorCode": code,
        "ErrorMessage": reason,
    }
