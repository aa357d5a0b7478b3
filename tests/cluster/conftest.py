"""The cluster tests: two Ray nodes, PostgreSQL and two API processes, all on loopback.

They run inside a network namespace that has only loopback (see cluster_support.py); outside
it only the runner runs, which re-runs this directory inside one. To run them directly, as
root:

    unshare -n sh -c 'ip link set lo up; exec env AVATARCAST_CLUSTER_NETNS=1 \\
        .venv/bin/pytest -q tests/cluster'
"""

from __future__ import annotations

import pytest
from cluster_support import HERE, IN_NETNS, RUNNER

from netns import mark_for_namespace


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    mark_for_namespace(items, HERE, IN_NETNS, RUNNER)
