"""A real cluster on loopback for the tests: Ray nodes, PostgreSQL, API processes.

Ray advertises the machine's own address and listens on every interface, so everything here
runs inside a network namespace that has only loopback (`unshare -n`): there Ray falls back
to 127.0.0.1. `test_cluster.py`'s runner re-runs this directory inside such a namespace;
outside it every other test here is skipped (conftest.py).

A node is `ray start --block` in a session of its own (the raylet and the worker processes
it starts share that session id, while each actor has its own process group): "killing a
node" sends SIGKILL to every process of that session at once, like a machine that loses
power.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from avatarcast.client import Client

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
NETNS_ENV = "AVATARCAST_CLUSTER_NETNS"
IN_NETNS = os.environ.get(NETNS_ENV) == "1"
RUNNER = "test_cluster_in_loopback_namespace"
BIN = Path(sys.executable).parent
RAY_ENV = {"RAY_USAGE_STATS_ENABLED": "0"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def session_pids(sid: int) -> list[int]:
    """Every process whose session id is `sid`."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[3]) == sid:  # state ppid pgrp session ...
            pids.append(int(entry.name))
    return pids


def kill_session(sid: int, sig: int = signal.SIGKILL) -> int:
    n = 0
    for pid in session_pids(sid):
        try:
            os.kill(pid, sig)
            n += 1
        except ProcessLookupError:
            pass
    return n


@dataclass
class RayNode:
    proc: subprocess.Popen[bytes]
    log: Path

    def kill(self) -> None:
        """SIGKILL to the node's every process (raylet, its workers and actors)."""
        kill_session(self.proc.pid)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None or session_pids(self.proc.pid):
            kill_session(self.proc.pid, signal.SIGTERM)
            deadline = time.monotonic() + 10
            while session_pids(self.proc.pid) and time.monotonic() < deadline:
                time.sleep(0.2)
            kill_session(self.proc.pid)
        if self.proc.poll() is None:
            self.proc.wait(10)


@dataclass
class RayCluster:
    address: str
    nodes: list[RayNode] = field(default_factory=list)
    temp_dir: Path = Path()

    def stop(self) -> None:
        for node in reversed(self.nodes):
            node.stop()
        shutil.rmtree(self.temp_dir, ignore_errors=True)


def start_ray(work: Path, nodes: int = 2, media_per_node: int = 1) -> RayCluster:
    """A head and `nodes - 1` more nodes on 127.0.0.1, each offering `media_per_node`
    media workers (the `avatarcast_media` resource)."""
    port = free_port()
    # Ray's socket paths must stay short: a temp dir of its own under /tmp.
    temp = Path(tempfile.mkdtemp(prefix="acray-", dir="/tmp"))
    cluster = RayCluster(f"127.0.0.1:{port}", temp_dir=temp)
    resources = json.dumps({"avatarcast_media": media_per_node})
    common = ["--block", "--node-ip-address", "127.0.0.1", "--num-cpus", "1"]
    common += ["--resources", resources, "--disable-usage-stats"]
    try:
        for i in range(nodes):
            _start_node(cluster, work, i, common)
    except BaseException:
        cluster.stop()  # the nodes that did start, and the temp dir
        raise
    return cluster


def _start_node(cluster: RayCluster, work: Path, i: int, common: list[str]) -> None:
    if i == 0:
        port = cluster.address.rsplit(":", 1)[1]
        args = ["--head", "--port", port, "--include-dashboard", "false"]
        args += ["--temp-dir", str(cluster.temp_dir)]
    else:
        args = ["--address", cluster.address]
    log = work / f"ray-node-{i}.log"
    proc = subprocess.Popen(
        [str(BIN / "ray"), "start", *common, *args],
        env={**os.environ, **RAY_ENV},
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    cluster.nodes.append(RayNode(proc, log))
    _wait_for_nodes(cluster, i + 1)


def _wait_for_nodes(cluster: RayCluster, n: int, timeout_s: float = 60) -> None:
    probe = (
        "import ray,sys; ray.init(address=sys.argv[1], log_to_driver=False, "
        "logging_level='ERROR'); print(sum(1 for x in ray.nodes() if x['Alive']))"
    )
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for node in cluster.nodes:
            if node.proc.poll() is not None:
                raise RuntimeError(f"ray node exited: {node.log.read_text()[-2000:]}")
        out = subprocess.run(
            [sys.executable, "-c", probe, cluster.address],
            env={**os.environ, **RAY_ENV},
            capture_output=True,
            text=True,
            timeout=60,
        )
        if out.returncode == 0 and out.stdout.strip().splitlines()[-1:] == [str(n)]:
            return
        time.sleep(1)
    raise RuntimeError(f"the Ray cluster did not reach {n} nodes")


@dataclass
class ApiProcess:
    """One `avatarcast serve --cluster ...` process."""

    url: str
    proc: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def status(self, c: Client) -> dict[str, Any]:
        import httpx

        r = httpx.get(c.signed_url("/v2/status"), timeout=10)
        r.raise_for_status()
        payload: dict[str, Any] = r.json()
        return payload


def start_api(
    work: Path, data_dir: Path, cluster: str, store_url: str, name: str, **extra: str
) -> ApiProcess:
    port = free_port()
    log = work / f"api-{name}.log"
    args = [
        str(BIN / "avatarcast"),
        "serve",
        "--data-dir",
        str(data_dir),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--cluster",
        cluster,
        "--store-url",
        store_url,
        "--ice-host-addresses",
        "127.0.0.1",
        "--log-level",
        "info",
    ]
    for key, value in extra.items():
        args += [f"--{key.replace('_', '-')}", value]
    proc = subprocess.Popen(
        args,
        env={**os.environ, **RAY_ENV},
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    import httpx

    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"API process {name} exited: {log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return ApiProcess(url, proc, log)
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    proc.kill()
    raise RuntimeError(f"API process {name} did not start: {log.read_text()[-3000:]}")
