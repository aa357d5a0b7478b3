"""The one exception tree of avatarcast.

    AvatarcastError                 base; `code` is a stable machine-readable name
    ├── InputError                  the caller gave something unusable (exit status 2 in the CLI)
    │   ├── AudioInputError         missing/unreadable/empty audio file or PCM
    │   ├── TextInputError          empty or unusable text
    │   ├── UnknownAvatarError      no avatar of that name
    │   └── SettingsError           bad flag, environment variable or config-file value
    └── BackendError                a component we depend on failed (TTS library, encoder)
        ├── TtsError
        └── EncoderError

The CLI maps InputError to a one-line message and exit status 2; the API layer (later) maps
`code` to wire error codes in one table. Nothing else should invent error codes.
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


class BackendError(AvatarcastError):
    code = "backend"


class TtsError(BackendError):
    code = "tts_failed"


class EncoderError(BackendError):
    code = "encoder_failed"
