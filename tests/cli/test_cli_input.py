"""CLI arguments and settings are checked where they enter: one line, exit status 2.

Arguments come through a real `python -m avatarcast` with raw bytes in argv, as a shell
hands them over: a byte that is not UTF-8 reaches Python as a lone surrogate, which used to
travel to SQLite and end in a traceback.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from avatarcast import settings
from avatarcast.errors import SettingsError


def _run(*args: str | bytes, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "avatarcast", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, **(env or {})},
    )


@pytest.mark.parametrize(
    "name", [b"\xff\xfe", b"bell\x07", "x" * 120_000], ids=["not-utf8", "control", "long"]
)
def test_a_key_name_that_is_not_text_is_exit_2(tmp_path: Path, name: str | bytes) -> None:
    done = _run("keys", "create", "--name", name, "--data-dir", str(tmp_path))
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("avatarcast: error: --name ")
    assert "Traceback" not in done.stderr


def test_a_file_name_that_is_not_utf8_still_works(tmp_path: Path) -> None:
    """Paths may hold any bytes: the check leaves them alone (the file is just missing)."""
    out = os.fsencode(tmp_path) + b"/clip\xff.mp4"
    done = _run("render", "--text", "Hi.", "--audio", b"/no/such\xff.wav", "--out", out)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        ("idle_timeout_s", "nan"),
        ("ws_idle_timeout_s", "inf"),
        ("port", "８０８０"),  # full-width digits: int() takes them
        ("port", "80_80"),
        ("default_max_sessions", "9" * 5000),
        ("voice", "en\x00us"),
    ],
)
def test_settings_values_that_are_not_what_they_say_are_refused(name: str, raw: str) -> None:
    with pytest.raises(SettingsError, match=name):
        settings.load(environ={"AVATARCAST_" + name.upper(): raw})


def test_a_bad_setting_from_the_environment_is_exit_2(tmp_path: Path) -> None:
    done = _run("keys", "list", "--data-dir", str(tmp_path), env={"AVATARCAST_PORT": "８０"})
    assert done.returncode == 2 and "port" in done.stderr and "Traceback" not in done.stderr
