"""One settings object for every command.

A field has three spellings that mean the same thing: the flag `--data-dir`, the environment
variable `AVATARCAST_DATA_DIR` and the TOML key `data_dir` (top level of the file given by
`--config` / `AVATARCAST_CONFIG`). Precedence, lowest first: default, config file, environment,
flag. Values are parsed and checked here, once; the rest of the code reads typed attributes.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import MISSING, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from avatarcast.errors import RequestError, SettingsError
from avatarcast.validate import check_name

ENV_PREFIX = "AVATARCAST_"


def _help(text: str) -> dict[str, Any]:
    return {"help": text}


@dataclass(frozen=True)
class Settings:
    data_dir: Path = field(
        default=Path("./avatarcast-data"),
        metadata=_help("where avatars, keys and records live"),
    )
    store_url: str = field(
        default="",
        metadata=_help(
            "where keys, projects, usage and sessions are kept: empty = SQLite in DATA_DIR; "
            "a postgresql:// URL = PostgreSQL, shared by the API processes of a cluster "
            "(a password in it: prefer the env variable)"
        ),
    )
    log_level: str = field(default="info", metadata=_help("debug, info, warning or error"))
    avatar: str = field(default="default", metadata=_help("avatar used when none is named"))
    tts_backend: str = field(
        default="auto", metadata=_help("text-to-speech backend: auto (by voice), espeak, piper")
    )
    voice: str = field(
        default="en-us", metadata=_help("TTS voice or language (en-us, cmn, joe, ...)")
    )
    lookahead_ms: int = field(
        default=200, metadata=_help("lip-sync lookahead for audio input, 0..200 ms")
    )
    lipsync_method: str = field(
        default="model",
        metadata=_help(
            "audio lip-sync: model (fast, any language), recognizer (English phone "
            "recognition, ~5x the CPU) or floor (energy/spectrum only)"
        ),
    )
    video_width: int = field(default=540, metadata=_help("output width in pixels (even)"))
    video_height: int = field(default=960, metadata=_help("output height in pixels (even)"))
    x264_preset: str = field(default="ultrafast", metadata=_help("libx264 preset"))
    video_bitrate_kbps: int = field(default=1500, metadata=_help("H.264 target bitrate"))
    keyframe_interval_s: float = field(default=2.0, metadata=_help("maximum GOP length"))
    idle_loop_shared: bool = field(
        default=True,
        metadata=_help(
            "idle sessions play an idle loop encoded once per avatar (shared) instead of "
            "rendering and encoding every frame"
        ),
    )
    audio_bitrate_kbps: int = field(
        default=64, metadata=_help("audio bitrate of every output (WebRTC Opus, RTMP/MP4 AAC)")
    )
    max_text_chars: int = field(default=5000, metadata=_help("longest text accepted for TTS"))
    host: str = field(default="127.0.0.1", metadata=_help("address the server listens on"))
    port: int = field(default=8080, metadata=_help("port the server listens on"))
    public_url: str = field(
        default="",
        metadata=_help("base URL viewers use (PlayStreamAddr); default http://HOST:PORT"),
    )
    idle_timeout_s: float = field(
        default=600.0, metadata=_help("close a session after this long without drive/heartbeat")
    )
    ws_idle_timeout_s: float = field(
        default=180.0, metadata=_help("drop a command-channel socket silent this long")
    )
    default_max_sessions: int = field(
        default=4, metadata=_help("concurrent sessions of a new key unless --max-sessions")
    )
    max_audio_buffer_s: float = field(
        default=30.0, metadata=_help("audio a session buffers ahead of playback, in seconds")
    )
    max_messages_per_s: int = field(
        default=50, metadata=_help("command-channel messages per second before 100012")
    )
    media_workers: int = field(
        default=-1,
        metadata=_help(
            "media worker processes that run the sessions: -1 = one per core, 0 = none "
            "(sessions run inside the API process)"
        ),
    )
    worker_max_load: float = field(
        default=0.8,
        metadata=_help(
            "a media worker takes no new session above this CPU load (cores used, measured "
            "over 5 s); when every worker is there, createsession answers 100008"
        ),
    )
    worker_max_sessions: int = field(
        default=0, metadata=_help("sessions per media worker at most; 0 = limited by load only")
    )
    cluster: str = field(
        default="",
        metadata=_help(
            "a Ray cluster's address (host:port of its head): sessions' media run in media "
            "worker actors on its nodes; empty = worker processes on this machine"
        ),
    )
    avatar_build_workers: int = field(
        default=1, metadata=_help("avatar builds run at once (low-priority processes)")
    )
    avatar_upload_max_mb: int = field(
        default=512, metadata=_help("largest avatar material upload (customservice/upload), MiB")
    )
    replay_nonce: bool = field(
        default=False,
        metadata=_help(
            "ours: every signed URL must carry a signed nonce, accepted once (replay "
            "protection; off by default, as the cloud's clients send none)"
        ),
    )
    appkey: str = field(default="", metadata=_help("key used by client commands (say)"))
    accesstoken: str = field(
        default="", metadata=_help("secret of that key (prefer the env variable or a file)")
    )
    ice_servers: str = field(
        default="", metadata=_help("comma-separated STUN/TURN URLs offered to WebRTC peers")
    )
    ice_username: str = field(default="", metadata=_help("TURN username"))
    ice_credential: str = field(default="", metadata=_help("TURN credential"))
    ice_host_addresses: str = field(
        default="", metadata=_help("comma-separated local IPs for WebRTC candidates; empty = all")
    )
    livekit_url: str = field(
        default="", metadata=_help("LiveKit server for Protocol trtc (ws:// or wss://)")
    )
    livekit_api_key: str = field(default="", metadata=_help("LiveKit API key (mints tokens)"))
    livekit_api_secret: str = field(
        default="", metadata=_help("LiveKit API secret (prefer the env variable or a file)")
    )
    livekit_viewer_token_ttl_s: int = field(
        default=21600, metadata=_help("lifetime of the viewer token in PlayStreamAddr, seconds")
    )
    janus_url: str = field(
        default="",
        metadata=_help(
            "Janus HTTP API root for Protocol janus, e.g. http://127.0.0.1:8088/janus; "
            "empty = no janus protocol"
        ),
    )
    janus_api_secret: str = field(
        default="", metadata=_help("Janus API secret (its apisecret), sent with every request")
    )
    janus_token: str = field(
        default="", metadata=_help("Janus auth token (its token_auth), sent with every request")
    )
    janus_room_default: int = field(
        default=0,
        metadata=_help(
            "Janus room of sessions without ProtocolOption.RoomId; 0 = a room of each session's own"
        ),
    )
    rtmp_ingest_url: str = field(
        default="",
        metadata=_help(
            "RTMP ingest the rtmp protocol pushes to, e.g. rtmp://127.0.0.1:1935/live "
            "(the stream key, the SessionId, is appended); empty = only CssCustomPushUrl"
        ),
    )
    rtmp_push_hosts: str = field(
        default="",
        metadata=_help(
            "hosts (host or host:port, comma-separated; * = any) a CssCustomPushUrl may "
            "push to; empty = the host of rtmp_ingest_url only (none without an ingest)"
        ),
    )
    rtmp_play_url_template: str = field(
        default="",
        metadata=_help(
            "PlayStreamAddr of rtmp sessions, e.g. rtmp://cdn.example/live/{stream_key}; "
            "empty = the push URL"
        ),
    )
    rtmp_reconnect_max_s: float = field(
        default=10.0, metadata=_help("longest wait between RTMP reconnect attempts, seconds")
    )
    record_sessions: bool = field(
        default=False, metadata=_help("record every session to an MP4 file (audits)")
    )
    record_dir: str = field(
        default="", metadata=_help("where recordings go; empty = DATA_DIR/records")
    )

    def validate(self) -> Settings:
        if not 0 <= self.lookahead_ms <= 200:
            raise SettingsError(f"lookahead_ms must be within 0..200, got {self.lookahead_ms}")
        for name in ("video_width", "video_height"):
            v = getattr(self, name)
            if v < 64 or v > 4096 or v % 2:
                raise SettingsError(f"{name} must be an even number in 64..4096, got {v}")
        from avatarcast.speech.tts import check_backend  # the registry lives with the backends

        check_backend(self.tts_backend)
        if not 6 <= self.audio_bitrate_kbps <= 256:
            raise SettingsError(
                f"audio_bitrate_kbps must be within 6..256, got {self.audio_bitrate_kbps}"
            )
        if self.lipsync_method not in ("model", "recognizer", "floor"):
            raise SettingsError(
                f"lipsync_method must be model, recognizer or floor, not {self.lipsync_method}"
            )
        if self.store_url and not self.store_url.startswith(("postgresql://", "postgres://")):
            # The value is not repeated: it may hold a password.
            raise SettingsError(
                "store_url must be empty (SQLite in the data directory) or a postgresql:// "
                "(or postgres://) URL"
            )
        if self.log_level not in ("debug", "info", "warning", "error"):
            raise SettingsError(f"log_level must be debug/info/warning/error, not {self.log_level}")
        if self.keyframe_interval_s <= 0 or self.keyframe_interval_s > 10:
            raise SettingsError("keyframe_interval_s must be in (0, 10]")
        if self.max_text_chars < 1:
            raise SettingsError("max_text_chars must be positive")
        for name in ("idle_timeout_s", "ws_idle_timeout_s", "max_audio_buffer_s"):
            if getattr(self, name) <= 0:
                raise SettingsError(f"{name} must be positive")
        if self.media_workers < -1 or self.worker_max_sessions < 0:
            raise SettingsError("media_workers must be -1 or more, worker_max_sessions 0 or more")
        if not 0 < self.worker_max_load <= 64:
            raise SettingsError(f"worker_max_load must be in (0, 64], got {self.worker_max_load}")
        if self.avatar_build_workers < 1:
            raise SettingsError("avatar_build_workers must be at least 1")
        if self.avatar_upload_max_mb < 1:
            raise SettingsError("avatar_upload_max_mb must be at least 1")
        if self.default_max_sessions < 1 or self.max_messages_per_s < 1:
            raise SettingsError("default_max_sessions and max_messages_per_s must be positive")
        if not 0 < self.port < 65536:
            raise SettingsError(f"port must be in 1..65535, got {self.port}")
        if self.rtmp_ingest_url and not self.rtmp_ingest_url.startswith(("rtmp://", "rtmps://")):
            raise SettingsError(
                f"rtmp_ingest_url must be an rtmp:// URL, not {self.rtmp_ingest_url}"
            )
        if self.rtmp_play_url_template:
            try:
                self.rtmp_play_url_template.format(stream_key="k", session_id="s")
            except (KeyError, IndexError, ValueError) as exc:
                raise SettingsError(
                    "rtmp_play_url_template may use only {stream_key} and {session_id}"
                ) from exc
        if self.janus_url and not self.janus_url.startswith(("http://", "https://")):
            raise SettingsError(f"janus_url must be an http(s):// URL, not {self.janus_url}")
        if not 0 <= self.janus_room_default <= 2**53 - 1:
            raise SettingsError("janus_room_default must be within 0..2^53-1")
        if not 0.5 <= self.rtmp_reconnect_max_s <= 600:
            raise SettingsError("rtmp_reconnect_max_s must be within 0.5..600")
        return self

    @property
    def base_url(self) -> str:
        """Where clients reach this server (PlayStreamAddr, demo URL)."""
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")

    @property
    def record_path(self) -> Path:
        """Directory of session recordings."""
        return Path(self.record_dir).expanduser() if self.record_dir else self.data_dir / "records"

    @property
    def db_path(self) -> Path:
        """SQLite store of keys, projects and usage."""
        return self.data_dir / "avatarcast.db"

    @staticmethod
    def split(value: str) -> list[str]:
        """A comma-separated setting as a list (empty entries dropped)."""
        return [v.strip() for v in value.split(",") if v.strip()]


_FIELDS = {f.name: f for f in fields(Settings)}
_INT_TEXT = re.compile(r"-?[0-9]{1,18}")
MAX_SETTING_CHARS = 4096


def _coerce(name: str, raw: Any) -> Any:
    f = _FIELDS[name]
    default = f.default if f.default is not MISSING else None
    try:
        if isinstance(default, Path):
            return Path(str(raw)).expanduser()
        if isinstance(default, bool):
            if isinstance(raw, bool):
                return raw
            s = str(raw).strip().lower()
            if s in ("1", "true", "yes", "on"):
                return True
            if s in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
        if isinstance(default, int):
            if isinstance(raw, (float, bool)):
                raise ValueError(raw)
            # ASCII digits only (int() also takes "１２", "1_0"), at most 18 of them.
            if isinstance(raw, str) and not _INT_TEXT.fullmatch(raw.strip()):
                raise ValueError(raw)
            return int(raw)
        if isinstance(default, float):
            value = float(raw)
            if not math.isfinite(value):  # "nan" and "inf" parse, and slip past every bound
                raise ValueError(raw)
            return value
        return check_name(str(raw), name, MAX_SETTING_CHARS)
    except RequestError as exc:
        raise SettingsError(f"bad value for {name}: {exc.message}") from None
    except (TypeError, ValueError) as exc:
        raise SettingsError(f"bad value for {name}: {raw!r}") from exc


def add_arguments(parser: argparse.ArgumentParser, only: Sequence[str] | None = None) -> None:
    """Add `--config` and one flag per settings field (all, or those named in `only`)."""
    parser.add_argument("--config", metavar="FILE", help="TOML settings file")
    for f in fields(Settings):
        if only is not None and f.name not in only:
            continue
        flag = "--" + f.name.replace("_", "-")
        parser.add_argument(
            flag,
            dest=f"setting_{f.name}",
            default=None,
            metavar=f.name.upper(),
            help=f"{f.metadata.get('help', '')} (default {f.default}; env "
            f"{ENV_PREFIX}{f.name.upper()})",
        )


def load(
    args: argparse.Namespace | None = None,
    environ: Mapping[str, str] | None = None,
    config_file: str | Path | None = None,
) -> Settings:
    """Build the settings from defaults, a TOML file, the environment and parsed flags."""
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    path = config_file or (getattr(args, "config", None) if args else None)
    path = path or env.get(ENV_PREFIX + "CONFIG")
    if path:
        p = Path(path)
        try:
            data = tomllib.loads(p.read_text("utf-8"))
        except FileNotFoundError as exc:
            raise SettingsError(f"config file not found: {p}") from exc
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise SettingsError(f"cannot read config file {p}: {exc}") from exc
        for key, raw in data.items():
            if key not in _FIELDS:
                raise SettingsError(f"unknown setting {key!r} in {p}")
            values[key] = _coerce(key, raw)
    for name in _FIELDS:
        raw_env = env.get(ENV_PREFIX + name.upper())
        if raw_env is not None and raw_env != "":
            values[name] = _coerce(name, raw_env)
    if args is not None:
        for name in _FIELDS:
            raw_flag = getattr(args, f"setting_{name}", None)
            if raw_flag is not None:
                values[name] = _coerce(name, raw_flag)
    return replace(Settings(), **values).validate()
