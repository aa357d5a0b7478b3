"""A live session from start to end, with the Python client.

    .venv/bin/python examples/live_session.py [--url http://127.0.0.1:8080]
        [--key-file avatarcast-data/dev-key.json] [--text "..."] [--keep]

Creates a WebRTC session of the built-in avatar, starts it, prints its WHEP play URL, makes it
say a text over the command channel (printing each status message as it arrives) and closes
it, unless --keep (then it stays open until its idle timeout; heartbeats keep it alive).
"""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from pathlib import Path

from avatarcast.cli.say import run_say
from avatarcast.client import ApiError, Client


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--url", default="http://127.0.0.1:8080")
    ap.add_argument("--key-file", default="avatarcast-data/dev-key.json")
    ap.add_argument(
        "--text",
        default="Hello! I am streaming live from your own server. Nice to meet you.",
    )
    ap.add_argument("--keep", action="store_true", help="leave the session open")
    a = ap.parse_args()
    key = json.loads(Path(a.key_file).read_text("utf-8"))
    with Client(a.url, key["appkey"], key["accesstoken"]) as client:
        try:
            created = client.create_session_by_asset(
                "default", user_id=f"example-{uuid.uuid4().hex[:8]}"
            )
            session_id = created["SessionId"]
            client.wait_ready(session_id, timeout_s=30)
            client.start_session(session_id)
        except ApiError as exc:
            print(f"error {exc.code}: {exc.message}", file=sys.stderr)
            return 1
        print(f"SessionId:      {session_id}")
        print(f"PlayStreamAddr: {created['PlayStreamAddr']}")
        print(
            "  record it:    .venv/bin/avatarcast watch --url '"
            + created["PlayStreamAddr"]
            + "' --seconds 10 --out live.mp4"
        )
        status = run_say(a.url, key["appkey"], key["accesstoken"], session_id, text=a.text)
        if not a.keep:
            client.close_session(session_id)
            print("closed")
        return status


if __name__ == "__main__":
    sys.exit(main())
