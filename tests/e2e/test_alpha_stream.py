"""Transparent background end to end: a real server streams a session created with
`ExtraInfo.AlphaChannelEnable`, a WHEP viewer decodes it, and the packed picture is checked
against the avatar itself: the right half's luma is the avatar's matte, the left half its
unchanged colour picture (layout in docs/outputs.md).

Tolerances: H.264 at the default bitrate (a few levels of codec error, soft edges) and the idle
motion (breathing, a few px of head sway) between the reference pose and a received frame."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from collections.abc import Iterator
from importlib.resources import files
from pathlib import Path

import av
import numpy as np
import pytest
from numpy.typing import NDArray

from avatarcast.avatars.registry import load_avatar
from avatarcast.client import Client
from avatarcast.client.viewer import WhepViewer
from avatarcast.render.alpha import luma_to_matte
from avatarcast.render.frame import FrameState, YuvFrame
from avatarcast.settings import Settings
from server_harness import live_client

W, H = 540, 960
SWAY = 8  # px: head sway plus the codec's soft edge


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Client]:
    data_dir: Path = tmp_path_factory.mktemp("alpha")
    settings = Settings(data_dir=data_dir, log_level="warning", ice_host_addresses="127.0.0.1")
    with live_client(settings.validate(), "e2e-alpha", 2) as c:
        yield c


def _erode(mask: NDArray[np.bool_], r: int) -> NDArray[np.bool_]:
    """True where the whole (2r+1)-square around the pixel is True (edges count as False)."""
    padded = np.pad(mask, r, constant_values=False)
    out = np.ones_like(mask)
    for dy in range(0, 2 * r + 1, 2):
        for dx in range(0, 2 * r + 1, 2):
            out &= padded[dy : dy + mask.shape[0], dx : dx + mask.shape[1]]
    return out


def _best_shift(got: NDArray[np.int16], want: NDArray[np.int16]) -> tuple[float, int, int]:
    """The smallest mean abs difference over shifts of up to SWAY px, and that shift."""
    m = SWAY
    core = want[m:-m, m:-m]
    best = (1e9, 0, 0)
    for dy in range(-m, m + 1, 2):
        for dx in range(-m, m + 1, 2):
            err = float(np.abs(got[m + dy : H - m + dy, m + dx : W - m + dx] - core).mean())
            best = min(best, (err, dy, dx))
    return best


@pytest.fixture(scope="module")
def received(client: Client) -> YuvFrame:
    """One packed frame of an alpha session, as a WHEP viewer decoded it."""

    async def main() -> YuvFrame:
        created = await asyncio.to_thread(
            client.create_session_by_asset, "default", "alpha-user", "webrtc", 3, alpha=True
        )
        sid = created["SessionId"]
        await asyncio.to_thread(client.wait_ready, sid, 30.0)
        await asyncio.to_thread(client.start_session, sid)
        try:
            viewer = WhepViewer(
                created["PlayStreamAddr"], ice_host_addresses=["127.0.0.1"], color=True
            )
            async with viewer:
                # Past the first frames, when the rate control has settled.
                frames = await viewer.wait_frames(40, timeout_s=15)
        finally:
            await asyncio.to_thread(client.close_session, sid)
        last = frames[-1]
        assert (last.width, last.height) == (2 * W, H)  # 1080 x 960: two halves
        assert last.yuv is not None
        return YuvFrame(last.yuv, last.width, last.height)

    return asyncio.run(asyncio.wait_for(main(), 60))


@pytest.fixture(scope="module")
def reference() -> tuple[NDArray[np.uint8], YuvFrame]:
    """The idle pose's matte and colour picture, straight from the avatar."""
    avatar = load_avatar("default")
    return avatar.alpha(FrameState()), avatar.render(FrameState())


def _regions(matte: NDArray[np.uint8]) -> tuple[NDArray[np.bool_], NDArray[np.bool_]]:
    """Surely opaque / surely clear pixels: SWAY px away from the matte's edge."""
    opaque, clear = _erode(matte == 255, SWAY), _erode(matte == 0, SWAY)
    assert opaque.sum() > 50_000 and clear.sum() > 50_000  # both regions are well sampled
    return opaque, clear


def test_alpha_session_streams_colour_left_and_matte_right(
    received: YuvFrame, reference: tuple[NDArray[np.uint8], YuvFrame]
) -> None:
    matte, colour = reference
    opaque, clear = _regions(matte)
    got = received

    # Right half: luma carries the matte (limited range), chroma is neutral.
    alpha = luma_to_matte(np.ascontiguousarray(got.y[:, W:])).astype(np.int16)
    assert float(alpha[clear].mean()) < 3, "the background is not transparent"
    assert float(np.percentile(alpha[clear], 99)) < 20
    assert float(alpha[opaque].mean()) > 250, "the avatar is not opaque"
    assert float(np.percentile(alpha[opaque], 1)) > 230
    err, dy, dx = _best_shift(alpha, matte.astype(np.int16))
    assert err < 3, (err, dy, dx)  # the edge lies within SWAY px of the avatar's edge
    # Corners: far from any edge, exactly transparent up to codec noise.
    for corner in (alpha[:40, :40], alpha[:40, -40:]):
        assert int(corner.max()) < 12
    chroma_right = np.concatenate([got.u[:, W // 2 :].ravel(), got.v[:, W // 2 :].ravel()])
    assert float(np.abs(chroma_right.astype(np.int16) - 128).mean()) < 2

    # Left half: the avatar's colour picture, unchanged by the packing.
    y_left = got.y[:, :W].astype(np.int16)
    ref_y = colour.y.astype(np.int16)
    err, dy, dx = _best_shift(y_left, ref_y)
    assert err < 4, (err, dy, dx)
    for plane_got, plane_ref in ((got.u, colour.u), (got.v, colour.v)):
        half = plane_got[:, : W // 2].astype(np.int16)
        assert float(np.abs(half - plane_ref.astype(np.int16)).mean()) < 2
    # Background colour preserved where the matte is 0, the figure's where it is opaque.
    assert abs(float(y_left[clear].mean()) - float(ref_y[clear].mean())) < 3
    assert abs(float(y_left[opaque].mean()) - float(ref_y[opaque].mean())) < 4


COMPOSITE_JS = """
import { compositeRgba } from %s;
const [ws, hs, mode] = process.argv.slice(-3);
const [w, h] = [Number(ws), Number(hs)];
const chunks = [];
for await (const c of process.stdin) chunks.push(c);
const packed = new Uint8Array(Buffer.concat(chunks));
const out = new Uint8ClampedArray(w * h * 4);  // as ImageData: clamps and rounds
for (let i = 0; i < out.length; i += 4) { out[i + 1] = 255; out[i + 3] = 255; }  // green
compositeRgba(packed, out, w, h, mode);
process.stdout.write(out);
"""


@pytest.mark.parametrize("mode", ["opaque", "transparent"])
def test_alpha_js_composites_the_received_frame(
    received: YuvFrame, reference: tuple[NDArray[np.uint8], YuvFrame], mode: str
) -> None:
    """web/alpha.js's 2D rule on the decoded frame, as a browser's canvas hands it over."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    matte, _ = reference
    opaque, clear = _regions(matte)
    # RGBA as a browser decoder gives it: BT.601 limited range expanded to 0..255.
    vf = av.VideoFrame.from_ndarray(received.data, format="yuv420p")
    rgba = vf.to_ndarray(format="rgba")
    helper = Path(str(files("avatarcast") / "web" / "alpha.js")).as_uri()
    done = subprocess.run(
        [
            node,
            "--input-type=module",
            "-e",
            COMPOSITE_JS % json.dumps(helper),
            str(W),
            str(H),
            mode,
        ],
        input=rgba.tobytes(),
        capture_output=True,
        timeout=30,
        check=True,
    )
    out = np.frombuffer(done.stdout, np.uint8).reshape(H, W, 4).astype(np.int16)
    colour = rgba[:, :W].astype(np.int16)
    if mode == "opaque":
        assert np.abs(out[clear][:, :3] - [0, 255, 0]).max() <= 3  # the backdrop shows
        assert float(np.abs(out[opaque][:, :3] - colour[opaque][:, :3]).mean()) < 1.5
        assert (out[..., 3] == 255).all()
    else:
        assert int(out[clear][:, 3].max()) <= 3 and int(out[opaque][:, 3].min()) >= 250
        assert float(np.abs(out[opaque][:, :3] - colour[opaque][:, :3]).mean()) < 0.5
        # Alpha follows the avatar's matte, edges included (up to codec error and sway).
        assert float(np.abs(out[..., 3] - matte.astype(np.int16)).mean()) < 6
