"""`avatarcast watch`: record a session's WebRTC stream (its WHEP URL) into an MP4.

A way to see a live session without a browser, and a check that what viewers receive is
right: the file holds the decoded pictures and sound exactly as a WHEP viewer got them.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import httpx
import numpy as np

from avatarcast.client.viewer import WhepError, WhepViewer
from avatarcast.errors import InputError
from avatarcast.render.frame import YuvFrame
from avatarcast.speech.audio import resample
from avatarcast.stream.encoder import VideoOptions
from avatarcast.stream.mp4 import Mp4Writer


async def record(
    play_url: str,
    seconds: float,
    out: Path,
    *,
    ice_host_addresses: Sequence[str] | None = None,
    ice_servers: Sequence[str] = (),
) -> dict[str, object]:
    """Watch `play_url` for `seconds` and write what arrived to `out` (H.264 + AAC)."""
    if seconds <= 0:
        raise InputError("--seconds must be positive")
    audio: list[np.ndarray] = []
    frames = 0
    tmp = out.with_name(f".{out.name}.partial.mp4")
    try:
        async with WhepViewer(
            play_url,
            ice_host_addresses=ice_host_addresses,
            ice_servers=ice_servers,
            color=True,
            max_video_frames=50,
            max_audio_frames=int(seconds * 50) + 100,
        ) as viewer:
            first = (await viewer.wait_frames(1, timeout_s=10))[0]
            opts = VideoOptions(width=first.width, height=first.height)
            deadline = time.monotonic() + seconds
            with Mp4Writer(tmp, opts, audio=True) as writer:
                async for sample in viewer.video_frames(idle_timeout_s=5.0):
                    if sample.yuv is None or time.monotonic() > deadline:
                        break
                    writer.write_video(YuvFrame(sample.yuv, sample.width, sample.height))
                    frames += 1
                audio = [a.pcm for a in viewer.audio]
                pcm48 = np.concatenate(audio) if audio else np.zeros(0, np.int16)
                writer.write_audio(resample(pcm48, 48_000))
    except WhepError as exc:
        tmp.unlink(missing_ok=True)
        raise InputError(
            f"the server refused to play {play_url}: {exc.status} {exc.reason}"
        ) from exc
    except (OSError, TimeoutError, httpx.HTTPError) as exc:
        tmp.unlink(missing_ok=True)
        raise InputError(f"cannot watch {play_url}: {exc}") from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    tmp.replace(out)
    return {"video": str(out), "frames": frames, "seconds": round(frames / 25, 2)}
