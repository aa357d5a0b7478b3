"""Sessions on a Ray cluster with the shared state in PostgreSQL, all real, on loopback.

Two Ray nodes (one media worker each, one session per worker), a throwaway PostgreSQL and two
`avatarcast serve --cluster` processes sharing one data directory: sessions created through
either API process land on both nodes and stream; the command channel and WHEP work through
the API process that did not create the session; a race of creates through both processes
never passes a key's limit; SIGKILL of a whole node fails only its session within 15 s, with
the reason, a notice on its command channel, its usage kept and its quota freed.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cluster_support import (
    BIN,
    HERE,
    NETNS_ENV,
    ApiProcess,
    RayCluster,
    start_api,
    start_ray,
)
from websockets.sync.client import connect

from avatarcast.client import ApiError, Client
from avatarcast.client.viewer import WhepViewer
from netns import run_in_loopback_namespace

SUITE_TIMEOUT_S = 900


# ---- the runner (outside the namespace) --------------------------------------------------
def test_cluster_in_loopback_namespace() -> None:
    run_in_loopback_namespace(HERE, NETNS_ENV, SUITE_TIMEOUT_S, "cluster tests")


# ---- the stack ---------------------------------------------------------------------------
@dataclass
class Stack:
    ray: RayCluster
    apis: list[ApiProcess]
    store_url: str

    def client(self, api: int, appkey: str, token: str) -> Client:
        return Client(self.apis[api].url, appkey, token, timeout_s=30)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, pg_server: Any) -> Iterator[Stack]:
    work = tmp_path_factory.mktemp("cluster")
    store_url = pg_server.new_database()
    ray = start_ray(work, nodes=2, media_per_node=1)
    apis: list[ApiProcess] = []
    try:
        for name in ("a", "b"):
            apis.append(
                start_api(
                    work,
                    work / "data",
                    ray.address,
                    store_url,
                    name,
                    worker_max_sessions="1",
                    # Admission by session count only: CPU load on a busy test machine
                    # would make which worker has room a matter of chance.
                    worker_max_load="8",
                    idle_timeout_s="300",
                )
            )
        yield Stack(ray, apis, store_url)
    finally:
        for api in apis:
            api.stop()
        ray.stop()
        for log in sorted(work.glob("*.log")):
            print(f"---- {log.name}\n{log.read_text(errors='replace')[-3000:]}")


def _key(stack: Stack, max_sessions: int) -> tuple[str, str]:
    from avatarcast.sessions.store_pg import PgStore

    store = PgStore(stack.store_url)
    try:
        return store.create_key("cluster", max_sessions)
    finally:
        store.close()


def _status(c: Client) -> dict[str, Any]:
    import httpx

    body: dict[str, Any] = httpx.get(c.signed_url("/v2/status"), timeout=10).json()
    payload: dict[str, Any] = body.get("Payload", body)
    return payload


def _workers_up(c: Client, n: int, timeout_s: float = 90) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout_s
    while True:
        workers = [w for w in _status(c)["Workers"] if w["Up"]]
        if len(workers) >= n:
            return workers
        assert time.monotonic() < deadline, f"media workers up: {workers}"
        time.sleep(1)


def _ready(c: Client) -> str:
    sid: str = c.create_session_by_asset("default", uuid.uuid4().hex)["SessionId"]
    c.wait_ready(sid, timeout_s=90)
    c.start_session(sid)
    return sid


def _on(c: Client, sid: str, timeout_s: float = 10) -> dict[str, Any]:
    """The session's row in /v2/status once its worker reported it."""
    deadline = time.monotonic() + timeout_s
    while True:
        for row in _status(c)["Sessions"]:
            if row["SessionId"] == sid and row["FramesSent"] > 0:
                return row
        assert time.monotonic() < deadline, f"{sid} not reported by its worker"
        time.sleep(0.5)


def _frames_via(api: ApiProcess, c: Client, sid: str, n: int) -> int:
    """Decode `n` frames of `sid` through `api`'s WHEP endpoint (whoever created it)."""
    play = c.stat_session(sid)["PlayStreamAddr"]
    path = play[play.index("/v2/whep/") :]

    async def watch() -> int:
        async with WhepViewer(api.url + path, ice_host_addresses=["127.0.0.1"]) as viewer:
            frames = await viewer.wait_frames(n, timeout_s=40)
        return sum(1 for f in frames[:n] if (f.width, f.height) == (540, 960))

    return asyncio.run(watch())


def _send(ws: Any, sid: str, req_id: str, command: str, data: dict[str, Any]) -> None:
    payload = {"ReqId": req_id, "SessionId": sid, "Command": command, "Data": data}
    ws.send(json.dumps({"Header": {}, "Payload": payload}))


def _until(ws: Any, done: Any, timeout_s: float = 30) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout_s
    while True:
        got.append(json.loads(ws.recv(timeout=max(0.01, deadline - time.monotonic()))))
        if done(got[-1]):
            return got


# ---- the tests ---------------------------------------------------------------------------
def test_sessions_on_both_nodes_driven_and_watched_through_the_other_api(stack: Stack) -> None:
    appkey, token = _key(stack, 4)
    a, b = stack.client(0, appkey, token), stack.client(1, appkey, token)
    workers = _workers_up(a, 2)
    assert len({w["Node"] for w in workers}) == 2, workers
    _workers_up(b, 2)

    s1 = _ready(a)
    _on(b, s1)  # B has seen A's session on its worker before it places its own
    s2 = _ready(b)
    rows = {s: _on(a, s) for s in (s1, s2)}
    assert rows[s1]["Node"] != rows[s2]["Node"], rows  # one on each node
    assert rows[s1]["Worker"] != rows[s2]["Worker"]

    # Every worker holds one session (worker_max_sessions 1): the cluster is full.
    with pytest.raises(ApiError) as full:
        a.create_session_by_asset("default", uuid.uuid4().hex)
    assert full.value.code == 100008 and "cluster at capacity" in full.value.message

    # s1 was created through A: drive it through B's command channel, watch it through B.
    with connect(b.command_channel_url(s1)) as ws:
        r = uuid.uuid4().hex
        _send(ws, s1, r, "SEND_TEXT", {"Text": "Hello from the other node.", "Interrupt": False})
        got = _until(ws, lambda m: m.get("ReqId") == r and m.get("SpeakStatus") == "TextOver")
        statuses = [m["SpeakStatus"] for m in got if m.get("ReqId") == r]
        assert statuses == ["WaitingTextStart", "TextStart", "WaitingTextOver", "TextOver"]
        # The HTTP command through A; its statuses come on the socket (held by B).
        h = uuid.uuid4().hex
        assert a.command(s1, "SEND_TEXT", {"Text": "A map."}, req_id=h)["ReqId"] == h
        got = _until(ws, lambda m: m.get("ReqId") == h and m.get("SpeakStatus") == "TextOver")
    assert a.stat_session(s1)["SpeakStatus"] == "TextOver"
    assert _frames_via(stack.apis[1], b, s1, 10) == 10
    assert _frames_via(stack.apis[0], a, s2, 10) == 10

    # Closed through B, seen closed through A; the workers are free again.
    b.close_session(s1)
    assert a.stat_session(s1)["SessionStatus"] == 2
    a.close_session(s2)
    with pytest.raises(ApiError) as twice:
        b.close_session(s2)
    assert twice.value.code == 110013


def test_quota_race_across_api_processes_never_passes_the_limit(stack: Stack) -> None:
    appkey, token = _key(stack, 1)
    clients = [stack.client(i % 2, appkey, token) for i in range(4)]
    _workers_up(clients[0], 2)
    time.sleep(2.5)  # the previous test's sessions are gone from the workers' reports

    def create(c: Client) -> str | ApiError:
        try:
            sid: str = c.create_session_by_asset("default", uuid.uuid4().hex)["SessionId"]
            return sid
        except ApiError as exc:
            return exc

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        results = list(pool.map(create, clients))
    made = [r for r in results if isinstance(r, str)]
    refused = [r for r in results if isinstance(r, ApiError)]
    assert len(made) == 1, results
    assert len(refused) == 3 and all(e.code == 100008 for e in refused), results
    assert all("this key may have 1 open session" in e.message for e in refused), results
    assert len(clients[1].list_sessions()) == 1
    clients[0].wait_ready(made[0], timeout_s=90)
    clients[1].close_session(made[0])


def _drain(stack: Stack, *args: str) -> list[dict[str, Any]]:
    out = subprocess.run(
        [str(BIN / "avatarcast"), "drain", "--cluster", stack.ray.address, *args],
        env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0"},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]


def _draining(c: Client, name: str, want: bool, timeout_s: float = 10) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        worker = next(w for w in _status(c)["Workers"] if w["Name"] == name)
        if worker["Draining"] is want:
            return
        assert time.monotonic() < deadline, worker
        time.sleep(0.3)


def test_a_drained_worker_takes_no_new_session_until_undone(stack: Stack) -> None:
    appkey, token = _key(stack, 4)
    a, b = stack.client(0, appkey, token), stack.client(1, appkey, token)
    names = sorted(w["Name"] for w in _workers_up(a, 2))
    time.sleep(2.5)
    drained = _drain(stack, "--worker", names[0])
    assert [(w["Name"], w["Draining"]) for w in drained] == [(names[0], True)]
    for c in (a, b):
        _draining(c, names[0], True)
    s1 = _ready(b)
    assert _on(a, s1)["Worker"] == names[1]  # not on the drained one
    with pytest.raises(ApiError) as full:  # the other is full: nothing takes a session
        a.create_session_by_asset("default", uuid.uuid4().hex)
    assert full.value.code == 100008
    undone = _drain(stack, "--worker", names[0], "--undo")
    assert [(w["Name"], w["Draining"]) for w in undone] == [(names[0], False)]
    _draining(a, names[0], False)
    s2 = _ready(a)
    assert _on(b, s2)["Worker"] == names[0]
    for sid in (s1, s2):
        a.close_session(sid)


def test_an_idle_session_closes_itself(stack: Stack, tmp_path: Path) -> None:
    """Idle time is measured by the session's worker; an API process closes the session
    once it passes `idle_timeout_s` (here a third API process with a short limit)."""
    api = start_api(
        tmp_path, tmp_path / "data", stack.ray.address, stack.store_url, "c", idle_timeout_s="3"
    )
    try:
        appkey, token = _key(stack, 2)
        c = Client(api.url, appkey, token, timeout_s=30)
        _workers_up(c, 2)
        time.sleep(2.5)
        sid = _ready(c)
        deadline = time.monotonic() + 20
        while (st := c.stat_session(sid))["SessionStatus"] != 2:
            assert time.monotonic() < deadline, st
            time.sleep(0.3)
        assert st["ErrorCode"] == 110013 and "idle" in st["ErrorMessage"], st
        other = stack.client(0, appkey, token)
        assert other.stat_session(sid)["SessionStatus"] == 2
    finally:
        api.stop()


def test_a_killed_node_fails_only_its_session_with_usage_kept(stack: Stack) -> None:
    appkey, token = _key(stack, 2)
    a, b = stack.client(0, appkey, token), stack.client(1, appkey, token)
    _workers_up(a, 2)
    time.sleep(2.5)
    s1 = _ready(a)
    _on(b, s1)
    s2 = _ready(b)
    rows = {s: _on(a, s) for s in (s1, s2)}
    # Which session is on the second node (the one we kill)? The head node hosts the GCS.
    head_id = _head_node_id(stack)
    doomed = s1 if rows[s1]["Node"] != head_id else s2
    alive = s2 if doomed == s1 else s1
    assert rows[doomed]["Node"] != rows[alive]["Node"], rows

    with connect(b.command_channel_url(doomed)) as ws:
        time.sleep(3)  # some streamed seconds to bill
        stack.ray.nodes[1].kill()
        killed = time.time()
        deadline = time.monotonic() + 15
        while True:
            st = a.stat_session(doomed)
            if st["SessionStatus"] == 4:
                break
            assert time.monotonic() < deadline, f"not failed 15 s after the kill: {st}"
            time.sleep(0.2)
        detected_s = time.time() - killed
        assert "media worker" in st["ErrorMessage"], st
        assert b.stat_session(alive)["SessionStatus"] == 1
        notice = _until(ws, lambda m: m.get("Output") == "session", timeout_s=20)[-1]
        assert notice["Type"] == 10 and notice["State"] == "failed"
        assert notice["SessionId"] == doomed
    print(f"dead node detected and its session failed in {detected_s:.1f} s")

    # Its quota is free (one open session left of two), its usage kept to its last report.
    from avatarcast.sessions.store_pg import PgStore

    store = PgStore(stack.store_url)
    try:
        assert [r.session_id for r in store.list_sessions(appkey)] == [alive]
        usage = {u.session_id: u.seconds for u in store.usage(appkey).sessions}
        row = store.get_session(doomed)
    finally:
        store.close()
    assert row is not None and row.status == 4
    # Billed from ready (after its creation) to its worker's last report (before the kill):
    # at least the 3 s it streamed after the test saw it, at most its whole life.
    assert 3.0 <= usage.get(doomed, 0.0) <= killed - row.created_unix, (usage, row)
    assert row.metered_unix >= killed - 2.5, (row, killed)
    # The rest of the cluster streams on.
    assert _frames_via(stack.apis[0], a, alive, 10) == 10
    a.close_session(alive)


def _head_node_id(stack: Stack) -> str:
    probe = (
        "import ray,sys; ray.init(address=sys.argv[1], log_to_driver=False, "
        "logging_level='ERROR'); "
        "print([n['NodeID'] for n in ray.nodes() if n['Alive'] and "
        "'node:__internal_head__' in n['Resources']][0])"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe, stack.ray.address],
        env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0"},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return out.stdout.strip().splitlines()[-1]
