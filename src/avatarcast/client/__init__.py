"""Python clients of a running server: the signed API client and a WHEP viewer.

`from avatarcast.client import Client` is the documented entry point; the WHEP viewer is
`avatarcast.client.viewer.WhepViewer`.
"""

from avatarcast.client.api import (
    CHANNEL_PATH,
    COMMAND_PATH,
    CUSTOM_BASE,
    SESSION_BASE,
    ApiError,
    AvatarBuildError,
    Client,
    new_req_id,
)

__all__ = [
    "CHANNEL_PATH",
    "COMMAND_PATH",
    "CUSTOM_BASE",
    "SESSION_BASE",
    "ApiError",
    "AvatarBuildError",
    "Client",
    "new_req_id",
]
