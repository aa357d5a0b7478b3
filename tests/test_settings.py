import argparse
import ast
from dataclasses import fields
from pathlib import Path

import pytest

from avatarcast import settings
from avatarcast.errors import SettingsError


def _args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    settings.add_arguments(p)
    return p.parse_args(argv)


def test_defaults() -> None:
    s = settings.load(_args([]), environ={})
    assert s.data_dir == Path("./avatarcast-data")
    assert s.lookahead_ms == 200
    assert (s.video_width, s.video_height) == (540, 960)


def test_precedence_file_env_flag(tmp_path: Path) -> None:
    cfg = tmp_path / "a.toml"
    cfg.write_text('data_dir = "/from/file"\nvoice = "cmn"\nlookahead_ms = 120\n')
    env = {"AVATARCAST_CONFIG": str(cfg), "AVATARCAST_VOICE": "en-gb"}
    s = settings.load(_args(["--lookahead-ms", "80"]), environ=env)
    assert s.data_dir == Path("/from/file")  # file only
    assert s.voice == "en-gb"  # env beats file
    assert s.lookahead_ms == 80  # flag beats file


def test_env_data_dir() -> None:
    s = settings.load(_args([]), environ={"AVATARCAST_DATA_DIR": "/tmp/x"})
    assert s.data_dir == Path("/tmp/x")


@pytest.mark.parametrize(
    "argv",
    [["--lookahead-ms", "201"], ["--lookahead-ms", "ten"], ["--video-width", "541"]],
)
def test_bad_values_are_settings_errors(argv: list[str]) -> None:
    with pytest.raises(SettingsError):
        settings.load(_args(argv), environ={})


def test_unknown_key_and_missing_file(tmp_path: Path) -> None:
    cfg = tmp_path / "b.toml"
    cfg.write_text("colour = 'blue'\n")
    with pytest.raises(SettingsError, match="colour"):
        settings.load(_args(["--config", str(cfg)]), environ={})
    with pytest.raises(SettingsError, match="not found"):
        settings.load(_args(["--config", str(tmp_path / "none.toml")]), environ={})


# ---- every setting is read by something ------------------------------------------------------
SETTINGS_NAMES = {"settings", "_settings", "cfg", "config"}  # how the code names a Settings


def _settings_reads(path: Path) -> set[str]:
    """Attribute names read from a Settings object in `path`: `<...>settings.x`, `cfg.x`, and
    inside settings.py `self.x` outside `validate` (the derived properties)."""
    tree = ast.parse(path.read_text("utf-8"))
    skip: set[int] = set()
    if path.name == "settings.py":
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef) and node.name == "validate":
                skip |= {id(n) for n in ast.walk(node)}  # checking a value is not using it
    reads: set[str] = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute) or id(node) in skip:
            continue
        if not isinstance(node.ctx, ast.Load):
            continue
        owner = node.value
        name = owner.attr if isinstance(owner, ast.Attribute) else getattr(owner, "id", "")
        if name in SETTINGS_NAMES or (path.name == "settings.py" and name == "self"):
            reads.add(node.attr)
    return reads


def test_every_setting_is_read_outside_its_validation() -> None:
    """A field that nothing reads is a setting that does nothing: users set it in vain."""
    src = Path(settings.__file__).parent
    reads: set[str] = set()
    for path in src.rglob("*.py"):
        reads |= _settings_reads(path)
    unread = [f.name for f in fields(settings.Settings) if f.name not in reads]
    assert unread == [], f"settings nobody reads: {unread}"


def test_the_walk_finds_an_unread_field(tmp_path: Path) -> None:
    """The check above can fail: a module reading one field leaves the others unread."""
    module = tmp_path / "consumer.py"
    module.write_text("def f(settings, other):\n    return settings.voice, other.port\n")
    assert _settings_reads(module) == {"voice"}


@pytest.mark.parametrize(
    ("name", "value"),
    [("tts_backend", "festival"), ("audio_bitrate_kbps", "2"), ("audio_bitrate_kbps", "999")],
)
def test_tts_backend_and_audio_bitrate_are_checked(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match="(?i)" + name.split("_")[0]):
        settings.load(_args([f"--{name.replace('_', '-')}", value]), environ={})
