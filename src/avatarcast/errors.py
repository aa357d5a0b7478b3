"""The one exception tree of avatarcast.

    AvatarcastError                   base; `code` is a stable machine-readable name
    ├── InputError                    the caller gave something unusable (CLI exit status 2)
    │   ├── AudioInputError           missing/unreadable/empty audio file or bad PCM
    │   ├── TextInputError            empty, too long or unusable text
    │   ├── UnknownAvatarError        no avatar of that name
    │   ├── SettingsError             bad flag, environment variable or config-file value
    │   └── RequestError              a malformed API request or drive message (field named)
    ├── AuthError                     bad key, signature or timestamp
    ├── QuotaError                    concurrency limit of a key reached
    ├── RateLimitError                requests or messages too frequent
    ├── SessionError                  a session-state problem
    │   ├── SessionNotFound
    │   ├── SessionClosed
    │   ├── SessionNotReady           not status 1 (ready) when it must be
    │   ├── SessionNotStarted         drive command before `startsession`
    │   ├── WrongTime                 command sent at the wrong time
    │   └── SessionReplaced           closed because a new stream was made for the same UserId
    └── BackendError                  a component we depend on failed
        ├── TtsError
        ├── EncoderError
        └── AvatarLoadError

The CLI maps InputError to one line and exit status 2. Each class maps to its wire
code in exactly one table (`avatarcast.codes`). Nothing else invents error codes.
"""

from __future__ import annotations


class AvatarcastError(Exception):
    code = "internal"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InputError(AvatarcastError):
    code = "bad_input"


class AudioInputError(InputError):
    code = "bad_audio"


class TextInputError(InputError):
    code = "bad_text"


class UnknownAvatarError(InputError):
    code = "unknown_avatar"


class SettingsError(InputError):
    code = "bad_setting"


class RequestError(InputError):
    code = "bad_request"


class AuthError(AvatarcastError):
    code = "unauthorized"


class QuotaError(AvatarcastError):
    code = "quota_exceeded"


class CapacityError(QuotaError):
    """The server is full: every media worker is at its load limit (100008, with why)."""

    code = "server_full"


class RateLimitError(AvatarcastError):
    code = "too_frequent"


class SessionError(AvatarcastError):
    code = "session"


class SessionNotFound(SessionError):
    code = "session_not_found"


class SessionClosed(SessionError):
    code = "session_closed"


class SessionNotReady(SessionError):
    code = "session_not_ready"


class SessionNotStarted(SessionError):
    code = "session_not_started"


class WrongTime(SessionError):
    code = "wrong_time"


class SessionReplaced(SessionError):
    code = "session_replaced"


class BackendError(AvatarcastError):
    code = "backend"


class TtsError(BackendError):
    code = "tts_failed"


class EncoderError(BackendError):
    code = "encoder_failed"


class AvatarLoadError(BackendError):
    code = "avatar_load_failed"


class MediaWorkerError(BackendError):
    """The media worker process holding a session died."""

    code = "media_worker_died"
