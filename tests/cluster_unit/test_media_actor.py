"""The cluster's media worker (`MediaActor`) in one process, without Ray: a session's host and
its drive channel live together, a socket attached from "some API process" drives it and
long-polls its statuses, a newer socket replaces it, the report says what each session does."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

from avatarcast.cluster.actor import SOCKET_QUEUE, MediaActor
from avatarcast.engine.spec import HostSpec
from avatarcast.errors import SessionNotFound
from avatarcast.settings import Settings


def _raw(sid: str, req_id: str, text: str) -> str:
    payload = {"ReqId": req_id, "SessionId": sid, "Command": "SEND_TEXT", "Data": {"Text": text}}
    return json.dumps({"Header": {}, "Payload": payload})


async def _poll_until(
    actor: MediaActor, sid: str, token: int, req_id: str, status: str
) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = []
    for _ in range(200):
        reply = await actor.socket_poll(sid, token, 1.0)
        got += reply["Messages"]
        if any(m.get("ReqId") == req_id and m.get("SpeakStatus") == status for m in got):
            return got
        assert reply["State"] == "open", reply
    raise AssertionError(f"no {status}: {got}")


def test_a_session_driven_through_sockets_and_reported(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, log_level="warning").validate()

    async def main() -> None:
        actor = MediaActor(settings, "avatarcast-media-0")
        assert (await actor.report())["Warm"] is False
        assert await actor.warm() is True  # a throwaway session, closed again
        assert (await actor.report())["Warm"] is True
        assert await actor.warm() is False
        assert (await actor.report())["Sessions"] == {} and actor.worker.hosts == {}
        sid = uuid.uuid4().hex
        assert await actor.open(HostSpec(sid, "default"), 2000) == "en"
        try:
            first = await actor.socket_open(sid)
            r = uuid.uuid4().hex
            await actor.socket_send(sid, first, _raw(sid, r, "Hello there."))
            got = await _poll_until(actor, sid, first, r, "TextOver")
            statuses = [m["SpeakStatus"] for m in got if m.get("ReqId") == r]
            assert statuses == ["WaitingTextStart", "TextStart", "WaitingTextOver", "TextOver"]

            report = await actor.report()
            st = report["Sessions"][sid]
            assert st["SpeakStatus"] == "TextOver" and st["FramesSent"] > 0
            assert st["Failed"] is None and st["IdleS"] >= 0 and not report["Draining"]

            # A bad frame is a Type 9 on the socket; the session goes on.
            await actor.socket_send(sid, first, "{not json")
            bad = (await actor.socket_poll(sid, first, 2.0))["Messages"]
            assert bad and bad[0]["Type"] == 9

            # A second socket (another API process) replaces the first, which is told so,
            # and gets the last statuses replayed.
            second = await actor.socket_open(sid)
            old = await actor.socket_poll(sid, first, 1.0)
            assert old["State"] == "replaced"
            replay = (await actor.socket_poll(sid, second, 1.0))["Messages"]
            assert any(m.get("ReqId") == r and m["SpeakStatus"] == "TextOver" for m in replay)

            # A socket nobody polls (its API process died) never holds the channel up: it
            # keeps the newest messages, and the next socket still gets its own.
            stuck = await actor.socket_open(sid)
            for i in range(SOCKET_QUEUE + 40):
                actor.live[sid].drive.notice({"Type": 10, "N": i})
            await asyncio.sleep(0.1)
            fresh = await actor.socket_open(sid)
            kept = (await actor.socket_poll(sid, stuck, 0.1))["Messages"]
            assert len(kept) == SOCKET_QUEUE and kept[-1]["N"] == SOCKET_QUEUE + 39
            actor.live[sid].drive.notice({"Type": 10, "N": -1})
            got_fresh = (await actor.socket_poll(sid, fresh, 2.0))["Messages"]
            assert {"Type": 10, "N": -1} in got_fresh
            second = fresh

            # The HTTP command form answers with the coded result.
            h = uuid.uuid4().hex
            payload = {
                "ReqId": h,
                "SessionId": sid,
                "Command": "SEND_TEXT",
                "Data": {"Text": "Hi."},
            }
            assert (await actor.command(sid, payload))["ReqId"] == h
            await _poll_until(actor, sid, second, h, "TextOver")
            assert await actor.drain() is True
            assert (await actor.report())["Draining"] is True
        finally:
            assert await actor.close(sid) is True
        assert await actor.close(sid) is False
        assert sid not in (await actor.report())["Sessions"]
        closed = await actor.socket_poll(sid, 1, 0.1)
        assert closed["State"] == "closed"
        try:
            await actor.socket_open(sid)
        except SessionNotFound:
            pass
        else:
            raise AssertionError("a closed session took a socket")

    asyncio.run(asyncio.wait_for(main(), 120))


def test_media_that_dies_is_reported_and_told_to_the_socket(tmp_path: Path) -> None:
    """A session whose live stream fails in the worker: its socket gets the Type 10 notice
    and ends; the report carries the failure (the API side fails the session from it)."""
    from avatarcast.engine.spec import HostEnded
    from avatarcast.errors import BackendError

    settings = Settings(data_dir=tmp_path, log_level="warning").validate()

    async def main() -> None:
        actor = MediaActor(settings, "avatarcast-media-0")
        sid = uuid.uuid4().hex
        await actor.open(HostSpec(sid, "default"), 2000)
        try:
            token = await actor.socket_open(sid)
            await actor.socket_poll(sid, token, 0.1)  # the replay (nothing yet)
            # What the worker's watch sends when a host's stream dies on its own.
            actor.worker.send(HostEnded(sid, BackendError("encoder exploded")))
            got: list[dict[str, Any]] = []
            state = "open"
            for _ in range(50):
                reply = await actor.socket_poll(sid, token, 0.5)
                got += reply["Messages"]
                state = reply["State"]
                if state != "open":
                    break
            notice = next(m for m in got if m.get("Output") == "session")
            assert notice["Type"] == 10 and notice["State"] == "failed"
            assert "encoder exploded" in notice["Message"]
            assert state == "closed"
            failed = (await actor.report())["Sessions"][sid]["Failed"]
            assert failed is not None and "encoder exploded" in failed[1]
        finally:
            await actor.close(sid)

    asyncio.run(asyncio.wait_for(main(), 60))
