"""The demo page watching a `janus` session through a real Janus, in headless Chromium.

Runs inside the loopback-only namespace with the other browser tests (conftest.py). Its own
server (with `janus_url`) and its own Janus (tests/e2e/janus_server.py, no API secret: the page
never gets one) on 127.0.0.1. The page creates a session with Protocol janus, subscribes
through Janus's HTTP API (web/janus.js, no WHEP request at all), plays 540x960 frames, and the
mouth moves while a text is spoken.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from browser_support import MOUTH_SAMPLER, Box, PageUnderTest, Server, collect_errors

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from janus_server import JanusServer, free_port, janus_available

pytestmark = pytest.mark.skipif(bool(janus_available()), reason=janus_available() or "-")


@pytest.fixture(scope="module")
def janus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JanusServer]:
    server = JanusServer(tmp_path_factory.mktemp("janus-page"), free_port(), api_secret="")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def janus_site(janus: JanusServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    from avatarcast.api.server import run_server_in_thread
    from avatarcast.sessions.store_sqlite import SqliteStore
    from avatarcast.settings import Settings
    from avatarcast.stream.webrtc import use_host_addresses

    data_dir = tmp_path_factory.mktemp("janus-page-data")
    settings = Settings(
        data_dir=data_dir,
        log_level="warning",
        ice_host_addresses="127.0.0.1",
        idle_timeout_s=120,
        janus_url=janus.url,
    ).validate()
    store = SqliteStore(settings.db_path)
    appkey, token = store.create_key("dev", 4)
    store.close()
    (data_dir / "dev-key.json").write_text(json.dumps({"appkey": appkey, "accesstoken": token}))
    base_url, stop = run_server_in_thread(settings)
    try:
        yield Server(base_url, appkey, token)
    finally:
        stop()
        use_host_addresses([])


@pytest.fixture
def janus_demo(browser: Any, janus_site: Server) -> Iterator[tuple[PageUnderTest, list[str]]]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    page = context.new_page()
    errors = collect_errors(page)
    requests: list[str] = []
    page.on("request", lambda r: requests.append(f"{r.method} {r.url}"))
    page.goto(janus_site.base_url + "/")
    page.wait_for_selector("body[data-ready=true]")
    try:
        yield PageUnderTest(page, errors), requests
    finally:
        context.close()


def test_page_watches_a_janus_session_through_janus(
    janus_demo: tuple[PageUnderTest, list[str]], janus: JanusServer, mouth_box: Box
) -> None:
    demo, requests = janus_demo
    page = demo.page
    options = page.eval_on_selector_all("#protocol option", "els => els.map(e => e.value)")
    assert "janus" in options, options
    page.select_option("#protocol", "janus")
    page.click("#start")
    page.wait_for_function(
        "document.getElementById('state').textContent === 'playing'", timeout=40_000
    )
    assert page.evaluate("document.getElementById('video').videoWidth") == 540
    assert page.evaluate("document.getElementById('video').videoHeight") == 960
    # Through Janus: its API was spoken to, and no WHEP offer was made.
    assert any(r.startswith(f"POST {janus.url}") for r in requests), requests
    assert not any("/v2/whep/" in r for r in requests), requests
    play_url = str(page.text_content("#play-url-text"))
    assert play_url.startswith(janus.url + "?room="), play_url

    # Frames keep coming at the stream's rate (by the media clock: 25 frames ≈ 1 s).
    got: list[float] = page.evaluate(
        """n => new Promise(resolve => {
            const v = document.getElementById('video');
            let k = 0; const t0 = v.currentTime;
            const tick = () => { k += 1;
                if (k >= n) resolve([k, v.currentTime - t0]);
                else v.requestVideoFrameCallback(tick); };
            v.requestVideoFrameCallback(tick);
        })""",
        50,
    )
    assert got[0] >= 50 and 1.6 < got[1] < 2.6, got

    # A text: the mouth moves in the picture Janus forwarded.
    page.evaluate(MOUTH_SAMPLER, list(mouth_box))
    page.wait_for_timeout(1500)
    t_text: float = page.evaluate("performance.now()")
    page.fill("#text", "Hello, and welcome to the demo through Janus.")
    page.click("#speak")
    page.wait_for_function(
        "() => [...document.querySelectorAll('#log li span')]"
        ".some(e => e.textContent === 'text: TextOver (done)')",
        timeout=30_000,
    )
    samples: list[list[float]] = page.evaluate("window.__mouth.samples")
    still = [d for t, d in samples if t < t_text]
    moving = [d for t, d in samples if t >= t_text + 300]
    assert len(still) >= 20 and len(moving) >= 20, (len(still), len(moving))
    # The same bound as the WHEP page's test: the idle head sways, and a keyframe Janus asks
    # for takes the stream off the shared idle loop for an IDR of its own (a re-encode).
    assert float(np.percentile(still, 95)) < 2.0, still
    assert float(np.mean(moving)) > 2.0 and max(moving) > 8.0, moving
    assert not demo.errors, demo.errors
