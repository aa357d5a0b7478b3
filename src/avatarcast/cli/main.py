"""The `avatarcast` command line: render | voices | avatar | serve | keys | projects | usage | say |
watch.

Every command shares the settings flags (`--data-dir`, `--config`, ...). User mistakes print
one line, `avatarcast: error: ...`, and exit with status 2; no traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from avatarcast import __version__, settings
from avatarcast.errors import AvatarcastError, InputError, RequestError, TextInputError
from avatarcast.logmask import install_on_root
from avatarcast.settings import Settings
from avatarcast.validate import check_free_text, check_name

if TYPE_CHECKING:
    from avatarcast.sessions.store import Store

COMMON = ("data_dir", "log_level")
RENDER = (
    *COMMON,
    "avatar",
    "voice",
    "tts_backend",
    "lookahead_ms",
    "lipsync_method",
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
    _add_avatar_commands(sub)
    _add_server_commands(sub)
    return p


def _add_avatar_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """avatar build | list | show | delete: custom avatars under <data_dir>/avatars/."""
    a = sub.add_parser("avatar", help="custom avatars: build one from a photo, list, show, delete")
    asub = a.add_subparsers(dest="avatar_command", required=True, metavar="ACTION")
    ab = asub.add_parser(
        "build",
        help="build an avatar from one photo or a short video; prints a JSON summary",
        description="Checks the photo (one face, large, sharp, lit, upright, facing the "
        "camera), then builds a 540x960 talking avatar from it. With --video: checks the "
        "video (one face in view, at least 3 s; any frame rate), builds an idle loop from "
        "its quietest frames and a mouth bank from the frames where the person speaks "
        "(540x960 from an upright video, 960x540 from a wide one, 540x540 or 720x720 from "
        "a square one, or --size); what would make a better avatar is printed as warnings.",
    )
    src = ab.add_mutually_exclusive_group(required=True)
    src.add_argument("--photo", metavar="FILE", help="PNG or JPEG of one person")
    src.add_argument(
        "--video", metavar="FILE", help="video of one person facing the camera (1-3 min best)"
    )
    ab.add_argument("--name", required=True, help="avatar name: lowercase letters, digits, - _")
    ab.add_argument(
        "--background",
        choices=("keep", "green", "white", "remove"),
        default="keep",
        help="keep the background, key a green/white screen, or remove it (default keep)",
    )
    ab.add_argument(
        "--size",
        metavar="WxH",
        help="video only: 540x960, 720x1280 (upright) or 960x540, 1280x720 (wide)",
    )
    ab.add_argument(
        "--transcript",
        metavar="FILE",
        help="video only: a UTF-8 text file of what the person says (English); times the "
        "mouth labels on the words",
    )
    settings.add_arguments(ab, COMMON)
    al = asub.add_parser("list", help="list avatars as JSON lines")
    settings.add_arguments(al, COMMON)
    aw = asub.add_parser("show", help="write a short preview clip of an avatar speaking")
    aw.add_argument("name")
    aw.add_argument("--out", required=True, metavar="OUT.mp4")
    aw.add_argument("--text", default="Hello! This is my new avatar. How do I look today?")
    settings.add_arguments(aw, (*COMMON, "voice", "tts_backend"))
    ad = asub.add_parser("delete", help="delete a custom avatar")
    ad.add_argument("name")
    settings.add_arguments(ad, COMMON)


def _add_server_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """serve, keys, projects, usage: the session service and the state it keeps in SQLite."""
    s = sub.add_parser(
        "serve",
        help="run the session API server (IVH-compatible HTTP + WebSocket + WHEP)",
        description="Serve the API until interrupted; Ctrl-C closes every session.",
    )
    settings.add_arguments(s)

    k = sub.add_parser("keys", help="API keys (appkey + accesstoken) and their quotas")
    ksub = k.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    kc = ksub.add_parser("create", help="create a key; prints JSON with appkey and accesstoken")
    kc.add_argument("--name", required=True, help="who the key is for")
    kc.add_argument(
        "--max-sessions",
        type=int,
        default=None,
        help="concurrent sessions allowed (default: the default_max_sessions setting)",
    )
    settings.add_arguments(kc, (*COMMON, "default_max_sessions"))
    kl = ksub.add_parser("list", help="list keys as JSON lines (never the accesstoken)")
    settings.add_arguments(kl, COMMON)
    kr = ksub.add_parser("revoke", help="revoke a key: its calls fail with 100005 from now on")
    kr.add_argument("appkey")
    settings.add_arguments(kr, COMMON)

    pr = sub.add_parser("projects", help="projects: a VirtualmanProjectId → avatar + defaults")
    psub = pr.add_subparsers(dest="projects_command", required=True, metavar="ACTION")
    pc = psub.add_parser("create", help="create a project; prints its JSON (project_id)")
    pc.add_argument("--name", required=True)
    pc.add_argument("--avatar", required=True, help="the avatar (AssetVirtualmanKey) it uses")
    pc.add_argument("--voice", help="TTS voice of its sessions (default: the voice setting)")
    pc.add_argument("--key", metavar="APPKEY", help="only this key may use it (default: all)")
    settings.add_arguments(pc, COMMON)
    pl = psub.add_parser("list", help="list projects as JSON lines")
    settings.add_arguments(pl, COMMON)

    u = sub.add_parser(
        "usage",
        help="seconds streamed per key and per session",
        description='Prints one JSON line per session then one per key ("total_s"), or a '
        "table with --table. --since counts from the start of that hour.",
    )
    u.add_argument("--key", metavar="APPKEY", help="only this key")
    u.add_argument("--since", metavar="DATE", help="YYYY-MM-DD or ISO date-time (UTC if no zone)")
    u.add_argument("--table", action="store_true", help="a table instead of JSON lines")
    settings.add_arguments(u, COMMON)

    sy = sub.add_parser(
        "say",
        help="make a live session speak an audio file or a text; prints its status events",
        description="Sends audio paced as the IVH spec says (6 chunks of 160 ms at once, then "
        "one every 120 ms) or a text for the server's TTS over the command channel, and "
        "prints each status message. Credentials: --appkey/--accesstoken (or "
        "AVATARCAST_APPKEY/AVATARCAST_ACCESSTOKEN), or --key-file with the JSON that "
        "`avatarcast keys create` printed.",
    )
    sy.add_argument("--session", required=True, metavar="ID", help="SessionId (started)")
    sy.add_argument("--audio", metavar="FILE", help="speech recording (any FFmpeg format)")
    sy.add_argument(
        "--text",
        help="text for the server's TTS voice; with --audio: the words the recording says "
        "(English: the mouth follows them)",
    )
    sy.add_argument("--url", help="server base URL (default: public_url or http://HOST:PORT)")
    sy.add_argument("--key-file", metavar="FILE", help="JSON with appkey and accesstoken")
    sy.add_argument("--voice", help="with --text: a TTS voice for this utterance")
    settings.add_arguments(sy, (*COMMON, "host", "port", "public_url", "appkey", "accesstoken"))

    dr = sub.add_parser(
        "drain",
        help="cluster: a node's media workers take no new sessions (theirs stream on)",
        description="Marks the media workers of a Ray node (or one worker, or all) as "
        "draining: placement skips them; their sessions stream until they close. --undo "
        "lets them take sessions again. Prints one JSON line per worker.",
    )
    dr.add_argument("--node", default="", help="a Ray node id (or its first characters)")
    dr.add_argument("--worker", default="", help="one worker by name (avatarcast-media-N)")
    dr.add_argument("--undo", action="store_true", help="take new sessions again")
    settings.add_arguments(dr, (*COMMON, "cluster"))

    w = sub.add_parser(
        "watch",
        help="record a live session's WebRTC stream (its WHEP URL) into an MP4",
        description="Connects to a PlayStreamAddr as a WHEP viewer and writes what arrives "
        "(decoded pictures and sound) to an MP4 file.",
    )
    w.add_argument("--url", required=True, help="the session's PlayStreamAddr (WHEP URL)")
    w.add_argument("--seconds", type=float, default=10.0, help="how long to record")
    w.add_argument("--out", required=True, metavar="OUT.mp4")
    settings.add_arguments(w, (*COMMON, "ice_host_addresses", "ice_servers"))


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
    from avatarcast.engine.offline import render_queued
    from avatarcast.engine.timeline import Engine
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
            avatar,
            seed=args.seed,
            lookahead_ms=cfg.lookahead_ms,
            language=args.language,
            lipsync_method=cfg.lipsync_method,
        )
        engine.say_audio(pcm, text=args.transcript)
        n_samples = pcm.size
    total = -(-n_samples // 640)
    video = VideoOptions(
        width=avatar.width,  # a video avatar has its own size
        height=avatar.height,
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


def _cmd_avatar(args: argparse.Namespace, cfg: Settings) -> int:
    from avatarcast.avatars import asset
    from avatarcast.avatars.registry import available_avatars, forget_avatar, load_avatar

    if args.avatar_command == "build":
        from avatarcast.avatars.photo import build_photo_avatar

        tty = sys.stderr.isatty()

        def progress(done: int, total: int, label: str) -> None:
            if tty:
                bar = "#" * int(30 * done / max(total, 1))
                sys.stderr.write(f"\rbuilding [{bar:<30}] {done}/{total} {label:<20}")
                sys.stderr.flush()

        try:
            if args.video is not None:
                from avatarcast.avatars.video import build_video_avatar, parse_size

                transcript = None
                if args.transcript is not None:
                    try:
                        transcript = Path(args.transcript).read_text("utf-8")
                    except (OSError, UnicodeDecodeError) as exc:
                        raise InputError(f"cannot read --transcript: {exc}") from None
                summary = build_video_avatar(
                    Path(args.video),
                    args.name,
                    cfg.data_dir,
                    progress,
                    parse_size(args.size),
                    transcript,
                    args.background,
                )
            else:
                if args.size is not None or args.transcript is not None:
                    raise InputError("--size and --transcript apply to --video only")
                summary = build_photo_avatar(
                    Path(args.photo), args.name, cfg.data_dir, args.background, progress
                )
        finally:
            if tty:
                sys.stderr.write("\n")
        for warn in summary.get("warnings", []):  # the build went on; say how to do better
            sys.stderr.write(f"warning: {warn['message']}\n")
        print(json.dumps(summary))
    elif args.avatar_command == "list":
        for name in available_avatars(cfg.data_dir):
            row: dict[str, object] = {"name": name, "kind": "builtin"}
            if name != "default":
                path = asset.avatars_dir(cfg.data_dir) / name
                try:
                    mf = json.loads((path / "manifest.json").read_text("utf-8"))
                    row.update(kind=mf.get("kind"), size=mf.get("size"))
                    row.update(background=mf.get("background"), created_unix=mf.get("created_unix"))
                except (OSError, ValueError) as exc:
                    row.update(kind="damaged", error=str(exc))
            print(json.dumps(row))
    elif args.avatar_command == "show":
        from avatarcast.engine.offline import render_queued
        from avatarcast.engine.timeline import Engine
        from avatarcast.speech.tts import get_backend
        from avatarcast.stream.encoder import VideoOptions

        out = Path(args.out)
        if out.suffix.lower() != ".mp4":
            raise InputError(f"--out must end in .mp4: {out}")
        avatar = load_avatar(args.name, cfg.data_dir, 540, 960)
        engine = Engine(avatar, seed=0, tts=get_backend(cfg.tts_backend), voice=cfg.voice)
        engine.say_text(args.text)
        result = render_queued(engine, out, VideoOptions(width=avatar.width, height=avatar.height))
        print(json.dumps({"name": args.name, "video": str(out), "frames": result.frames}))
    else:
        if not asset.delete_asset(cfg.data_dir, args.name):
            raise InputError(f"no custom avatar {args.name!r}")
        forget_avatar(args.name)
        print(json.dumps({"name": args.name, "deleted": True}))
    return 0


def _cmd_voices(args: argparse.Namespace, cfg: Settings) -> int:
    from avatarcast.speech.tts import get_backend

    for name in get_backend(cfg.tts_backend).voices():
        print(name)
    return 0


def _cmd_serve(args: argparse.Namespace, cfg: Settings) -> int:
    from avatarcast.api.server import serve

    serve(cfg)
    return 0


def _store(cfg: Settings) -> Store:
    from avatarcast.sessions.store import open_store

    return open_store(cfg)


def _cmd_keys(args: argparse.Namespace, cfg: Settings) -> int:
    store = _store(cfg)
    try:
        if args.keys_command == "create":
            limit = args.max_sessions if args.max_sessions is not None else cfg.default_max_sessions
            if limit < 1:
                raise InputError(f"--max-sessions must be at least 1, got {limit}")
            appkey, token = store.create_key(args.name, limit, time.time())
            # The one place the secret is shown: the operator hands it to the customer.
            print(
                json.dumps(
                    {
                        "appkey": appkey,
                        "accesstoken": token,
                        "name": args.name,
                        "max_sessions": limit,
                    }
                )
            )
        elif args.keys_command == "list":
            for key in store.list_keys():
                print(json.dumps(key.to_json()))
        else:
            if not store.revoke_key(args.appkey):
                raise InputError(f"no key {args.appkey!r}")
            print(json.dumps({"appkey": args.appkey, "revoked": True}))
    finally:
        store.close()
    return 0


def _cmd_projects(args: argparse.Namespace, cfg: Settings) -> int:
    from avatarcast.avatars.registry import available_avatars

    store = _store(cfg)
    try:
        if args.projects_command == "create":
            names = available_avatars(cfg.data_dir)
            if args.avatar not in names:
                raise InputError(f"no avatar {args.avatar!r}; available: {', '.join(names)}")
            if args.key is not None and store.max_sessions_of(args.key) == 0:
                raise InputError(f"no key {args.key!r}")
            if args.voice is not None:  # refused now, not at the first drive of a session
                from avatarcast.speech.tts import get_backend

                get_backend(cfg.tts_backend).resolve_voice(args.voice)
            project = store.create_project(
                args.name, args.avatar, voice=args.voice, appkey=args.key, now_unix=time.time()
            )
            print(json.dumps(project.to_json()))
        else:
            for p in store.list_projects():
                print(json.dumps(p.to_json()))
    finally:
        store.close()
    return 0


def _parse_since(text: str) -> float:
    from datetime import UTC, datetime

    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise InputError(f"--since must be YYYY-MM-DD or an ISO date-time, not {text!r}") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


def _cmd_usage(args: argparse.Namespace, cfg: Settings) -> int:
    since = _parse_since(args.since) if args.since else None
    store = _store(cfg)
    try:
        report = store.usage(args.key, since)
    finally:
        store.close()
    if args.table:
        print(f"{'appkey':<32}  {'session':<32}  {'user':<16}  {'seconds':>10}")
        for s in report.sessions:
            print(f"{s.appkey:<32}  {s.session_id:<32}  {s.user_id[:16]:<16}  {s.seconds:>10.1f}")
        for appkey, total in sorted(report.keys.items()):
            print(f"{appkey:<32}  {'(total)':<32}  {'':<16}  {total:>10.1f}")
        return 0
    for s in report.sessions:
        row = {
            "appkey": s.appkey,
            "session_id": s.session_id,
            "user_id": s.user_id,
            "started_unix": s.started_unix,
            "seconds": round(s.seconds, 3),
        }
        print(json.dumps(row))
    for appkey, total in sorted(report.keys.items()):
        print(json.dumps({"appkey": appkey, "total_s": round(total, 3)}))
    return 0


def _cmd_say(args: argparse.Namespace, cfg: Settings) -> int:
    from avatarcast.cli.say import run_say

    appkey, token = cfg.appkey, cfg.accesstoken
    if args.key_file:
        try:
            creds = json.loads(Path(args.key_file).read_text("utf-8"))
            appkey, token = str(creds["appkey"]), str(creds["accesstoken"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise InputError(f"cannot read appkey/accesstoken from {args.key_file}: {exc}") from exc
    if not appkey or not token:
        raise InputError("no credentials: give --key-file, or --appkey and --accesstoken")
    if args.audio is None and args.text is None:
        raise InputError("give --audio FILE, --text TEXT, or both")
    return run_say(
        (args.url or cfg.base_url).rstrip("/"),
        appkey,
        token,
        args.session,
        audio_path=args.audio,
        text=args.text,
        voice=args.voice,
    )


def _cmd_drain(args: argparse.Namespace, cfg: Settings) -> int:
    if not cfg.cluster:
        raise InputError("drain works on a cluster: give --cluster ADDRESS (the Ray head)")
    from avatarcast.cluster.pool import drain_workers

    workers = drain_workers(cfg.cluster, args.node, args.worker, on=not args.undo)
    for w in workers:
        print(json.dumps(w))
    if not workers:
        print("no media worker matched", file=sys.stderr)
        return 1
    return 0


def _cmd_watch(args: argparse.Namespace, cfg: Settings) -> int:
    import asyncio

    from avatarcast.cli.watch import record

    summary = asyncio.run(
        record(
            args.url,
            args.seconds,
            Path(args.out),
            ice_host_addresses=Settings.split(cfg.ice_host_addresses) or None,
            ice_servers=Settings.split(cfg.ice_servers),
        )
    )
    print(json.dumps(summary))
    return 0


# Arguments checked as what they are: file names may hold any bytes (Linux hands undecodable
# ones over as lone surrogates, which open() turns back into the same bytes); a text may have
# line breaks; every other string is a name, key, id or URL, with no control character.
_PATH_ARGS = frozenset(
    ("audio", "out", "mouth_track", "transcript", "photo", "video", "config", "key_file")
)
_TEXT_ARGS = frozenset(("text",))
MAX_ARG_CHARS = 100_000


def _check_arguments(args: argparse.Namespace) -> None:
    """InputError naming the first argument that is not usable text (or a finite number)."""
    for dest, value in vars(args).items():
        flag = "--" + dest.removeprefix("setting_").replace("_", "-")
        if isinstance(value, float) and not math.isfinite(value):
            raise InputError(f"{flag} must be a finite number, not {value}")
        if not isinstance(value, str) or dest in _PATH_ARGS or dest.startswith("setting_"):
            continue  # settings flags are checked by `settings.load`
        try:
            if dest in _TEXT_ARGS:
                check_free_text(value, flag, MAX_ARG_CHARS)
            else:
                check_name(value, flag, MAX_ARG_CHARS)
        except RequestError as exc:
            raise InputError(exc.message) from None


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        _check_arguments(args)
        cfg = settings.load(args)
        logging.basicConfig(
            level=cfg.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )
        install_on_root()  # no signature or token in a log line
        if cfg.log_level != "debug":
            # Their INFO lines (every ICE check, every HTTP request) drown ours.
            for noisy in ("aioice", "aiortc", "httpx", "httpcore"):
                logging.getLogger(noisy).setLevel(logging.WARNING)
        handler = {
            "render": _cmd_render,
            "voices": _cmd_voices,
            "avatar": _cmd_avatar,
            "serve": _cmd_serve,
            "drain": _cmd_drain,
            "keys": _cmd_keys,
            "projects": _cmd_projects,
            "usage": _cmd_usage,
            "say": _cmd_say,
            "watch": _cmd_watch,
        }[args.command]
        return handler(args, cfg)
    except InputError as exc:
        print(f"avatarcast: error: {exc.message}", file=sys.stderr)
        return 2
    except AvatarcastError as exc:
        print(f"avatarcast: error ({exc.code}): {exc.message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        if args.command == "serve":
            return 0  # Ctrl-C is how a foreground server is stopped; it shut down cleanly
        print("avatarcast: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
