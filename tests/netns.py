"""Test suites that run inside a network namespace with only loopback (`unshare -n`).

The browser tests and the cluster tests start programs that offer or bind the machine's own
addresses (Chromium's WebRTC, Ray): inside a loopback-only namespace they fall back to
127.0.0.1 and nothing reaches the network. Such a directory has one *runner* test that
re-runs the directory's tests inside a namespace (marked by an environment variable); its
conftest skips every other test outside and the runner inside (`mark_for_namespace`).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def mark_for_namespace(items: list[pytest.Item], here: Path, in_netns: bool, runner: str) -> None:
    """Outside the namespace only `runner` runs; inside it, everything but the runner."""
    for item in items:
        if here not in Path(str(item.path)).resolve().parents:
            continue
        is_runner = item.name == runner
        if not in_netns and not is_runner:
            item.add_marker(
                pytest.mark.skip(reason=f"runs inside the loopback namespace ({runner})")
            )
        elif in_netns and is_runner:
            item.add_marker(pytest.mark.skip(reason="already inside the loopback namespace"))


def run_in_loopback_namespace(here: Path, env_var: str, timeout_s: float, what: str) -> None:
    """Run the tests of `here` inside a new loopback-only namespace; pass when every one
    of them passed (the only skip inside being the runner itself)."""
    if os.geteuid() != 0:
        pytest.skip(f"the {what} need root for `unshare -n` (a loopback-only namespace)")
    if not shutil.which("unshare") or not shutil.which("ip"):
        pytest.skip(f"the {what} need unshare (util-linux) and ip (iproute2)")
    script = 'ip link set lo up && exec "$0" -m pytest -q -p no:cacheprovider "$1"'
    proc = subprocess.run(
        ["unshare", "-n", "sh", "-c", script, sys.executable, str(here)],
        cwd=REPO,
        env={**os.environ, env_var: "1"},
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    print(proc.stdout[-4000:])
    assert proc.returncode == 0, f"{proc.stdout[-8000:]}\n{proc.stderr[-4000:]}"
    summary = proc.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"\d+ passed, 1 skipped in .*", summary), summary
