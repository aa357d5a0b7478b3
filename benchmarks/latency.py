"""Live-session latency on loopback, end to end, as a viewer sees it. Prints JSON.

    python benchmarks/latency.py --json [--reps 5]

One run: a real server in this process (uvicorn in a thread, temp data dir, ICE on
127.0.0.1), a real key, the Python client, a WhepViewer (aiortc) decoding the stream, and the
WebSocket command channel. Each repetition creates a fresh session and measures:

- create_to_first_frame_ms: from just before `createsessionbyasset` (then statsession polls
  until ready, `startsession`, the WHEP offer/answer, ICE + DTLS) to the first decoded frame
  at the viewer.
- audio_to_mouth_ms: from sending the first chunk of an utterance (paced as the spec says: 6
  chunks at once, then one every 120 ms; loopback, so send ≈ arrival at the server) to the
  first frame received whose mouth is open. The sentence starts with a vowel and its leading
  silence is cut, so the mouth should open with the first frame of speech. The 200 ms
  lip-sync lookahead is inside this figure: a frame is committed only once 200 ms of audio
  beyond it has arrived. With the spec's burst (960 ms at once) that is already there, so it
  costs nothing here; `audio_to_mouth_realtime_ms` sends the same audio as a live microphone
  would (a 160 ms chunk every 160 ms, no burst), where the lookahead is a real wait.
- interrupt_to_closed_ms: during a long utterance, with the mouth open on the viewer's latest
  frame, send `SEND_AUDIO {"Interrupt": true}`; the time to the first received frame from
  which the mouth stays closed for 0.6 s (so a natural closure inside speech does not count).
- interrupt_to_silence_ms: the same interrupt, heard: the time to the first received 20 ms of
  audio from which the sound stays quiet (RMS under `QUIET_RMS`) for 0.6 s. Both include
  what was queued for the viewer when the interrupt came (an interrupt flushes it) and the
  viewer's own jitter buffers.
- av_offset_ms: at the viewer, when the first speech audio (a 20 ms frame over 10 % of the
  utterance's loudness) arrives minus when the first open-mouth frame arrives; positive means
  the sound comes after the picture. Each track's times are taken from its pts (exact
  spacing, no jitter) placed on the monotonic clock by the track's median (receive time −
  pts); aiortc's pts start at 0 on each track, so receive times are the only link between
  the two. `av_offset_recv_ms` is the same from raw receive times. aiortc's receiver does no
  A/V sync and its jitter buffers differ (video: one frame; audio: 4 packets = 80 ms), so a
  browser, which syncs with RTCP, would show a smaller offset than this viewer.

"Open" = more than `open_threshold` pixels darker than 60 in the mouth box (the inside of an
open mouth; head sway does not create dark pixels; checked on the idle frames of every run).
Each figure: the median over the repetitions, with the raw list. Goals from the issue are
printed beside them; a missed goal is reported, not hidden.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from websockets.asyncio.client import ClientConnection, connect

from avatarcast.api.server import run_server_in_thread
from avatarcast.avatars.registry import load_avatar
from avatarcast.client import Client
from avatarcast.client.viewer import AudioSample, Box, VideoSample, WhepViewer
from avatarcast.render.frame import FrameState
from avatarcast.sessions.store_sqlite import SqliteStore
from avatarcast.settings import Settings
from avatarcast.speech.tts import get_backend
from avatarcast.speech.visemes import MouthPose, Shape

GOALS = {  # (goal, how to compare)
    "create_to_first_frame_ms": "< 1000",
    "audio_to_mouth_ms": "< 250",
    "interrupt_to_closed_ms": "< 200",
    "interrupt_to_silence_ms": "< 200",
    "av_offset_ms": "|x| <= 40",
}
SHORT = "Open all of our apps on your own."
LONG = (
    "I am going to tell you all about the amazing things we have in our shop today, "
    "so please stay a while and have a look around."
)
CHUNK_BYTES = 5120  # 160 ms at 16 kHz s16 mono
DARK = 60  # luma below this in the mouth box: the inside of an open mouth
STAY_CLOSED_S = 0.6
QUIET_RMS = 100.0  # int16 RMS of a 20 ms frame: speech here is ~3000, idle audio ~0
Msg = dict[str, Any]


# ---- inputs ----------------------------------------------------------------------------------
def mouth_box() -> Box:
    """Pixels that differ between a wide-open and a closed mouth, with room for head sway."""
    avatar = load_avatar("default")
    wide = avatar.render(FrameState(mouth=MouthPose(Shape.D, 1.0))).y.astype(np.int16)
    shut = avatar.render(FrameState(mouth=MouthPose(Shape.A, 0.0))).y.astype(np.int16)
    ys, xs = np.nonzero(np.abs(wide - shut) > 20)
    pad = 12
    return int(ys.min()) - pad, int(ys.max()) + pad, int(xs.min()) - pad, int(xs.max()) + pad


def speech(text: str) -> np.ndarray:
    """espeak speech with its leading silence cut (10 ms kept before the onset)."""
    pcm: np.ndarray = get_backend("espeak").synthesize(text, voice="en-us").pcm
    level = np.abs(pcm.astype(np.int32))
    onset = int(np.argmax(level > 0.05 * level.max()))
    return pcm[max(0, onset - 160) :]


def darkness(frame: VideoSample) -> int:
    return int((frame.luma < DARK).sum())


# ---- the command channel ---------------------------------------------------------------------
class Channel:
    """The session's WebSocket; a reader task stamps each message with its arrival time."""

    def __init__(self, ws: ClientConnection, session_id: str) -> None:
        self.ws = ws
        self.sid = session_id
        self.messages: list[Msg] = []
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for raw in self.ws:
            msg = json.loads(raw)
            msg["_at"] = time.monotonic()
            self.messages.append(msg)

    async def send(self, req_id: str, command: str, data: Msg) -> None:
        payload = {"ReqId": req_id, "SessionId": self.sid, "Command": command, "Data": data}
        await self.ws.send(json.dumps({"Header": {}, "Payload": payload}))

    async def send_audio(self, req_id: str, pcm: np.ndarray, pacing: str) -> float:
        """Send an utterance; returns the time its first chunk was sent.

        pacing "spec": 6 chunks at once, then one every 120 ms; "mic": one every 160 ms;
        "burst": everything at once."""
        raw = pcm.astype("<i2").tobytes()
        chunks = [raw[i : i + CHUNK_BYTES] for i in range(0, len(raw), CHUNK_BYTES)]
        start = time.monotonic()
        for seq, chunk in enumerate(chunks, 1):
            if pacing == "spec":
                due = start + max(0, seq - 6) * 0.12
            elif pacing == "mic":
                due = start + (seq - 1) * 0.16
            else:
                due = start
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            data = {"Audio": base64.b64encode(chunk).decode(), "Seq": seq, "IsFinal": False}
            await self.send(req_id, "SEND_AUDIO", data)
        await self.send(
            req_id, "SEND_AUDIO", {"Audio": "", "Seq": len(chunks) + 1, "IsFinal": True}
        )
        return start

    def status(self, req_id: str, name: str) -> Msg | None:
        for m in self.messages:
            if m.get("ReqId") == req_id and m.get("SpeakStatus") == name:
                return m
        return None

    async def wait_status(self, req_id: str, name: str, timeout_s: float) -> Msg:
        deadline = time.monotonic() + timeout_s
        while (m := self.status(req_id, name)) is None:
            errors = [m for m in self.messages if m.get("Type") == 9]
            if errors:
                raise RuntimeError(f"the server refused a message: {errors[0]}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {name} for {req_id} within {timeout_s} s")
            await asyncio.sleep(0.005)
        return m

    async def close(self) -> None:
        await self.ws.close()
        self._reader.cancel()
        await asyncio.wait([self._reader], timeout=5)


# ---- measuring -------------------------------------------------------------------------------
def on_clock(samples: Sequence[VideoSample | AudioSample]) -> list[float]:
    """Each sample's time from its pts, placed on the monotonic clock by the track's median
    (receive time − pts): exact spacing within the track, arrival jitter removed."""
    if any(s.pts is None or s.time_base is None for s in samples):
        return [s.t for s in samples]
    media = [float(s.pts * s.time_base) for s in samples]  # type: ignore[operator]
    shift = statistics.median(s.t - m for s, m in zip(samples, media, strict=True))
    return [m + shift for m in media]


@dataclass
class Rep:
    create_to_first_frame_ms: float
    audio_to_mouth_ms: float
    audio_to_mouth_realtime_ms: float
    interrupt_to_closed_ms: float
    interrupt_to_silence_ms: float
    av_offset_ms: float
    av_offset_recv_ms: float
    idle_darkness_max: int
    notes: list[str] = field(default_factory=list)


def first_open_after(frames: list[VideoSample], t0: float, threshold: int) -> VideoSample:
    for f in frames:
        if f.t > t0 and darkness(f) > threshold:
            return f
    raise RuntimeError("the mouth never opened on the viewer")


async def utterance_onset(
    viewer: WhepViewer, channel: Channel, pcm: np.ndarray, pacing: str, threshold: int
) -> tuple[float, VideoSample]:
    """Send one utterance; return (first chunk sent at, first open-mouth frame received)."""
    req = uuid.uuid4().hex
    sent = await channel.send_audio(req, pcm, pacing)
    await channel.wait_status(req, "AudioOver", timeout_s=pcm.size / 16000 + 10)
    await asyncio.sleep(0.3)  # the last frames are still on their way to the viewer
    return sent, first_open_after(list(viewer.video), sent, threshold)


def av_offsets(
    viewer: WhepViewer, sent: float, frame: VideoSample, frames_until: float
) -> tuple[float, float]:
    """(pts-based, receive-time) offset between the first speech audio and the first open
    mouth of the utterance sent at `sent` (seconds; positive: the sound is later)."""
    window_v = [f for f in viewer.video if sent - 1.0 < f.t < frames_until]
    window_a = [a for a in viewer.audio if sent - 1.0 < a.t < frames_until]
    loud = max(a.rms for a in window_a)
    i_audio = next(i for i, a in enumerate(window_a) if a.t > sent and a.rms > 0.1 * loud)
    i_video = next(i for i, f in enumerate(window_v) if f is frame)
    t_v, t_a = on_clock(window_v), on_clock(window_a)
    return t_a[i_audio] - t_v[i_video], window_a[i_audio].t - frame.t


def first_lasting(samples: Sequence[VideoSample | AudioSample], after: float, ok: Any) -> float:
    """Seconds from `after` to the first sample from which `ok(sample)` holds for
    STAY_CLOSED_S (received time)."""
    later = [f for f in samples if f.t > after]
    for i, f in enumerate(later):
        ahead = [g for g in later[i:] if g.t <= f.t + STAY_CLOSED_S]
        if all(ok(g) for g in ahead):
            return f.t - after
    raise RuntimeError("the interrupted speech did not stop at the viewer")


async def interrupt_latency(
    viewer: WhepViewer, channel: Channel, pcm: np.ndarray
) -> tuple[float, float]:
    """Speak `pcm` (sent at once), interrupt it while the mouth is open; returns the seconds
    to the mouth closed and to the sound silent, at the viewer."""
    req = uuid.uuid4().hex
    await channel.send_audio(req, pcm, "burst")
    start = await channel.wait_status(req, "AudioStart", timeout_s=10)
    await asyncio.sleep(max(0.0, start["_at"] + 0.8 - time.monotonic()))
    deadline = time.monotonic() + 3.0
    while darkness(viewer.video[-1]) <= 20:  # interrupt an open mouth, not a closure
        if time.monotonic() > deadline:
            raise RuntimeError("the mouth did not open during the long utterance")
        await asyncio.sleep(0.005)
    sent = time.monotonic()
    await channel.send(uuid.uuid4().hex, "SEND_AUDIO", {"Interrupt": True})
    over = await channel.wait_status(req, "AudioOver", timeout_s=5)
    if over.get("FinalType") != 3:
        raise RuntimeError(f"interrupted speech ended with {over}")
    await asyncio.sleep(STAY_CLOSED_S + 0.3)
    closed = first_lasting(list(viewer.video), sent, lambda f: darkness(f) <= 20)
    silent = first_lasting(list(viewer.audio), sent, lambda a: a.rms < QUIET_RMS)
    return closed, silent


async def one_rep(client: Client, box: Box, short: np.ndarray, long: np.ndarray, n: int) -> Rep:
    t0 = time.monotonic()
    created = await asyncio.to_thread(client.create_session_by_asset, "default", f"bench-{n}")
    sid = created["SessionId"]
    try:
        await asyncio.to_thread(client.wait_ready, sid, 30.0, 0.01)
        await asyncio.to_thread(client.start_session, sid)
        viewer = WhepViewer(
            created["PlayStreamAddr"],
            ice_host_addresses=["127.0.0.1"],
            crop=box,
            max_video_frames=1000,
            max_audio_frames=3000,
        )
        async with viewer, connect(client.command_channel_url(sid), open_timeout=10) as ws:
            first = (await viewer.wait_frames(1, timeout_s=10))[0]
            create_ms = (first.t - t0) * 1000
            channel = Channel(ws, sid)
            try:
                await asyncio.sleep(1.5)  # idle: the baseline of a closed mouth
                idle = [darkness(f) for f in viewer.video if f.t > first.t + 0.2]
                threshold = max(20, max(idle) + 20)

                sent, frame = await utterance_onset(viewer, channel, short, "spec", threshold)
                audio_ms = (frame.t - sent) * 1000
                until = sent + short.size / 16000 + 1.0
                av_pts, av_recv = av_offsets(viewer, sent, frame, until)

                await asyncio.sleep(0.5)
                sent_rt, frame_rt = await utterance_onset(viewer, channel, short, "mic", threshold)
                realtime_ms = (frame_rt.t - sent_rt) * 1000

                await asyncio.sleep(0.5)
                closed_s, silent_s = await interrupt_latency(viewer, channel, long)
            finally:
                await channel.close()
    finally:
        await asyncio.to_thread(client.close_session, sid)
    return Rep(
        create_ms,
        audio_ms,
        realtime_ms,
        closed_s * 1000,
        silent_s * 1000,
        av_pts * 1000,
        av_recv * 1000,
        max(idle),
    )


def summary(reps: list[Rep]) -> dict[str, Any]:
    out: dict[str, Any] = {"repetitions": len(reps)}
    names = [
        "create_to_first_frame_ms",
        "audio_to_mouth_ms",
        "audio_to_mouth_realtime_ms",
        "interrupt_to_closed_ms",
        "interrupt_to_silence_ms",
        "av_offset_ms",
        "av_offset_recv_ms",
    ]
    for name in names:
        values = [round(getattr(r, name), 1) for r in reps]
        med = round(statistics.median(values), 1)
        entry: dict[str, Any] = {"median": med, "raw": values}
        if name in GOALS:
            goal = GOALS[name]
            entry["goal"] = goal
            limit = float(goal.split()[-1])
            entry["meets_goal"] = abs(med) <= limit if goal.startswith("|") else med < limit
        out[name] = entry
    out["idle_mouth_dark_pixels_max"] = max(r.idle_darkness_max for r in reps)
    out["notes"] = {
        "audio_to_mouth_ms": "includes the 200 ms lip-sync lookahead, which the spec's "
        "6-chunk burst satisfies at once; audio_to_mouth_realtime_ms is microphone pacing, "
        "where it is a real wait",
        "av_offset_ms": "at an aiortc viewer (no A/V sync; audio jitter buffer 80 ms vs "
        "video 40 ms); positive = sound after picture",
    }
    return out


async def run(reps: int) -> dict[str, Any]:
    box = mouth_box()
    short, long = speech(SHORT), speech(LONG)
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            data_dir=Path(tmp), log_level="warning", ice_host_addresses="127.0.0.1"
        ).validate()
        store = SqliteStore(settings.db_path)
        appkey, token = store.create_key("bench", 4)
        store.close()
        base_url, stop = run_server_in_thread(settings)
        try:
            with Client(base_url, appkey, token) as client:
                results = []
                for n in range(reps):
                    rep = await asyncio.wait_for(one_rep(client, box, short, long, n), 60)
                    results.append(rep)
        finally:
            stop()
    return summary(results)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--json", action="store_true", help="print only the JSON object")
    ap.add_argument("--reps", type=int, default=5, help="repetitions (sessions); median kept")
    args = ap.parse_args()
    result = asyncio.run(run(args.reps))
    if args.json:
        print(json.dumps(result))
        return
    for name, entry in result.items():
        if isinstance(entry, dict) and "median" in entry:
            verdict = ""
            if "goal" in entry:
                verdict = f"  goal {entry['goal']}: {'ok' if entry['meets_goal'] else 'MISSED'}"
            print(f"{name:28s} {entry['median']:8.1f}  {entry['raw']}{verdict}")
    print(json.dumps(result["notes"], indent=1), file=sys.stderr)


if __name__ == "__main__":
    main()
