"""The `avatarcast` command line: render | voices (serve, keys, say, avatar come with later issues).

Every command shares the settings flags (`--data-dir`, `--config`, ...). User mistakes print
one line, `avatarcast: error: ...`, and exit with status 2; no traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from avatarcast import __version__, settings
from avatarcast.errors import AvatarcastError, InputError, TextInputError
from avatarcast.settings import Settings

COMMON = ("data_dir", "log_level")
RENDER = (
    *COMMON,
    "avatar",
    "voice",
    "tts_backend",
    "lookahead_ms",
    "video_width",
    "video_height",
    "x264_preset",
    "video_bitrate_kbps",
    "keyframe_interval_s",
    "audio_bitrate_kbps",
    "max_text_chars",
)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="avatarcast", description=__doc__)
    p.add_argument("--version", action="version", version=f"avatarcast {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    r = sub.add_parser(
        "render",
        help="render speech (audio file or text) to an MP4 of the talking avatar",
        description="Render an MP4 (H.264 25 fps + AAC) of the avatar saying an audio file "
        "or a text. Audio: any format FFmpeg reads. Text: spoken by the TTS voice.",
    )
    src = r.add_mutually_exclusive_group(required=True)
    src.add_argument("--audio", metavar="FILE", help="speech recording (wav, mp3, m4a, ogg, ...)")
    src.add_argument("--text", help="text to speak with the TTS voice")
    r.add_argument("--out", required=True, metavar="OUT.mp4", help="output video file")
    r.add_argument(
        "--mouth-track", metavar="TRACK.json", help="also write the per-frame mouth track"
    )
    r.add_argument(
        "--alpha", action="store_true", help="also write the matte beside the video (OUT.alpha.mp4)"
    )
    r.add_argument(
        "--transcript", help="with --audio: the words spoken (English), for a more exact mouth"
    )
    r.add_argument(
        "--language",
        default="en",
        help="with --audio: language of the speech; non-English uses the "
        "language-independent lip-sync (default en)",
    )
    r.add_argument("--seed", type=int, default=0, help="seed of the idle motion (blinks, sway)")
    settings.add_arguments(r, RENDER)

    v = sub.add_parser("voices", help="list the TTS voices")
    settings.add_arguments(v, (*COMMON, "tts_backend"))
    return p


class _Progress:
    """A one-line progress bar on a terminal; silent otherwise."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.enabled = sys.stderr.isatty()
        self._last = 0.0

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self._last < 0.1 and done < total:
            return
        self._last = now
        frac = min(1.0, done / max(total, 1))
        bar = "#" * int(frac * 30)
        sys.stderr.write(f"\r{self.label} [{bar:<30}] {done}/{total} frames")
        sys.stderr.flush()

    def end(self) -> None:
        if self.enabled:
            sys.stderr.write("\n")


def _cmd_render(args: argparse.Namespace, cfg: Settings) -> int:
    from avatarcast.avatars.registry import load_avatar
    from avatarcast.engine import Engine
    from avatarcast.offline import render_queued
    from avatarcast.speech.audio import load_audio
    from avatarcast.speech.tts import get_backend
    from avatarcast.stream.encoder import VideoOptions

    out = Path(args.out)
    if out.suffix.lower() != ".mp4":
        raise InputError(f"--out must end in .mp4: {out}")
    if args.text is not None and not args.text.strip():
        raise TextInputError("--text is empty")
    if args.text is not None and len(args.text) > cfg.max_text_chars:
        raise TextInputError(
            f"--text has {len(args.text)} characters, more than max_text_chars={cfg.max_text_chars}"
        )
    avatar = load_avatar(cfg.avatar, cfg.data_dir, cfg.video_width, cfg.video_height)
    if args.text is not None:
        tts = get_backend(cfg.tts_backend)
        engine = Engine(avatar, seed=args.seed, tts=tts, voice=cfg.voice)
        utt = engine.say_text(args.text)
        n_samples = utt.pcm.size
    else:
        pcm = load_audio(args.audio)
        engine = Engine(
            avatar, seed=args.seed, lookahead_ms=cfg.lookahead_ms, language=args.language
        )
        engine.say_audio(pcm, text=args.transcript)
        n_samples = pcm.size
    total = -(-n_samples // 640)
    video = VideoOptions(
        width=cfg.video_width,
        height=cfg.video_height,
        preset=cfg.x264_preset,
        bitrate_kbps=cfg.video_bitrate_kbps,
        keyframe_interval_s=cfg.keyframe_interval_s,
    )
    progress = _Progress("rendering")
    t0 = time.perf_counter()
    result = render_queued(
        engine,
        out,
        video,
        alpha=args.alpha,
        mouth_track=Path(args.mouth_track) if args.mouth_track else None,
        progress=progress,
        total_frames=total,
        audio_bitrate_kbps=cfg.audio_bitrate_kbps,
    )
    progress.end()
    took = time.perf_counter() - t0
    summary = {
        "video": str(result.video_path),
        "frames": result.frames,
        "duration_s": round(result.duration_s, 3),
        "render_s": round(took, 3),
        "speed_x_realtime": round(result.duration_s / took, 2) if took > 0 else None,
    }
    if result.alpha_path:
        summary["alpha"] = str(result.alpha_path)
    if result.mouth_track_path:
        summary["mouth_track"] = str(result.mouth_track_path)
    print(json.dumps(summary))
    return 0


def _cmd_voices(args: argparse.Namespace, cfg: Settings) -> int:
    from avatarcast.speech.tts import get_backend

    for name in get_backend(cfg.tts_backend).voices():
        print(name)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        cfg = settings.load(args)
        logging.basicConfig(
            level=cfg.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )
        handler = {"render": _cmd_render, "voices": _cmd_voices}[args.command]
        return handler(args, cfg)
    except InputError as exc:
        print(f"avatarcast: error: {exc.message}", file=sys.stderr)
        return 2
    except AvatarcastError as exc:
        print(f"avatarcast: error ({exc.code}): {exc.message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("avatarcast: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
