"""The media workers of a Ray cluster, seen from one API process: find, watch, place, call.

Each node that offers the custom resource `avatarcast_media` (`ray start ... --resources
'{"avatarcast_media": 2}'`: one per media worker it should run, usually one per core) gets
that many media worker actors, named `avatarcast-media-<n>` in the Ray namespace
`avatarcast` and detached, so every API process of the cluster finds the same workers by
name and they outlive the API process that made them. Ray places each on a node with a free
unit of the resource.

Every API process reads each worker's `report()` once a second: load (its process's CPU over
5 s, the same rule as local workers: `avatarcast.sessions.load`), its sessions' state,
whether it drains. A worker that does not answer for `DEAD_AFTER_S` (its node died, or the
process) is declared dead here: killed in Ray (so it cannot come back half-alive) and handed
to `on_dead`, which fails its sessions. Ray's own death notice (ActorDiedError) counts at once;
Ray failing to reach it (ActorUnavailableError, e.g. its node lost power) after 1.5 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from avatarcast.errors import AvatarcastError, BackendError, CapacityError, MediaWorkerError
from avatarcast.sessions.load import LoadMeter
from avatarcast.settings import Settings

log = logging.getLogger(__name__)

NAMESPACE = "avatarcast"
RESOURCE = "avatarcast_media"
NAME_PREFIX = "avatarcast-media-"
REPORT_EVERY_S = 1.0
FRESH_S = 3.0  # a report older than this says nothing about now
DEAD_AFTER_S = 6.0  # no report for this long: the worker (or its node) is gone
UNREACHABLE_DEAD_S = 1.5  # Ray cannot reach it (ActorUnavailableError) for this long: gone
DISCOVER_EVERY_S = 5.0
CALL_TIMEOUT_S = 30.0


@dataclass
class ClusterWorker:
    """One media worker actor and this API process's view of it."""

    name: str
    handle: Any  # a Ray ActorHandle
    meter: LoadMeter = field(default_factory=LoadMeter)
    node: str = ""
    pid: int = 0
    rss_bytes: int = 0
    up: bool = False  # it answered, warmed up: it takes sessions
    warming: bool = False  # this API process asked it to warm up
    avatars: frozenset[str] = frozenset()  # loaded there: its first session of one is quick
    unreachable_since: float | None = None  # Ray could not reach it since (monotonic)
    dead: bool = False
    draining: bool = False
    seen: float = 0.0  # monotonic time of its last report
    seen_unix: float = 0.0
    found: float = field(default_factory=time.monotonic)

    @property
    def sessions(self) -> dict[str, dict[str, Any]]:
        return self.meter.status

    def summary(self, now: float) -> dict[str, Any]:
        return {
            "Name": self.name,
            "Node": self.node,
            "Pid": self.pid,
            "Up": self.up and not self.dead,
            "Draining": self.draining,
            "Sessions": len(self.sessions),
            "Load": round(self.meter.load, 3),
            "ProjectedLoad": round(self.meter.projected_load(now), 3),
            "LateFraction": round(self.meter.late_fraction, 4),
            "RssMb": round(self.rss_bytes / 2**20, 1),
        }


def _ray() -> Any:
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no telemetry, ever
    import ray

    return ray


def connect(address: str) -> None:
    """Join the Ray cluster at `address` (host:port of its head) as a driver."""
    ray = _ray()
    if ray.is_initialized():
        return
    ray.init(
        address=address,
        namespace=NAMESPACE,
        log_to_driver=False,
        logging_level=logging.WARNING,
        include_dashboard=False,
    )


def remote_error(exc: BaseException, worker: str) -> BaseException:
    """What a failed actor call means here: the worker's own coded error, or that it is gone."""
    ray = _ray()
    if isinstance(exc, ray.exceptions.RayTaskError):
        cause = exc.cause
        if isinstance(cause, AvatarcastError):
            return cause
        return BackendError(f"media worker {worker}: {type(cause).__name__}: {cause}")
    if isinstance(exc, ray.exceptions.RayActorError):
        return MediaWorkerError(f"media worker {worker} is gone ({type(exc).__name__})")
    if isinstance(exc, TimeoutError):
        return MediaWorkerError(f"media worker {worker} did not answer")
    return exc


class ClusterPool:
    """The cluster's media workers, as one API process uses them."""

    def __init__(
        self,
        settings: Settings,
        *,
        on_dead: Callable[[ClusterWorker, str], None] = lambda w, why: None,
    ) -> None:
        self.settings = settings
        self.max_load = settings.worker_max_load
        self.max_sessions = settings.worker_max_sessions
        self.workers: dict[str, ClusterWorker] = {}
        self.on_dead = on_dead
        self._discovered = 0.0

    # ---- calls --------------------------------------------------------------------------
    async def call(
        self, worker: ClusterWorker | str, method: str, *args: Any, timeout: float = CALL_TIMEOUT_S
    ) -> Any:
        """`method(*args)` on a worker; raises its coded error, or MediaWorkerError."""
        w = self.workers.get(worker) if isinstance(worker, str) else worker
        name = worker if isinstance(worker, str) else worker.name
        if w is None or w.dead:
            raise MediaWorkerError(f"media worker {name} is gone")
        try:
            ref = getattr(w.handle, method).remote(*args)
            return await asyncio.wait_for(asyncio.wrap_future(ref.future()), timeout)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            raise remote_error(exc, name) from None

    # ---- discovery and watching -----------------------------------------------------------
    def _discover(self, known: set[str]) -> list[ClusterWorker]:
        """Handles of the workers not in `known`, one for each unit of the resource on live
        nodes (made when missing) and any other of our names (in a thread: these are
        blocking Ray calls; the caller adds them on the loop)."""
        ray = _ray()
        from avatarcast.cluster.ray_actor import remote_class

        units = 0
        for node in ray.nodes():
            if node.get("Alive"):
                units += int(node.get("Resources", {}).get(RESOURCE, 0))
        names = {f"{NAME_PREFIX}{i}" for i in range(units)}
        with contextlib.suppress(Exception):
            names |= {n for n in ray.util.list_named_actors() if n.startswith(NAME_PREFIX)}
        actor = remote_class()
        # The workers need no store (and its URL may hold a password).
        settings = replace(self.settings, store_url="")
        found = []
        for name in sorted(names - known):
            handle = actor.options(
                name=name,
                namespace=NAMESPACE,
                lifetime="detached",
                get_if_exists=True,
                num_cpus=0,
                resources={RESOURCE: 1},
                max_restarts=0,
                max_concurrency=1000,
            ).remote(settings, name)
            found.append(ClusterWorker(name, handle))
        return found

    async def refresh(self) -> None:
        """One round: discover (now and then) and read every worker's report."""
        now = time.monotonic()
        if now - self._discovered >= DISCOVER_EVERY_S:
            self._discovered = now
            known = {n for n, w in self.workers.items() if not w.dead}
            try:
                for w in await asyncio.to_thread(self._discover, known):
                    self.workers.setdefault(w.name, w)
            except Exception:
                log.exception("cannot list the cluster's media workers")
        workers = [w for w in self.workers.values() if not w.dead]
        results = await asyncio.gather(*(self._report(w) for w in workers), return_exceptions=True)
        ray_errors = _ray().exceptions
        now, now_unix = time.monotonic(), time.time()
        for w, result in zip(workers, results, strict=True):
            if isinstance(result, dict):
                w.seen, w.seen_unix = now, now_unix
                w.node, w.pid = str(result.get("Node", "")), int(result.get("Pid", 0))
                w.rss_bytes, w.draining = int(result.get("RssBytes", 0)), bool(result["Draining"])
                w.avatars = frozenset(result.get("Avatars", ()))
                if not result.get("Warm", True):
                    # Up once it has loaded what a first session needs; its warm-up's CPU
                    # must not count as sessions' load, so the measurement starts after it.
                    if not w.warming:
                        w.warming = True
                        task = asyncio.ensure_future(self.call(w, "warm", timeout=60.0))
                        task.add_done_callback(_ignore_result)
                    continue
                if not w.up:
                    w.up = True
                    w.meter.samples.clear()
                w.meter.record(now, float(result["CpuS"]), dict(result["Sessions"]))
                continue
            # Ray says the actor died, or that it cannot reach it (maybe for a moment: a
            # worker unreachable for UNREACHABLE_DEAD_S counts as dead).
            died = isinstance(result, ray_errors.ActorDiedError)
            unreachable = isinstance(result, ray_errors.RayActorError) and not died
            if not unreachable:
                w.unreachable_since = None
            elif w.unreachable_since is None:
                w.unreachable_since = now
            gone = died or (
                unreachable
                and w.unreachable_since is not None
                and now - w.unreachable_since >= UNREACHABLE_DEAD_S
            )
            if gone and not w.up:  # never took a session: forget it, discovery makes another
                self.workers.pop(w.name, None)
                continue
            silent_since = w.seen if w.up else w.found
            if w.up and (gone or now - silent_since > DEAD_AFTER_S):
                why = (
                    f"is gone ({type(result).__name__})"
                    if gone
                    else f"did not answer for {now - silent_since:.0f} s"
                )
                self._declare_dead(w, f"media worker {w.name} on node {w.node[:12]} {why}")

    async def _report(self, w: ClusterWorker) -> Any:
        """A worker's report; the raw Ray error if it has none (`refresh` tells them apart)."""
        ref = w.handle.report.remote()
        return await asyncio.wait_for(asyncio.wrap_future(ref.future()), REPORT_EVERY_S * 2)

    def _declare_dead(self, w: ClusterWorker, why: str) -> None:
        w.dead = True
        log.error("%s; its sessions fail", why)
        with contextlib.suppress(Exception):
            _ray().kill(w.handle, no_restart=True)
        try:
            self.on_dead(w, why)
        finally:
            self.workers.pop(w.name, None)  # a new actor of that name may come later

    # ---- placement ----------------------------------------------------------------------
    def place(self, asset_key: str = "", *, force: bool = False) -> ClusterWorker:
        """The worker a new session goes to: among those with room, one that has the avatar
        loaded already, then the least loaded; CapacityError when none has room (`force`:
        the least loaded anyway)."""
        now = time.monotonic()
        live = [w for w in self.workers.values() if w.up and not w.dead and not w.draining]
        room = [w for w in live if force or self._has_room(w, now)]
        if not room:
            loads = ", ".join(
                f"{w.name}: {w.meter.projected_load(now):.2f} cores, {len(w.sessions)} sessions"
                for w in live
            )
            raise CapacityError(
                f"cluster at capacity: every media worker is at its limit (load limit "
                f"{self.max_load:g} of a core; {loads or 'no media worker up'}); try again later"
            )
        best = min(
            room,
            key=lambda w: (
                asset_key not in w.avatars,
                w.meter.projected_load(now),
                len(w.sessions) + w.meter.reserved,
            ),
        )
        best.meter.reserve(now)
        return best

    def _has_room(self, w: ClusterWorker, now: float) -> bool:
        return w.meter.has_room(len(w.sessions), self.max_load, self.max_sessions, now)

    def full(self) -> bool:
        now = time.monotonic()
        return not any(
            self._has_room(w, now)
            for w in self.workers.values()
            if w.up and not w.dead and not w.draining
        )

    def status(self) -> list[dict[str, Any]]:
        now = time.monotonic()
        return [w.summary(now) for w in sorted(self.workers.values(), key=lambda w: w.name)]

    def session_status(self, session_id: str, worker: str) -> dict[str, Any] | None:
        """A session's state in its worker's latest report; None when that report is stale
        (the worker is not answering) or does not list the session."""
        w = self.workers.get(worker)
        if w is None or w.dead or time.monotonic() - w.seen > FRESH_S:
            return None
        return w.sessions.get(session_id)


def _ignore_result(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()  # retrieved: a warm-up that failed is only logged by the worker


def drain_workers(
    address: str, node: str = "", worker: str = "", on: bool = True
) -> list[dict[str, Any]]:
    """`avatarcast drain`: mark the media workers of `node` (a Ray node id, or a prefix of one),
    or the one named `worker`, or every worker when both are empty, as draining (`on`) or
    taking sessions again; returns their reports (name, node, sessions) after the change."""
    connect(address)
    ray = _ray()
    done = []
    for name in sorted(ray.util.list_named_actors()):
        if not name.startswith(NAME_PREFIX) or (worker and name != worker):
            continue
        handle = ray.get_actor(name, namespace=NAMESPACE)
        try:
            report = ray.get(handle.report.remote(), timeout=10)
        except Exception as exc:  # dead or unreachable: say so, drain the others
            done.append({"Name": name, "Error": f"{type(exc).__name__}: {exc}"})
            continue
        if node and not str(report.get("Node", "")).startswith(node):
            continue
        ray.get(handle.drain.remote(on), timeout=10)
        done.append(
            {
                "Name": name,
                "Node": report.get("Node", ""),
                "Draining": on,
                "Sessions": sorted(report.get("Sessions", {})),
            }
        )
    return done
