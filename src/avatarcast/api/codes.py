"""The one table from exceptions to IVH wire error codes (spec section 6)."""

from __future__ import annotations

from avatarcast import errors as e

# Most specific classes first: the first isinstance match wins.
_TABLE: tuple[tuple[type[BaseException], int], ...] = (
    (e.UnknownAvatarError, 100015),
    (e.TextInputError, -111005),
    (e.AudioInputError, -111005),
    (e.InputError, 100001),
    (e.AuthError, 100005),
    (e.QuotaError, 100008),
    (e.RateLimitError, 100012),
    (e.SessionNotFound, 110018),
    (e.SessionClosed, 110013),
    (e.SessionNotReady, 110014),
    (e.SessionNotStarted, 110016),
    (e.WrongTime, 110015),
    (e.SessionReplaced, 110022),
    (e.SessionError, 110015),
    (e.AvatarLoadError, -111003),
    (e.TtsError, -111005),
    (e.BackendError, -101000),
)

INTERNAL = -101000
INVALID_PARAMETER = 100001
UNAUTHORIZED = 100005
QUOTA_EXCEEDED = 100008
SESSION_REPLACED = 110022
IDLE_CLOSED = 110013  # statsession of a session closed for idleness (ErrorMessage says why)
STREAM_CREATE_TIMEOUT = -111004  # statsession of a session whose stream did not start in time


def wire_codes() -> list[int]:
    """Every code a coded answer may carry: 0 (success) and the table's codes."""
    return sorted({0, INTERNAL, STREAM_CREATE_TIMEOUT, *(code for _, code in _TABLE)})


def wire_code(exc: BaseException) -> int:
    for cls, code in _TABLE:
        if isinstance(exc, cls):
            return code
    return INTERNAL
