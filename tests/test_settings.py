import argparse
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
