"""Ours: `GET /v2/status` — the workers, their load, and the caller's sessions on them.

    GET /v2/status?appkey=…&timestamp=…&signature=…    (signed like every call)

    {"Header": {"Code": 0, ...},
     "Payload": {"Workers": [{"Id": 0, "Pid": 4242, "Up": true, "Sessions": 3, "Load": 0.62,
                              "ProjectedLoad": 0.62, "RssMb": 412.5}, ...],
                 "Sessions": [{"SessionId": "…", "Worker": 0, "Status": 1, "FramesSent": 1250,
                               "LateFrames": 0, "Viewers": 1, "Speaking": true}],
                 "Capacity": {"MaxLoad": 0.8, "MaxSessionsPerWorker": 0, "Full": false},
                 "ReqId": ""}}

Auth: the signed query of every call (any valid key). A key sees only its own sessions in
`Sessions`; `Workers[].Sessions` counts the open sessions of every key (a load figure, no ids).
A bad or missing signature is the usual envelope with 100005.

`Workers` are the media worker processes (`media_workers`, one per core by default): `Load`
is a worker's CPU time over the last 5 s of wall time, in cores (from its own reports);
`ProjectedLoad` adds an estimate for sessions placed since; `RssMb` its resident memory; `Up`
false until its first report. Without media workers (`media_workers = 0`) the one worker is
the server process itself (`Id` 0, its `Load` measured here). `FramesSent`, `LateFrames`
(frame slots skipped because the loop fell behind), `Viewers` and `Speaking` are what the
session's media host reports, read as they are (about a second old with workers).
`Capacity.MaxLoad` is `worker_max_load`: a worker above it takes no new session; `Full` is
true when createsession would answer 100008 "server at capacity" now.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from avatarcast.api.context import ApiContext
from avatarcast.api.envelope import new_request_id, respond
from avatarcast.api.handler import failure

STATUS_PATH = "/v2/status"
LOAD_WINDOW_S = 5.0
SAMPLE_EVERY_S = 0.5


class ProcessLoad:
    """This process's CPU use over the last `window_s`, as a fraction of one core.

    A daemon thread samples (wall time, process CPU time) every `sample_every_s`; `load()`
    compares now with the newest sample at least `window_s` old (or the oldest there is; just
    after start, the average since the process started). One per process: `shared()`.
    """

    _shared: ProcessLoad | None = None
    _lock = threading.Lock()

    def __init__(self, window_s: float = LOAD_WINDOW_S, sample_every_s: float = SAMPLE_EVERY_S):
        self.window_s = window_s
        self.sample_every_s = sample_every_s
        keep = int(window_s / sample_every_s) + 2
        self._samples: deque[tuple[float, float]] = deque(maxlen=keep)
        self._thread = threading.Thread(target=self._run, name="process-load", daemon=True)
        self._thread.start()

    @classmethod
    def shared(cls) -> ProcessLoad:
        with cls._lock:
            if cls._shared is None:
                cls._shared = cls()
            return cls._shared

    def _run(self) -> None:
        while True:
            self._samples.append((time.monotonic(), time.process_time()))
            time.sleep(self.sample_every_s)

    def load(self) -> float:
        now, cpu = time.monotonic(), time.process_time()
        samples = list(self._samples)
        old = [s for s in samples if now - s[0] >= self.window_s]
        then = old[-1] if old else (samples[0] if samples else None)
        if then is None or now - then[0] < self.sample_every_s:
            return cpu / max(1e-3, _process_age_s())
        return (cpu - then[1]) / (now - then[0])


def _process_age_s() -> float:
    """Seconds since this process started (from /proc; the load meter's age elsewhere)."""
    try:
        start_ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        uptime_s = float(Path("/proc/uptime").read_text().split()[0])
        return uptime_s - start_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return time.process_time() or 1.0


def rss_mb() -> float:
    """Resident memory of this process in MiB (VmRSS; peak RSS where /proc is missing)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def status_payload(ctx: ApiContext, appkey: str, meter: ProcessLoad) -> dict[str, Any]:
    media = ctx.manager.media_status()
    mine = {s.id for s in ctx.manager.list(appkey)}
    workers = media["Workers"]
    if not workers and not media.get("Cluster"):
        # No media workers: the server process runs every session (worker 0).
        workers = [
            {
                "Id": 0,
                "Pid": os.getpid(),
                "Up": True,
                "Sessions": ctx.manager.open_count(),
                "Load": round(meter.load(), 3),
                "RssMb": round(rss_mb(), 1),
            }
        ]
    return {
        "Workers": workers,
        "Sessions": [s for s in media["Sessions"] if s["SessionId"] in mine],
        "Capacity": media["Capacity"],
    }


def status_routes(ctx: ApiContext) -> list[BaseRoute]:
    meter = ProcessLoad.shared()  # started with the app, so the first read has a window

    async def status(request: Request) -> Response:
        request_id = new_request_id()
        try:
            appkey = ctx.authenticate(request.query_params)
            return respond(status_payload(ctx, appkey, meter), req_id="", request_id=request_id)
        except Exception as exc:  # nothing a request does may crash the server
            return failure(exc, "", request_id, STATUS_PATH)

    return [Route(STATUS_PATH, status, methods=["GET"])]
