"""The checks every string and number from outside goes through, once, where it enters.

Where input enters: HTTP bodies and query strings (`api`), command-channel frames
(`sessions.drive_messages`), the CLI's arguments and the settings (`cli`, `settings`). Each of
those calls these functions, so what reaches the rest of the code is text that can be
written to SQLite, a log line or a JSON answer, of a bounded length, and integers in range.

Why each rule:
- A JSON string may hold a lone surrogate (`"\\ud800"` is valid JSON) that is not text: it has
  no UTF-8 form, so it fails later and far away (booking usage in SQLite, rendering an answer
  that lists it). Refused anywhere in a document, keys included.
- Python's JSON reader turns a 5,000-digit integer into a ValueError deep in the parser, and
  `1e400` into infinity; integers are bounded to SQLite's 64 bits, floats must be finite.
- `NaN`, `Infinity` are not JSON (RFC 8259); Python accepts them by default.
- Identifiers (UserId, keys, ids, voice names) have no control characters; free text (a TTS
  text, a transcript) may have tabs and line breaks, no other control character.
"""

from __future__ import annotations

import json
import re
from typing import Any

from avatarcast.errors import RequestError

MAX_INT = 2**63 - 1  # SQLite's INTEGER; every integer field is far inside it
MAX_INT_DIGITS = 19
ASCII_DIGITS = re.compile(r"[0-9]+")
_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f]")  # C0, DEL, C1
_FREE_TEXT_CONTROLS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")  # but tab, LF, CR


class JsonSyntaxError(ValueError):
    """Not JSON at all (a transport-level failure over HTTP, 100001 on the command channel)."""


def _parse_int(digits: str) -> int:
    # Called with the literal's text before Python's own int(), which refuses 4,300+ digits
    # with a ValueError that would look like a bug.
    if len(digits.lstrip("-")) > MAX_INT_DIGITS or abs(int(digits)) > MAX_INT:
        shown = digits if len(digits) <= 24 else f"{digits[:12]}…({len(digits)} digits)"
        raise RequestError(f"integer {shown} is out of range (at most {MAX_INT})")
    return int(digits)


def _parse_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        shown = text if len(text) <= 24 else text[:12] + "…"
        raise RequestError(f"number {shown} is out of range")
    return value


def _no_constant(name: str) -> Any:
    raise JsonSyntaxError(f"{name} is not a JSON number")


def loads(raw: str | bytes) -> Any:
    """Parse JSON into checked values.

    JsonSyntaxError if it is not JSON (bad syntax, not UTF-8, nested too deeply, NaN);
    RequestError (100001) if it is JSON whose values are not usable (see the module doc).
    """
    try:
        value = json.loads(
            raw, parse_int=_parse_int, parse_float=_parse_float, parse_constant=_no_constant
        )
    except RequestError:
        raise
    except JsonSyntaxError:
        raise
    except RecursionError:  # `[[[[...` nested deeper than the parser goes
        raise JsonSyntaxError("nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise JsonSyntaxError(str(exc)) from None
    check_tree(value)
    return value


def is_text(value: str) -> bool:
    """True if `value` is encodable as UTF-8 (no lone surrogates)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _path(parts: tuple[str | int, ...]) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else p)
    return out or "the document"


def check_tree(root: Any) -> None:
    """RequestError naming the first string or key of a parsed JSON value that is not text."""
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(root, ())]
    while stack:
        value, where = stack.pop()
        if isinstance(value, str):
            if not is_text(value):
                raise RequestError(f"{_path(where)} is not valid text (a lone UTF-16 surrogate)")
        elif isinstance(value, dict):
            for key, item in value.items():
                if not is_text(key):
                    raise RequestError(
                        f"a key in {_path(where)} is not valid text (a lone UTF-16 surrogate)"
                    )
                stack.append((item, (*where, key)))
        elif isinstance(value, list):
            stack.extend((item, (*where, i)) for i, item in enumerate(value))


def check_name(value: str, name: str, max_len: int) -> str:
    """An identifier: text, at most `max_len` characters, no control characters."""
    _check_text(value, name, max_len, controls=_CONTROLS)
    return value


def check_free_text(value: str, name: str, max_len: int) -> str:
    """Free text: text, at most `max_len` characters; tab and line breaks allowed."""
    _check_text(value, name, max_len, controls=_FREE_TEXT_CONTROLS)
    return value


def _check_text(value: str, name: str, max_len: int, controls: re.Pattern[str]) -> None:
    if len(value) > max_len:
        raise RequestError(f"{name} is longer than {max_len} characters")
    if not is_text(value):
        raise RequestError(f"{name} is not valid text (a lone UTF-16 surrogate)")
    bad = controls.search(value)  # a regex: Material may be megabytes of Base64
    if bad is not None:
        raise RequestError(f"{name} contains a control character (U+{ord(bad.group()):04X})")


def ascii_int(value: str, name: str, max_digits: int) -> int:
    """A non-negative integer written in 1..max_digits ASCII digits (`int()` takes more:
    full-width digits, `_`, blanks, which no client means)."""
    if len(value) > max_digits or not ASCII_DIGITS.fullmatch(value):
        raise RequestError(f"{name} must be 1 to {max_digits} ASCII digits")
    return int(value)
