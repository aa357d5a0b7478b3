"""Real-browser tests of the demo page: a real server, Debian's Chromium driven by Playwright.

They run inside a network namespace that has only loopback (unshare -n), so neither the
browser nor the server can reach or offer any other address. `test_demo_page.py` starts
that namespace itself: outside it, every browser test here is skipped except the one that
re-runs this directory inside it (marker: the environment variable below). To run them
directly, as root:

    unshare -n sh -c 'ip link set lo up; exec env AVATARCAST_BROWSER_NETNS=1 \\
        .venv/bin/pytest -q tests/e2e/browser'
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from browser_support import (
    ARTIFACTS,
    CHROMIUM,
    HERE,
    IN_NETNS,
    RUNNER,
    Box,
    PageUnderTest,
    Server,
    chromium_args,
    collect_errors,
)

from netns import mark_for_namespace


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    mark_for_namespace(items, HERE, IN_NETNS, RUNNER)


# ---- the server --------------------------------------------------------------------------
@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    from avatarcast.settings import Settings
    from server_harness import live_server

    data_dir = tmp_path_factory.mktemp("browser-data")
    settings = Settings(
        data_dir=data_dir, log_level="warning", ice_host_addresses="127.0.0.1", idle_timeout_s=120
    ).validate()
    with live_server(settings, key_name="dev", max_sessions=8) as live:
        appkey, token = live.key()
        # What `make run` writes: the page picks it up as browser and server are on loopback.
        (data_dir / "dev-key.json").write_text(json.dumps({"appkey": appkey, "accesstoken": token}))
        yield Server(live.url, appkey, token)


# ---- media the tests need ----------------------------------------------------------------
@pytest.fixture(scope="session")
def speech_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Speech at 48 kHz (the fake capture device's native rate), for the fake microphone."""
    from avatarcast.speech.audio import resample, save_wav
    from avatarcast.speech.tts import get_backend

    tts = get_backend("espeak")
    pcm = tts.synthesize(
        "Hello there, my name is Bob. How are you today? I would like to talk about avatars.",
        voice="en-us",
    ).pcm
    path = tmp_path_factory.mktemp("fake-mic") / "speech48k.wav"
    save_wav(path, resample(pcm, 16000, 48000), 48000)
    return path


@pytest.fixture(scope="session")
def short_speech_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A short clip at 22.05 kHz for the file upload (the browser decodes and resamples it)."""
    from avatarcast.speech.audio import resample, save_wav
    from avatarcast.speech.tts import get_backend

    pcm = get_backend("espeak").synthesize("Thanks for calling.", voice="en-us").pcm
    path = tmp_path_factory.mktemp("upload") / "thanks.wav"
    save_wav(path, resample(pcm, 16000, 22050), 22050)
    return path


@pytest.fixture(scope="session")
def mouth_box() -> Box:
    """Pixels that differ between a wide-open (D) and a closed (A) mouth, plus a margin."""
    from avatarcast.avatars.registry import load_avatar
    from avatarcast.render.frame import FrameState
    from avatarcast.speech.visemes import MouthPose, Shape

    avatar = load_avatar("default")
    wide = avatar.render(FrameState(mouth=MouthPose(Shape.D, 1.0))).y.astype(np.int16)
    shut = avatar.render(FrameState(mouth=MouthPose(Shape.A, 0.0))).y.astype(np.int16)
    ys, xs = np.nonzero(np.abs(wide - shut) > 20)
    assert ys.size > 500, "the avatar's mouth does not move?"
    return int(ys.min()) - 4, int(ys.max()) + 5, int(xs.min()) - 4, int(xs.max()) + 5


@pytest.fixture(scope="session")
def matte_points(mouth_box: Box) -> dict[str, tuple[float, float]]:
    """(x, y) as fractions of the frame: one surely background, one surely on the face."""
    from avatarcast.avatars.registry import load_avatar
    from avatarcast.render.frame import FrameState

    avatar = load_avatar("default")
    matte = avatar.alpha(FrameState())
    h, w = matte.shape
    # Background: the top-left-most pixel whose 25-pixel neighbourhood is all background
    # (far from the edge of the person, which moves a little with the idle motion).
    bg = None
    for y in range(30, h - 30, 10):
        for x in range(30, w - 30, 10):
            if matte[y - 25 : y + 26, x - 25 : x + 26].max() == 0:
                bg = (x, y)
                break
        if bg:
            break
    assert bg is not None
    # Face: above the mouth, between the eyes and the mouth (skin, fully opaque).
    y0, _y1, x0, x1 = mouth_box
    face = ((x0 + x1) // 2, y0 - 40)
    assert matte[face[1] - 10 : face[1] + 11, face[0] - 10 : face[0] + 11].min() == 255
    return {"background": (bg[0] / w, bg[1] / h), "face": (face[0] / w, face[1] / h)}


# ---- the browser -------------------------------------------------------------------------
@pytest.fixture(scope="session")
def browser(speech_wav: Path) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=chromium_args(speech_wav), timeout=30_000
        )
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def demo(browser: Any, server: Server) -> Iterator[PageUnderTest]:
    """A fresh browser context on the demo page, collecting console errors."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    page = context.new_page()
    errors = collect_errors(page)
    page.goto(server.base_url + "/")
    page.wait_for_selector("body[data-ready=true]")
    try:
        yield PageUnderTest(page, errors)
    finally:
        context.close()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS
