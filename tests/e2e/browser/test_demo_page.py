"""The demo page in real Chromium, against a real server, on loopback only.

Outside the loopback namespace only `test_suite_in_loopback_namespace` runs: it re-runs
this directory inside `unshare -n` and passes when every test there passed (conftest.py).
Screenshots of each state go to test-artifacts/browser/.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from browser_support import (
    CHROMIUM,
    HERE,
    MOUTH_SAMPLER,
    NETNS_ENV,
    Box,
    PageUnderTest,
    Server,
)

from avatarcast.api.auth import sign
from avatarcast.client import Client
from netns import run_in_loopback_namespace

SUITE_TIMEOUT_S = 1500  # a hang guard: on a loaded machine the builds (nice 19) are slow


# ---- the runner (outside the namespace) --------------------------------------------------
def test_suite_in_loopback_namespace() -> None:
    if os.geteuid() == 0 and not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    run_in_loopback_namespace(HERE, NETNS_ENV, SUITE_TIMEOUT_S, "browser tests")


# ---- helpers -----------------------------------------------------------------------------
def shot(demo: PageUnderTest, artifacts: Path, name: str) -> None:
    demo.page.screenshot(path=str(artifacts / f"{name}.png"), full_page=True)


def start_stream(demo: PageUnderTest, timeout_s: float = 30) -> str:
    """Press Start; wait until the page says "playing"; return the SessionId."""
    page = demo.page
    page.click("#start")
    page.wait_for_function(
        "document.getElementById('state').textContent === 'playing'", timeout=timeout_s * 1000
    )
    return str(page.text_content("#session-meta code"))


def wait_log(demo: PageUnderTest, text: str, timeout_s: float = 20) -> None:
    demo.page.wait_for_function(
        "t => [...document.querySelectorAll('#log li span')].some(e => e.textContent === t)",
        arg=text,
        timeout=timeout_s * 1000,
    )


def log_lines(demo: PageUnderTest) -> list[str]:
    lines: list[str] = demo.page.eval_on_selector_all(
        "#log li span", "els => els.map(e => e.textContent).reverse()"
    )
    return lines


def frames_keep_coming(demo: PageUnderTest, n: int = 25) -> list[float]:
    """[frames the video element presented, seconds its currentTime advanced] once it has
    presented `n` more frames (however long that takes on a loaded machine: not a rate)."""
    frames: list[float] = demo.page.evaluate(
        """n => new Promise(resolve => {
            const v = document.getElementById('video');
            let k = 0; const t0 = v.currentTime;
            const tick = () => {
                k += 1;
                if (k >= n) resolve([k, v.currentTime - t0]);
                else v.requestVideoFrameCallback(tick);
            };
            v.requestVideoFrameCallback(tick);
        })""",
        n,
    )
    return frames


def assert_no_console_errors(demo: PageUnderTest) -> None:
    assert not demo.errors, demo.errors


# Installed in the page: on every decoded frame (requestVideoFrameCallback), the mean
# absolute change of the mouth box's luma since the previous frame, with its time.


def mouth_motion(demo: PageUnderTest, t0: float, t1: float) -> list[float]:
    samples: list[list[float]] = demo.page.evaluate("window.__mouth.samples")
    return [d for t, d in samples if t0 <= t < t1]


def page_now(demo: PageUnderTest) -> float:
    now: float = demo.page.evaluate("performance.now()")
    return now


# ---- the tests ---------------------------------------------------------------------------
def test_page_loads_with_dev_key_avatars_and_no_console_errors(
    demo: PageUnderTest, server: Server, artifacts: Path
) -> None:
    page = demo.page
    # The dev key was handed over (loopback) and the credentials form stays hidden.
    assert page.text_content("#credential-note") == "development key (loopback)"
    assert page.is_hidden("#credentials-card")
    # The built-in avatar with a real thumbnail; WebRTC offered; Start usable.
    page.wait_for_function(
        "[...document.querySelectorAll('#avatars img')]"
        ".every(i => i.complete && i.naturalWidth > 0)"
    )
    assert page.eval_on_selector_all("#avatars input", "els => els.map(e => e.value)") == [
        "default"
    ]
    assert page.is_checked("#avatars input[value=default]")
    assert page.eval_on_selector_all("#protocol option", "els => els.map(e => e.value)")[0] == (
        "webrtc"
    )
    assert page.is_enabled("#start")
    assert page.is_disabled("#talk") and page.is_disabled("#speak")
    # The page signs exactly like the server checks: WebCrypto and the plain-JS fallback.
    params = {"appkey": server.appkey, "timestamp": "1700000000", "requestid": "abc"}
    signatures = page.evaluate(
        """async ([p, token]) => {
            const api = await import('/web/api.js');
            return [await api.sign(p, token), api.signSync(p, token)];
        }""",
        [params, server.accesstoken],
    )
    assert signatures == [sign(params, server.accesstoken)] * 2
    # Plain words for a session the server closed when idle.
    reason = page.evaluate(
        "async () => (await import('/web/words.js')).plainReason('closed: idle for 601 s')"
    )
    assert reason == "closed: idle for 10 minutes"
    shot(demo, artifacts, "01-loaded")
    assert_no_console_errors(demo)


def test_stream_plays_text_and_file_drive_the_avatar_and_tab_close_closes(
    demo: PageUnderTest, server: Server, artifacts: Path, short_speech_wav: Path
) -> None:
    page = demo.page
    sid = start_stream(demo)
    # The video plays: the stream's size, and frames keep coming (about 25 a second).
    assert page.evaluate("document.getElementById('video').videoWidth") == 540
    assert page.evaluate("document.getElementById('video').videoHeight") == 960
    frames = frames_keep_coming(demo)
    assert frames[0] >= 25 and frames[1] > 0.5, frames  # presented, and the clock advanced
    # The session list shows it, as this tab's.
    page.click("#refresh-sessions")
    page.wait_for_function(
        "sid => document.getElementById('sessions').textContent.includes(sid.slice(0, 12))",
        arg=sid,
    )
    assert "(this tab)" in str(page.text_content("#sessions"))
    shot(demo, artifacts, "02-playing")

    # Text, in the natural voice from the menu (sent as Data.Voice): statuses in order.
    voices = page.eval_on_selector_all("#voice option", "os => os.map(o => o.value)")
    assert voices[0] == "en-us" and "joe" in voices, voices
    page.select_option("#voice", "joe")
    page.fill("#text", "Hello, and welcome to the demo.")
    page.click("#speak")
    wait_log(demo, "text: TextOver (done)")
    lines = [line for line in log_lines(demo) if line.startswith("text: ")]
    assert lines == [
        "text: WaitingTextStart",
        "text: TextStart",
        "text: WaitingTextOver",
        "text: TextOver (done)",
    ], lines
    shot(demo, artifacts, "03-text-spoken")

    # An audio file: decoded and resampled in the page, sent paced; its statuses are named.
    page.set_input_files("#audio-file", str(short_speech_wav))
    wait_log(demo, "thanks.wav: AudioOver (done)")
    assert "thanks.wav: AudioStart" in log_lines(demo)
    assert_no_console_errors(demo)

    # With the words it says (the optional field, sent as Data.Text): plays, no error.
    page.fill("#audio-words", "Thanks for calling.")
    page.set_input_files("#audio-file", str(short_speech_wav))
    page.wait_for_function(
        "() => [...document.querySelectorAll('#log li span')]"
        ".filter(e => e.textContent === 'thanks.wav: AudioOver (done)').length === 2",
        timeout=20000,
    )
    lines = log_lines(demo)
    assert any(x.startswith("thanks.wav:") and x.endswith("with its words") for x in lines)
    assert not any("100001" in x for x in lines), lines
    assert_no_console_errors(demo)

    # Closing the tab closes the session (pagehide → keepalive closesession).
    page.close()
    with Client(server.base_url, server.appkey, server.accesstoken) as c:
        deadline = time.monotonic() + 5
        while c.stat_session(sid)["SessionStatus"] != 2:
            assert time.monotonic() < deadline, "closing the tab did not close the session"
            time.sleep(0.1)


def test_hold_to_talk_with_the_fake_microphone_moves_the_mouth(
    demo: PageUnderTest, server: Server, artifacts: Path, mouth_box: Box
) -> None:
    page = demo.page
    sid = start_stream(demo)
    page.evaluate(MOUTH_SAMPLER, list(mouth_box))
    time.sleep(2.0)
    t_idle0 = page_now(demo) - 2000
    page.hover("#talk")
    page.mouse.down()
    t_press = page_now(demo)
    wait_log(demo, "microphone: AudioStart", timeout_s=10)
    t_start = page_now(demo)
    time.sleep(3.0)
    shot(demo, artifacts, "04-talking")
    t_release = page_now(demo)
    page.mouse.up()
    wait_log(demo, "microphone: AudioOver (done)", timeout_s=10)

    idle = mouth_motion(demo, t_idle0, t_press)
    talking = mouth_motion(demo, t_start + 200, t_release)
    print(
        f"mouth motion idle p95 {np.percentile(idle, 95):.2f}, talking mean "
        f"{np.mean(talking):.2f} max {max(talking):.1f}"
    )
    assert len(idle) >= 30 and len(talking) >= 50, (len(idle), len(talking))
    assert float(np.percentile(idle, 95)) < 2.0, idle
    assert float(np.mean(talking)) > 3.0 and max(talking) > 10.0, talking
    lines = [line for line in log_lines(demo) if line.startswith("microphone: ")]
    assert lines == [
        "microphone: WaitingAudioStart",
        "microphone: AudioStart",
        "microphone: WaitingAudioOver",
        "microphone: AudioOver (done)",
    ], lines
    assert_no_console_errors(demo)

    # Closed by someone else (here: the API): the page says so in plain words.
    with Client(server.base_url, server.appkey, server.accesstoken) as c:
        c.close_session(sid)
    page.wait_for_function(
        "document.getElementById('state').textContent.startsWith('closed')", timeout=10_000
    )
    assert page.is_disabled("#talk")


def pixel(page: Any, fx: float, fy: float) -> list[int]:
    """RGBA of the composited canvas at a fraction of its size. The canvas may hold a WebGL
    or a 2D context (web/alpha.js picks), so read it through a 2D copy."""
    rgba: list[int] = page.evaluate(
        """([fx, fy]) => {
            const c = document.getElementById('alpha-canvas');
            const copy = document.createElement('canvas');
            copy.width = c.width; copy.height = c.height;
            const ctx = copy.getContext('2d');
            ctx.drawImage(c, 0, 0);
            const x = Math.floor(fx * c.width), y = Math.floor(fy * c.height);
            return [...ctx.getImageData(x, y, 1, 1).data];
        }""",
        [fx, fy],
    )
    return rgba


def close_to(rgb: list[int], want: tuple[int, int, int], tolerance: int) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(rgb[:3], want, strict=True))


def test_transparent_background_shows_the_backdrop_through_the_matte(
    demo: PageUnderTest, artifacts: Path, matte_points: dict[str, tuple[float, float]]
) -> None:
    page = demo.page
    page.check("#transparent", force=True)
    assert page.is_visible("#backdrops")
    # A pure colour backdrop, picked with the colour input.
    page.eval_on_selector(
        "#backdrop-color",
        "e => { e.value = '#00ff00'; e.dispatchEvent(new Event('input', {bubbles: true})); }",
    )
    start_stream(demo)
    page.wait_for_function("document.getElementById('alpha-canvas').width > 0")
    time.sleep(1.0)  # a few composited frames
    bx, by = matte_points["background"]
    fx, fy = matte_points["face"]
    background, face = pixel(page, bx, by), pixel(page, fx, fy)
    assert close_to(background, (0, 255, 0), 10), background
    assert not close_to(face, (0, 255, 0), 60), face
    assert page.is_visible("#alpha-canvas")
    # The project's helper did the compositing (not the page's fallback).
    assert page.get_attribute("body", "data-compositor") == "alpha.js"
    shot(demo, artifacts, "05-transparent-green")

    # Another backdrop, live: the background follows, the face stays.
    page.click("#swatches button[data-colour='#ffffff']")
    time.sleep(0.5)
    background, face2 = pixel(page, bx, by), pixel(page, fx, fy)
    assert close_to(background, (255, 255, 255), 10), background
    assert close_to(face2, tuple(face[:3]), 25), (face, face2)  # type: ignore[arg-type]
    shot(demo, artifacts, "06-transparent-white")
    assert_no_console_errors(demo)


def test_config_hands_out_no_key_to_a_foreign_host_name(demo: PageUnderTest) -> None:
    """DNS rebinding guard: a loopback client naming another host gets no credentials."""
    answer = demo.page.request.get(
        demo.page.url.rstrip("/") + "/v2/demo/config", headers={"Host": "evil.example:8080"}
    )
    assert answer.ok
    assert answer.json()["credentials"] is None
