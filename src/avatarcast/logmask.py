"""No secret in a log line: query secrets are masked before any handler formats a record.

The access log prints every request line, and a request's URL carries `signature=…` (a
credential for every endpoint of its key until the timestamp is 300 s old), a WHEP URL
`token=…` (the viewing capability). `MaskSecrets` rewrites such values to `***` in a record's
message and arguments. It sits on the loggers that print URLs (uvicorn's access and error
loggers, set up by `uvicorn_log_config`) and on the CLI's root handler, so every handler,
a test's included, sees the masked record.
"""

from __future__ import annotations

import copy
import logging
import re
from typing import Any

import uvicorn.config

# Query parameters (and `name=value` pairs in messages) whose value is a secret: any name
# ending in one of these (`signature`, `token`, `accesstoken`, `play_token`, `api_secret`, ...).
SECRET_SUFFIXES = ("signature", "token", "secret", "credential", "password")
_SECRET = re.compile(
    r"(?i)(?<![0-9a-z_])([0-9a-z_]*(?:" + "|".join(SECRET_SUFFIXES) + r"))(=|%3D)[^&\s\"'#]*"
)
MASK = "***"


def mask(text: str) -> str:
    """`text` with the value of every secret parameter replaced by `***`."""
    return _SECRET.sub(lambda m: f"{m.group(1)}{m.group(2)}{MASK}", text)


class MaskSecrets(logging.Filter):
    """Masks secrets in `record.msg` and in its string arguments (formatters such as
    uvicorn's access formatter read the arguments themselves, so they stay a tuple)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = mask(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(mask(a) if isinstance(a, str) else a for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {k: mask(v) if isinstance(v, str) else v for k, v in record.args.items()}
        return True


def uvicorn_log_config() -> dict[str, Any]:
    """uvicorn's logging configuration with `MaskSecrets` on the loggers that print URLs."""
    config: dict[str, Any] = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
    config["filters"] = {"mask_secrets": {"()": "avatarcast.logmask.MaskSecrets"}}
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        config["loggers"].setdefault(name, {})["filters"] = ["mask_secrets"]
    return config


def install_on_root() -> None:
    """Mask secrets in everything the root logger's handlers print (the CLI's logging)."""
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, MaskSecrets) for f in handler.filters):
            handler.addFilter(MaskSecrets())
