"""Which protocols a server offers: decided by the output modules from the settings."""

from __future__ import annotations

from avatarcast.settings import Settings
from avatarcast.stream import outputs


def test_protocols_are_supported_and_configured_from_the_settings() -> None:
    bare = Settings()
    assert [p for p in ("webrtc", "rtmp", "trtc") if outputs.supported(p)] == [
        "webrtc",
        "rtmp",
        "trtc",
    ]
    assert not outputs.supported("srt")
    # Without destinations only WebRTC can be used without per-session options.
    assert [p for p in ("webrtc", "rtmp", "trtc") if outputs.configured(p, bare)] == ["webrtc"]
    full = Settings(
        rtmp_ingest_url="rtmp://127.0.0.1:1935/live",
        livekit_url="ws://127.0.0.1:7880",
        livekit_api_key="key",
        livekit_api_secret="secret",
    )
    assert all(outputs.configured(p, full) for p in ("webrtc", "rtmp", "trtc"))
    # A LiveKit URL without the key that mints tokens is not enough.
    assert not outputs.configured("trtc", Settings(livekit_url="ws://127.0.0.1:7880"))
    assert not outputs.configured("srt", full)
