"""The cluster tests: two Ray nodes, PostgreSQL and two API processes, all on loopback.

They run inside a network namespace that has only loopback (see cluster_support.py); outside
it only the runner runs, which re-runs this directory inside one. To run them directly, as
root:

    unshare -n sh -c 'ip link set lo up; exec env AVATARCAST_CLUSTER_NETNS=1 \\
        .venv/bin/pytest -q tests/cluster'
"""

from __future__ import annotations

from pathlib import Path

import pytest
from cluster_support import HERE, IN_NETNS, RUNNER


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Outside the namespace only the runner runs; inside it, everything but the runner."""
    for item in items:
        if HERE not in Path(str(item.path)).resolve().parents:
            continue
        is_runner = item.name == RUNNER
        if not IN_NETNS and not is_runner:
            reason = f"runs inside the loopback namespace ({RUNNER})"
            item.add_marker(pytest.mark.skip(reason=reason))
        elif IN_NETNS and is_runner:
            item.add_marker(pytest.mark.skip(reason="already inside the loopback namespace"))
