"""A real Janus (Debian's `janus` package) for tests: own config folder, 127.0.0.1 only.

`JanusServer(folder, port)` writes a configuration that loads the VideoRoom plugin and the HTTP
transport and nothing else, binds the HTTP API to 127.0.0.1:port, gathers ICE candidates on
`lo` only (no STUN/TURN, no mDNS, no IPv6), and sets an API secret. `start()` runs `janus` as a
child process and waits until its API answers; `stop(sig)` ends it (SIGKILL for a crash).

The loopback pitfall: Janus's ICE gathering skips interfaces flagged IFF_LOOPBACK, so on `lo`
alone `publish` fails with 490 "Error setting ICE locally". The fixture compiles a tiny
LD_PRELOAD library (with the machine's C compiler) that wraps getifaddrs() and clears that
flag on `lo`, for the Janus process only.

Subscribers: `JanusSubscriber` is an aiortc viewer that subscribes to one feed through the
VideoRoom API (the same steps as the demo page's web/janus.js) and decodes what arrives.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from avatarcast.stream.janus_api import JanusSession
from avatarcast.stream.webrtc import use_host_addresses

JANUS = shutil.which("janus") or "/usr/bin/janus"
API_SECRET = "avatarcast-test-secret"

_SHIM_C = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <string.h>

/* Janus gathers no ICE candidate on interfaces flagged loopback: unflag `lo`. */
int getifaddrs(struct ifaddrs **ifap) {
    static int (*real)(struct ifaddrs **) = 0;
    if (!real) real = (int (*)(struct ifaddrs **))dlsym(RTLD_NEXT, "getifaddrs");
    int rc = real(ifap);
    if (rc == 0)
        for (struct ifaddrs *i = *ifap; i; i = i->ifa_next)
            if (i->ifa_name && strcmp(i->ifa_name, "lo") == 0) i->ifa_flags &= ~IFF_LOOPBACK;
    return rc;
}
"""


def janus_available() -> str:
    """Why Janus tests cannot run here, or "" when they can."""
    if not os.path.exists(JANUS):
        return "needs Debian's janus (apt-get install janus)"
    if not _lib_folder("plugins"):
        return "janus is installed without its plugins folder"
    if not (shutil.which("cc") or shutil.which("gcc")):
        return "needs a C compiler for the loopback shim (apt-get install gcc libc6-dev)"
    return ""


def _lib_folder(kind: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/*/janus/{kind}")) + sorted(
        glob.glob(f"/usr/lib/janus/{kind}")
    )
    return found[0] if found else ""


def _others(kind: str, keep: str) -> str:
    folder = _lib_folder(kind)
    if not folder:
        return ""
    names = sorted(
        os.path.basename(p) for p in glob.glob(f"{folder}/*.so") if os.path.basename(p) != keep
    )
    return ",".join(names)


def compile_shim(folder: Path) -> Path:
    src, lib = folder / "lo_shim.c", folder / "lo_shim.so"
    src.write_text(_SHIM_C)
    cc = shutil.which("cc") or shutil.which("gcc") or "cc"
    subprocess.run([cc, "-shared", "-fPIC", "-O2", "-o", str(lib), str(src), "-ldl"], check=True)
    return lib


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class JanusServer:
    """One `janus` process with its own config folder, HTTP API on 127.0.0.1:port."""

    def __init__(
        self,
        folder: Path,
        port: int,
        *,
        api_secret: str = API_SECRET,
        session_timeout_s: int = 60,
    ) -> None:
        self.folder, self.port, self.api_secret = folder, port, api_secret
        self.session_timeout_s = session_timeout_s
        self.url = f"http://127.0.0.1:{port}/janus"
        self.conf = folder / "conf"
        self.conf.mkdir(parents=True, exist_ok=True)
        self.log = folder / "janus.log"
        self.shim = compile_shim(folder)
        self._write_config()
        self.proc: subprocess.Popen[bytes] | None = None

    def _write_config(self) -> None:
        secret = f'\tapi_secret = "{self.api_secret}"\n' if self.api_secret else ""
        (self.conf / "janus.jcfg").write_text(
            "general: {\n"
            f'\tconfigs_folder = "{self.conf}"\n'
            f'\tplugins_folder = "{_lib_folder("plugins")}"\n'
            f'\ttransports_folder = "{_lib_folder("transports")}"\n'
            f'\tevents_folder = "{_lib_folder("events") or self.conf}"\n'
            f'\tloggers_folder = "{_lib_folder("loggers") or self.conf}"\n'
            "\tdebug_level = 4\n"
            '\tserver_name = "avatarcast-test"\n'
            f"\tsession_timeout = {self.session_timeout_s}\n"
            f"{secret}"
            "}\n"
            "media: {\n\tipv6 = false\n}\n"
            'nat: {\n\tice_enforce_list = "lo"\n\tignore_mdns = true\n\tnice_debug = false\n}\n'
            f'plugins: {{\n\tdisable = "{_others("plugins", "libjanus_videoroom.so")}"\n}}\n'
            f'transports: {{\n\tdisable = "{_others("transports", "libjanus_http.so")}"\n}}\n'
            f'loggers: {{\n\tdisable = "{_others("loggers", "")}"\n}}\n'
            "events: {\n\tbroadcast = false\n}\n"
        )
        (self.conf / "janus.transport.http.jcfg").write_text(
            "general: {\n"
            '\tbase_path = "/janus"\n\thttp = true\n'
            f'\tport = {self.port}\n\tip = "127.0.0.1"\n\thttps = false\n'
            "}\n"
            "admin: {\n\tadmin_http = false\n\tadmin_https = false\n}\n"
        )
        (self.conf / "janus.plugin.videoroom.jcfg").write_text("general: {\n}\n")

    def start(self, timeout_s: float = 10.0) -> None:
        env = dict(os.environ, LD_PRELOAD=str(self.shim))
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [
                    JANUS,
                    "-F",
                    str(self.conf),
                    "-C",
                    str(self.conf / "janus.jcfg"),
                    "-i",
                    "127.0.0.1",
                    "-o",
                    "-E",
                    "lo",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"janus exited: {self.log.read_text()[-2000:]}")
            if self._answers():
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"janus did not answer in time: {self.log.read_text()[-2000:]}")

    def _answers(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/info", timeout=1) as r:
                return bool(json.loads(r.read()).get("janus") == "server_info")
        except OSError:
            return False

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None
        deadline = time.monotonic() + 5  # the port is reused on restart
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) != 0:
                    return
            time.sleep(0.05)


# ---- a subscriber ------------------------------------------------------------------------------
Box = tuple[int, int, int, int]  # y0, y1, x0, x1


@dataclass
class Received:
    sizes: list[tuple[int, int]] = field(default_factory=list)
    video_pts_s: list[float] = field(default_factory=list)
    video_t: list[float] = field(default_factory=list)  # time.monotonic() when decoded
    crops: list[np.ndarray] = field(default_factory=list)  # the `crop` box of each luma
    audio_t: list[float] = field(default_factory=list)
    audio_rms: list[float] = field(default_factory=list)  # of each decoded audio frame


class JanusSubscriber:
    """An aiortc viewer of one feed of a VideoRoom, through Janus's HTTP API (the steps of
    web/janus.js): attach, join as subscriber, answer Janus's offer, start."""

    def __init__(
        self,
        url: str,
        room: int,
        feed: int,
        *,
        api_secret: str = API_SECRET,
        crop: Box | None = None,
        decode: bool = True,
    ) -> None:
        self.url, self.room, self.feed, self.api_secret = url, room, feed, api_secret
        self.crop, self.decode = crop, decode
        self.got = Received()
        self.frames = 0
        self.pc: RTCPeerConnection | None = None
        self.janus: JanusSession | None = None
        self._tasks: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> JanusSubscriber:
        use_host_addresses(["127.0.0.1"])  # aioice leaves loopback out otherwise
        self.janus = await JanusSession.open(self.url, api_secret=self.api_secret)
        handle = await self.janus.attach()
        _, offer = await self.janus.message(
            handle,
            {
                "request": "join",
                "ptype": "subscriber",
                "room": self.room,
                "streams": [{"feed": self.feed}],
            },
        )
        assert offer is not None, "Janus sent no offer"
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.pc = pc

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            self._tasks.append(asyncio.create_task(self._consume(track)))

        await pc.setRemoteDescription(RTCSessionDescription(sdp=offer["sdp"], type="offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        answer = {"type": "answer", "sdp": pc.localDescription.sdp, "trickle": False}
        await self.janus.message(handle, {"request": "start"}, answer)
        return self

    async def __aexit__(self, *exc: object) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(BaseException):
                await task
        if self.pc is not None:
            await self.pc.close()
        if self.janus is not None:
            await self.janus.close()

    async def _consume(self, track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                now = time.monotonic()
                if isinstance(frame, av.VideoFrame):
                    self.frames += 1
                    if self.decode:
                        self._on_video(frame, now)
                elif isinstance(frame, av.AudioFrame) and self.decode:
                    pcm = frame.to_ndarray().astype(np.float64)
                    self.got.audio_t.append(now)
                    self.got.audio_rms.append(float(np.sqrt(np.mean(pcm**2))))

    def _on_video(self, frame: av.VideoFrame, now: float) -> None:
        self.got.sizes.append((frame.width, frame.height))
        self.got.video_t.append(now)
        if frame.pts is not None and frame.time_base is not None:
            self.got.video_pts_s.append(float(frame.pts * Fraction(frame.time_base)))
        if self.crop is not None:
            y0, y1, x0, x1 = self.crop
            luma = frame.to_ndarray(format="gray")
            self.got.crops.append(luma[y0:y1, x0:x1].copy())

    async def wait_frames(self, n: int, timeout_s: float = 20.0) -> None:
        deadline = time.monotonic() + timeout_s
        while self.frames < n:
            assert time.monotonic() < deadline, f"{self.frames} frames of {n} in {timeout_s} s"
            await asyncio.sleep(0.05)
