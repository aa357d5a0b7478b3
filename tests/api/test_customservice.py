"""customservice (make → getprogress → customerconfirm) against a real server on loopback.

The photo is scikit-image's public-domain astronaut; the builds run in the real worker process.
One session streams the built-in avatar while the astronaut is built, to check that building
does not slow it down.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest

from avatarcast.avatars.jobs import JOBS_DIR, STAGES
from avatarcast.client import CUSTOM_BASE, ApiError, AvatarBuildError, Client, new_req_id
from avatarcast.server import run_server_in_thread
from avatarcast.sessions.media import attach_media
from avatarcast.sessions.session import Session
from avatarcast.sessions.store import Store
from avatarcast.settings import Settings
from avatarcast.stream.clock import MonotonicClock

pytest.importorskip("avatarcast.stream.live")


def _jpeg(rgb: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    assert ok
    return buf.tobytes()


class Server:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.settings = Settings(data_dir=data_dir)
        self.sessions: dict[str, Session] = {}
        self.url, self._stop = run_server_in_thread(self.settings, media_factory=self._media)
        self.store = Store(self.settings.db_path)

    async def _media(self, session: Session) -> None:
        self.sessions[session.user_id] = session
        await attach_media(session, self.settings, MonotonicClock())

    def client(self) -> Client:
        appkey, token = self.store.create_key("test", 4)
        return Client(self.url, appkey, token, timeout_s=30)

    def stop(self) -> None:
        self.store.close()
        self._stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = Server(tmp_path_factory.mktemp("data"))
    yield srv
    srv.stop()


def _code(call: Callable[[], object]) -> int:
    with pytest.raises(ApiError) as info:
        call()
    return info.value.code


def _poll(c: Client, task_id: str, timeout_s: float = 45.0) -> tuple[dict[str, object], list[str]]:
    """getprogress until the build ends; the final Payload and every stage seen, in order."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout_s
    while True:
        prog = c.get_progress(task_id)
        stage = str(prog["StageV2"])
        if not seen or seen[-1] != stage:
            seen.append(stage)
        assert 0 <= int(str(prog["Progress"])) <= 100
        if prog["Status"] != "MAKING":
            return prog, seen
        assert time.monotonic() < deadline, f"still building: {prog}"
        time.sleep(0.1)


def test_make_confirm_stream_and_scoping(server: Server) -> None:
    from skimage import data

    owner, other = server.client(), server.client()
    # a session streams the built-in avatar during the build
    sid = owner.create_session_by_asset("default", "watcher")["SessionId"]
    owner.wait_ready(sid, timeout_s=20)
    live = server.sessions["watcher"].live
    assert live is not None
    time.sleep(0.5)
    frames0, late0, t0 = live.frames_sent, live.late_frames, time.monotonic()

    task = owner.make_avatar(_jpeg(data.astronaut()), "astro", "keep")
    prog, seen = _poll(owner, task)
    frames1, late1, t1 = live.frames_sent, live.late_frames, time.monotonic()

    # the build ran through the stages in order and waits for confirmation
    assert prog["Status"] == "SUCCESS", prog
    assert (prog["StageV2"], prog["Progress"], prog["FailMessage"]) == ("CONFIRM", 100, "")
    assert seen == sorted(seen, key=STAGES.index) and "TRAIN" in seen
    key = f"astro-{hashlib.sha256(owner.appkey.encode()).hexdigest()[:8]}"
    assert prog["AssetVirtualmanKey"] == key

    # the session kept its 25 fps while the build ran (bounded, tolerant thresholds)
    rate = (frames1 - frames0) / (t1 - t0)
    assert t1 - t0 > 1.0
    assert rate > 21.0, f"{rate:.1f} fps during the build"
    assert late1 - late0 <= 10, f"{late1 - late0} late frames during the build"
    owner.close_session(sid)

    # before customerconfirm the avatar is not usable (nor listed)
    assert not (server.data_dir / "avatars" / key).exists()
    assert _code(lambda: owner.create_session_by_asset(key, "early")) == 100015
    # another key sees neither the task nor the avatar
    assert _code(lambda: other.get_progress(task)) == 100001
    assert _code(lambda: other.confirm_avatar(task)) == 100001

    assert owner.confirm_avatar(task) == key
    done = owner.get_progress(task)
    assert (done["Status"], done["StageV2"], done["AssetVirtualmanKey"]) == ("SUCCESS", "END", key)
    assert owner.confirm_avatar(task) == key  # confirming twice changes nothing
    assert (server.data_dir / "avatars" / key / "manifest.json").is_file()
    assert not (server.data_dir / JOBS_DIR / task).exists()

    assert _code(lambda: other.create_session_by_asset(key, "thief")) == 100015
    s = owner.create_session_by_asset(key, "astro-user")
    assert owner.wait_ready(s["SessionId"], timeout_s=20)["SessionStatus"] == 1
    owner.close_session(s["SessionId"])
    # the unauthenticated demo config lists only avatars every key may use
    listed = httpx.get(server.url + "/v2/demo/config", timeout=10).json()["avatars"]
    assert [a["name"] for a in listed] == ["default"]
    thumb = httpx.get(server.url + f"/v2/demo/avatars/{key}/thumbnail.png", timeout=10)
    assert thumb.status_code == 404
    # the same name again from the same key is refused at once
    assert _code(lambda: owner.make_avatar(_jpeg(data.astronaut()), "astro")) == 100001
    owner.close()
    other.close()


def test_blank_photo_fails_and_leaves_nothing(server: Server) -> None:
    with server.client() as c:
        task = c.make_avatar(_jpeg(np.full((512, 512, 3), 128, np.uint8)), "blank")
        with pytest.raises(AvatarBuildError) as info:
            c.wait_built(task, timeout_s=45, poll_s=0.1)
        prog = info.value.progress
        assert (prog["Status"], prog["FailReason"]) == ("FAIL", "no_face")
        assert prog["FailMessage"] == "no face was found"
        assert prog["StageV2"] == "PROCESS" and "AssetVirtualmanKey" not in prog
        assert _code(lambda: c.confirm_avatar(task)) == 100001
        key = f"blank-{hashlib.sha256(c.appkey.encode()).hexdigest()[:8]}"
        time.sleep(0.3)  # the done callback removes the work directory
        assert not (server.data_dir / JOBS_DIR / task).exists()
        assert not list((server.data_dir / "avatars").glob("blank*"))
        assert _code(lambda: c.create_session_by_asset(key, "u")) == 100015


def test_make_rejects_bad_fields(server: Server) -> None:
    with server.client() as c:
        ok = _jpeg(np.zeros((8, 8, 3), np.uint8))
        assert _code(lambda: c.make_avatar(ok, "Bad Name")) == 100001
        assert _code(lambda: c.make_avatar(ok, "x", "purple")) == 100001
        assert _code(lambda: c.make_avatar(b"", "x")) == 100001
        bad = {"VirtualmanName": "x", "Material": "not base64!"}
        assert _code(lambda: c.call(CUSTOM_BASE + "make", bad)) == 100001
        assert _code(lambda: c.get_progress("nope")) == 100001
        # the make body may be ~13.4 MiB (10 MiB of photo in Base64); larger is HTTP 413
        huge = {"ReqId": new_req_id(), "VirtualmanName": "x", "Material": "A" * (14 << 20)}
        resp = httpx.post(c.signed_url(CUSTOM_BASE + "make"), json={"Payload": huge}, timeout=30)
        assert resp.status_code == 413


def test_restart_fails_interrupted_builds(tmp_path: Path) -> None:
    from avatarcast.avatars.jobs import BuildQueue, Job, TaskNotFound

    queue = BuildQueue(tmp_path, tmp_path / "db.sqlite")
    job = Job("t1", "k", "a", "a-00000000", "keep", "MAKING", "TRAIN", 40, "", "", 0.0, 0.0)
    queue.store.insert(job)
    (queue.job_dir("t1") / "avatars").mkdir(parents=True)
    again = BuildQueue(tmp_path, tmp_path / "db.sqlite")  # the next server start
    prog = again.get("k", "t1").to_payload()
    assert (prog["Status"], prog["StageV2"], prog["FailReason"]) == ("FAIL", "TRAIN", "interrupted")
    assert not queue.job_dir("t1").exists()
    with pytest.raises(TaskNotFound, match="no task"):
        again.get("other-key", "t1")
