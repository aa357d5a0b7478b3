"""customservice (make → getprogress → customerconfirm) against a real server on loopback.

The photo is scikit-image's public-domain astronaut; the builds run in the real worker process.
One session streams the built-in avatar while the astronaut is built, to check that building
does not slow it down. The video is `tests/avatars/video_samples.talking_video` (the astronaut
moved and speaking, 8 s), uploaded, built once for the module, listed and deleted.
"""

from __future__ import annotations

import base64
import hashlib
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
import pytest

from avatarcast.avatars.build_jobs import STAGES
from avatarcast.avatars.build_queue import JOBS_DIR
from avatarcast.avatars.uploads import UPLOADS_DIR as JOBS_UPLOADS
from avatarcast.client import CUSTOM_BASE, ApiError, AvatarBuildError, Client, new_req_id
from avatarcast.sessions.media import attach_media
from avatarcast.sessions.session import Session
from avatarcast.settings import Settings
from avatarcast.stream.clock import MonotonicClock
from server_harness import LiveServer


def _jpeg(rgb: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    assert ok
    return buf.tobytes()


class Server(LiveServer):
    def __init__(self, data_dir: Path, **settings: Any) -> None:
        self.sessions: dict[str, Session] = {}
        config = Settings(data_dir=data_dir, **settings)
        super().__init__(config, media_factory=self._media, timeout_s=30)

    async def _media(self, session: Session) -> None:
        self.sessions[session.user_id] = session
        await attach_media(session, self.settings, MonotonicClock())


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = Server(tmp_path_factory.mktemp("data"))
    yield srv
    srv.stop()


def _code(call: Callable[[], object]) -> int:
    with pytest.raises(ApiError) as info:
        call()
    return info.value.code


SAMPLES = Path(__file__).resolve().parents[1] / "avatars"  # video_samples, photo_samples


@pytest.fixture(scope="module")
def talking_mp4(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if str(SAMPLES) not in sys.path:
        sys.path.insert(0, str(SAMPLES))
    from video_samples import talking_video

    return talking_video(tmp_path_factory.mktemp("video") / "talking.mp4")


def _upload_raw(c: Client, data: bytes, query: dict[str, str] | None = None) -> dict[str, Any]:
    """POST the bytes to `upload` (signed query, raw body); the whole envelope."""
    resp = httpx.post(
        c.signed_url(CUSTOM_BASE + "upload", query),
        content=data,
        headers={"Content-Type": "application/octet-stream"},
        timeout=60,
    )
    assert resp.status_code == 200, resp.text
    out: dict[str, Any] = resp.json()
    return out


def _upload(c: Client, data: bytes) -> str:
    """upload → MaterialId; ApiError on a coded failure."""
    req_id = new_req_id()
    body = _upload_raw(c, data, {"ReqId": req_id})
    header = body["Header"]
    if header["Code"]:
        raise ApiError(header["Code"], header["Message"], header["RequestID"])
    assert body["Payload"]["ReqId"] == req_id
    assert body["Payload"]["Size"] == len(data)
    material_id: str = body["Payload"]["MaterialId"]
    return material_id


def _make(c: Client, name: str, background: str = "keep", **material: str) -> str:
    payload = {"VirtualmanName": name, "Background": background, **material}
    task_id: str = c.call(CUSTOM_BASE + "make", payload)["TaskId"]
    return task_id


def _listed(c: Client) -> dict[str, dict[str, Any]]:
    avatars = c.call(CUSTOM_BASE + "list", {})["Avatars"]
    return {a["AssetVirtualmanKey"]: a for a in avatars}


def _delete(c: Client, key: str) -> None:
    c.call(CUSTOM_BASE + "delete", {"AssetVirtualmanKey": key})


def _uploads(data_dir: Path) -> list[Path]:
    return sorted((data_dir / JOBS_UPLOADS).glob("*/*"))


def _until(cond: Callable[[], bool], what: str, timeout_s: float = 30.0) -> None:
    """Wait for a condition; the timeout only guards against a hang."""
    deadline = time.monotonic() + timeout_s
    while not cond():
        assert time.monotonic() < deadline, f"no {what} in {timeout_s} s"
        time.sleep(0.02)


def _poll(c: Client, task_id: str, timeout_s: float = 120.0) -> tuple[dict[str, object], list[str]]:
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
    live = server.sessions["watcher"].host.host.live
    assert live is not None
    frames0 = live.frames_sent

    task = owner.make_avatar(_jpeg(data.astronaut()), "astro", "keep")
    prog, seen = _poll(owner, task)
    frames1 = live.frames_sent

    # the build ran through the stages in order and waits for confirmation
    assert prog["Status"] == "SUCCESS", prog
    assert (prog["StageV2"], prog["Progress"], prog["FailMessage"]) == ("CONFIRM", 100, "")
    assert seen == sorted(seen, key=STAGES.index) and "TRAIN" in seen
    key = f"astro-{hashlib.sha256(owner.appkey.encode()).hexdigest()[:8]}"
    assert prog["AssetVirtualmanKey"] == key

    # the session streamed on while the build ran in its worker process (its frame rate
    # beside a build is a figure of benchmarks/sessions.py, not a test bound)
    assert frames1 > frames0 and live.running
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
            c.wait_built(task, timeout_s=120, poll_s=0.1)
        prog = info.value.progress
        assert (prog["Status"], prog["FailReason"]) == ("FAIL", "no_face")
        assert prog["FailMessage"] == "no face was found"
        assert prog["StageV2"] == "PROCESS" and "AssetVirtualmanKey" not in prog
        assert _code(lambda: c.confirm_avatar(task)) == 100001
        key = f"blank-{hashlib.sha256(c.appkey.encode()).hexdigest()[:8]}"
        # the build's done callback removes its work directory
        _until(lambda: not (server.data_dir / JOBS_DIR / task).exists(), "the work dir removed")
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
    from avatarcast.avatars.build_jobs import Job, TaskNotFound
    from avatarcast.avatars.build_queue import BuildQueue

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


def test_video_upload_make_list_delete(server: Server, talking_mp4: Path) -> None:
    owner, other = server.client(), server.client()
    video = talking_mp4.read_bytes()
    material = _upload(owner, video)
    assert [p.name for p in _uploads(server.data_dir)] == [material]

    # another key's make does not find the upload, nor does a bad Background; neither
    # consumes it
    assert _code(lambda: _make(other, "talker", MaterialId=material)) == 100001
    with pytest.raises(ApiError, match="Background must be one of") as info:
        _make(owner, "talker", "purple", MaterialId=material)
    assert info.value.code == 100001

    # Size (ours) is for videos, one of the four sizes
    for bad in ("big", "1000x500"):
        assert _code(lambda bad=bad: _make(owner, "talker", MaterialId=material, Size=bad)) == (
            100001
        )
    # a session streams the built-in avatar while the video builds
    watcher = owner.create_session_by_asset("default", "video-watcher")["SessionId"]
    owner.wait_ready(watcher, timeout_s=20)
    live = server.sessions["video-watcher"].host.host.live
    assert live is not None
    frames0 = live.frames_sent
    t0 = time.monotonic()
    task = _make(owner, "talker", MaterialId=material, Size="540x960", Transcript="Hello there.")
    assert _uploads(server.data_dir) == []  # consumed by make
    assert _code(lambda: _make(owner, "talker2", MaterialId=material)) == 100001
    prog, seen = _poll(owner, task, timeout_s=300)
    build_s = time.monotonic() - t0
    # streamed on meanwhile (fps beside a build: benchmarks/sessions.py)
    assert live.frames_sent > frames0 and live.running
    owner.close_session(watcher)
    assert prog["Status"] == "SUCCESS", prog
    assert seen == sorted(seen, key=STAGES.index) and {"PROCESS", "TRAIN"} <= set(seen), seen
    key = f"talker-{hashlib.sha256(owner.appkey.encode()).hexdigest()[:8]}"
    assert prog["AssetVirtualmanKey"] == key
    assert key not in _listed(owner)  # not before customerconfirm
    assert owner.confirm_avatar(task) == key

    mine = _listed(owner)
    assert set(mine) >= {key}
    entry = mine[key]
    assert (entry["VirtualmanName"], entry["Kind"]) == ("talker", "video")
    assert abs(entry["CreatedUnix"] - time.time()) < build_s + 60
    files = [p for p in (server.data_dir / "avatars" / key).rglob("*") if p.is_file()]
    assert entry["SizeBytes"] == sum(p.stat().st_size for p in files) > 0
    assert key not in _listed(other)

    # another key can neither stream it nor delete it: the same answer as for no avatar
    assert _code(lambda: other.create_session_by_asset(key, "thief")) == 100015
    assert _code(lambda: _delete(other, key)) == 100015
    assert _code(lambda: _delete(other, "no-such-avatar")) == 100015
    assert _code(lambda: _delete(owner, "default")) == 100015  # not made through the API

    s = owner.create_session_by_asset(key, "talker-user")
    assert owner.wait_ready(s["SessionId"], timeout_s=30)["SessionStatus"] == 1
    with pytest.raises(ApiError, match="close them first") as info:
        _delete(owner, key)  # a running session streams it
    assert info.value.code == 100001
    owner.close_session(s["SessionId"])

    _delete(owner, key)
    assert key not in _listed(owner)
    assert not (server.data_dir / "avatars" / key).exists()
    assert _code(lambda: owner.create_session_by_asset(key, "late")) == 100015
    assert _code(lambda: _delete(owner, key)) == 100015  # deleting twice: no such avatar
    owner.close()
    other.close()


def test_make_needs_exactly_one_material(server: Server, talking_mp4: Path) -> None:
    with server.client() as c:
        photo = base64.b64encode(_jpeg(np.zeros((8, 8, 3), np.uint8))).decode()
        material = _upload(c, b"not an image")
        for fields in ({}, {"Material": photo, "MaterialId": material}):
            with pytest.raises(ApiError, match="exactly one of Material") as info:
                _make(c, "x", **fields)
            assert info.value.code == 100001
        for bad in ("0" * 32, "../../etc/passwd", material.upper()):
            assert _code(lambda bad=bad: _make(c, "x", MaterialId=bad)) == 100001
        # a small video may come inline too; it is sniffed there as well
        inline = base64.b64encode(talking_mp4.read_bytes()).decode()
        with pytest.raises(ApiError, match="Size must be one of"):
            _make(c, "x", "remove", Material=inline, Size="1000x500")
        with pytest.raises(ApiError, match="Size applies to video material only"):
            _make(c, "x", Material=photo, Size="540x960")
        with pytest.raises(ApiError, match="Transcript applies to video material only"):
            _make(c, "x", Material=photo, Transcript="Hello.")
        # the refusals left the upload in place; a build of what is not a photo fails cleanly
        task = _make(c, "junk", MaterialId=material)
        with pytest.raises(AvatarBuildError) as failed:
            c.wait_built(task, timeout_s=120, poll_s=0.1)
        assert failed.value.progress["FailReason"] == "unsupported_file"


def test_upload_limits_auth_and_expiry(tmp_path: Path) -> None:
    srv = Server(tmp_path, avatar_upload_max_mb=1)
    try:
        c = srv.client()
        # over the limit: a coded answer, nothing stored
        body = _upload_raw(c, b"\0" * ((1 << 20) + 1))
        assert body["Header"]["Code"] == 100001
        assert "larger than 1 MiB" in body["Header"]["Message"]
        assert "avatar_upload_max_mb" in body["Header"]["Message"]
        assert _uploads(tmp_path) == []
        # the same without Content-Length (chunked): counted while streaming
        chunks = iter([b"\0" * (256 << 10)] * 5)
        resp = httpx.post(c.signed_url(CUSTOM_BASE + "upload"), content=chunks, timeout=30)
        assert resp.json()["Header"]["Code"] == 100001
        assert _uploads(tmp_path) == []
        assert _code(lambda: _upload(c, b"")) == 100001
        # a wrong signature is refused before anything is stored
        url = c.signed_url(CUSTOM_BASE + "upload").replace("signature=", "signature=x")
        resp = httpx.post(url, content=b"abc", timeout=10)
        assert resp.json()["Header"]["Code"] == 100005
        assert _uploads(tmp_path) == []
        # exactly at the limit is fine
        old = _upload(c, b"\1" * (1 << 20))
        (path,) = _uploads(tmp_path)
        assert path.name == old and path.stat().st_size == 1 << 20
        # an upload unused for over an hour goes at the next upload
        stale = time.time() - 2 * 3600
        os.utime(path, (stale, stale))
        new = _upload(c, b"abc")
        assert [p.name for p in _uploads(tmp_path)] == [new]
        assert _code(lambda: _make(c, "x", MaterialId=old)) == 100001
        c.close()
    finally:
        srv.stop()


def test_material_kind() -> None:
    from avatarcast.avatars.materials import material_kind

    assert material_kind(b"\x00\x00\x00\x18ftypmp42\x00\x00") == "video"
    assert material_kind(b"\x00\x00\x00\x14ftypqt  \x00\x00") == "video"
    assert material_kind(b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81") == "video"
    assert material_kind(b"RIFF\x10\x00\x00\x00AVI LIST") == "video"
    assert material_kind(b"RIFF\x10\x00\x00\x00WEBPVP8 ") == "photo"
    assert material_kind(b"\x00\x00\x00\x18ftypheic\x00\x00") == "photo"
    assert material_kind(b"\xff\xd8\xff\xe0\x00\x10JFIF") == "photo"
    assert material_kind(b"") == "photo"
