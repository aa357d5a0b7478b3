"""Where viewers watch a WebRTC session: the WHEP resource `api.whep` serves, which a session's
PlayStreamAddr names. Written once, here, so `sessions` builds the address without importing
the HTTP layer and `api` routes exactly the path it hands out.
"""

from __future__ import annotations

WHEP_PATH = "/v2/whep/{session_id}"  # a route pattern: `{session_id}` is the SessionId


def whep_url(base_url: str, session_id: str, play_token: str) -> str:
    """PlayStreamAddr of a WebRTC session; the token lets a viewer in without a key."""
    return f"{base_url}{WHEP_PATH.format(session_id=session_id)}?token={play_token}"
