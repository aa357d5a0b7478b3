"""The one table from exceptions to IVH wire error codes (spec section 6), and what a caller
may be told about a failure.

Every layer that answers a client (the HTTP API, the drive channel, a session's `statsession`)
takes its codes from here; nothing else writes a wire code. It sits beside `errors.py`, below
both `api` and `sessions`, so neither has to import the other for it.
"""

from __future__ import annotations

import logging

from avatarcast import errors as e

INTERNAL = -101000  # a bug or a failed component: logged whole, the caller learns only that
INVALID_PARAMETER = 100001
UNAUTHORIZED = 100005
QUOTA_EXCEEDED = 100008
SESSION_CLOSED = 110013
SESSION_REPLACED = 110022
IDLE_CLOSED = SESSION_CLOSED  # statsession of a session closed for idleness (ErrorMessage says why)
STREAM_CREATE_TIMEOUT = -111004  # statsession of a session whose stream did not start in time

# Most specific classes first: the first isinstance match wins.
_TABLE: tuple[tuple[type[BaseException], int], ...] = (
    (e.UnknownAvatarError, 100015),
    (e.TextInputError, -111005),
    (e.AudioInputError, -111005),
    (e.InputError, INVALID_PARAMETER),
    (e.AuthError, UNAUTHORIZED),
    (e.QuotaError, QUOTA_EXCEEDED),
    (e.RateLimitError, 100012),
    (e.SessionNotFound, 110018),
    (e.SessionClosed, SESSION_CLOSED),
    (e.SessionNotReady, 110014),
    (e.SessionNotStarted, 110016),
    (e.WrongTime, 110015),
    (e.SessionReplaced, SESSION_REPLACED),
    (e.SessionError, 110015),
    (e.AvatarLoadError, -111003),
    (e.TtsError, -111005),
    (e.BackendError, INTERNAL),
)


def wire_codes() -> list[int]:
    """Every code a coded answer may carry: 0 (success) and the table's codes."""
    return sorted({0, INTERNAL, STREAM_CREATE_TIMEOUT, *(code for _, code in _TABLE)})


def wire_code(exc: BaseException) -> int:
    for cls, code in _TABLE:
        if isinstance(exc, cls):
            return code
    return INTERNAL


def public_reason(
    exc: BaseException, log: logging.Logger, failed: str, internal: str = "internal error"
) -> tuple[int, str]:
    """(wire code, message the caller may be told) for `exc`.

    One of our errors with a code of its own: its message. Anything else (a bug, a component
    that failed) is logged whole on `log` as `failed`, and the caller is told only `internal`;
    name in both what finds the log line (a RequestID, the session).
    """
    code = wire_code(exc)
    if isinstance(exc, e.AvatarcastError) and code != INTERNAL:
        return code, exc.message
    log.error("%s", failed, exc_info=exc)
    return code, internal
