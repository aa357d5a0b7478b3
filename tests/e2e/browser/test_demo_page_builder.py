"""The demo page's "Build your own avatar" panel in real Chromium, against a real server.

Run inside the loopback namespace by `test_demo_page.py::test_suite_in_loopback_namespace`
(see conftest.py). The photo is scikit-image's public-domain astronaut, built by the server's
real worker process (a few seconds); the avatar is deleted at the end, so the other tests of
the shared server see only the built-in avatar.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from browser_support import PageUnderTest, Server
from test_demo_page import (
    assert_no_console_errors,
    frames_keep_coming,
    log_lines,
    shot,
    start_stream,
    wait_log,
)

from avatarcast.client import Client

BUILD_TIMEOUT_MS = 240_000  # a hang guard: builds run at nice 19, slow on a loaded machine

# Records every stage the panel shows (data-stage of #build-progress), in order.
STAGE_RECORDER = """() => {
  const box = document.getElementById('build-progress');
  window.__stages = [];
  new MutationObserver(() => {
    const s = box.dataset.stage;
    if (s && window.__stages[window.__stages.length - 1] !== s) window.__stages.push(s);
  }).observe(box, {attributes: true, attributeFilter: ['data-stage']});
}"""


def _write_image(path: Path, rgb: np.ndarray) -> Path:
    import cv2

    assert cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return path


@pytest.fixture(scope="module")
def astronaut_jpg(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from skimage import data

    return _write_image(tmp_path_factory.mktemp("photos") / "astronaut.jpg", data.astronaut())


@pytest.fixture(scope="module")
def grey_png(tmp_path_factory: pytest.TempPathFactory) -> Path:
    blank = np.full((640, 480, 3), 128, np.uint8)
    return _write_image(tmp_path_factory.mktemp("photos") / "grey.png", blank)


@pytest.fixture(scope="module")
def upright_mp4(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """6 s of grey, upright, 25 fps: the size check comes before any face is looked for."""
    import av

    path = tmp_path_factory.mktemp("videos") / "upright.mp4"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 180, 320, "yuv420p"
        frame = np.full((320, 180, 3), 128, np.uint8)
        for _ in range(150):
            out.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        out.mux(stream.encode(None))
    return path


def _build(demo: PageUnderTest, photo: Path, name: str) -> None:
    page = demo.page
    page.set_input_files("#build-file", str(photo))
    page.fill("#build-name", name)
    page.evaluate(STAGE_RECORDER)
    page.click("#build")


def _click_delete(demo: PageUnderTest, key: str) -> None:
    """Delete asks twice ("Delete" → "Sure?")."""
    button = demo.page.locator(f"#avatars label[title='{key}'] button.delete")
    button.click()
    assert button.text_content() == "Sure?"
    button.click()


def test_build_a_photo_avatar_stream_it_and_delete_it(
    demo: PageUnderTest, server: Server, artifacts: Path, astronaut_jpg: Path
) -> None:
    page = demo.page
    key = f"astro-{hashlib.sha256(server.appkey.encode()).hexdigest()[:8]}"
    assert page.is_enabled("#build")
    # A photo: the background choice shows, the video size does not.
    page.set_input_files("#build-file", str(astronaut_jpg))
    assert page.input_value("#build-name") == "astronaut"  # suggested from the file name
    assert page.is_visible("#build-background") and page.is_hidden("#build-size")
    assert page.is_hidden("#build-transcript")
    page.select_option("#build-background", "keep")

    _build(demo, astronaut_jpg, "astro")
    # While it builds, the button and the form are disabled.
    assert page.is_disabled("#build") and page.is_disabled("#build-name")
    page.wait_for_selector("#build-progress[data-result=done]", timeout=BUILD_TIMEOUT_MS)
    stages: list[str] = page.evaluate("window.__stages")
    order = ["UPLOAD", "SUBMIT", "PROCESS", "TRAIN", "CONFIRM", "END"]
    assert stages[0] == "UPLOAD" and stages[-1] == "END", stages
    assert stages == sorted(stages, key=order.index), stages
    assert page.evaluate("document.getElementById('build-bar').value") == 100
    assert page.text_content("#build-status") == f"ready: {key}"
    assert page.text_content("#build-error") == ""
    assert (
        page.eval_on_selector_all("#build-stages li", "els => els.map(e => e.dataset.state)")
        == ["done"] * 5
    )
    # The form is usable again once the page has taken the new avatar (`onBuilt`, after
    # `data-result=done`): wait for it rather than race it (failed twice under load).
    page.wait_for_selector("#build:enabled", timeout=10_000)
    wait_log(demo, f"build astro: ready as {key}")

    # In the picker, selected, with its thumbnail (signed by the page's key).
    page.wait_for_selector(f"#avatars input[value='{key}']:checked")
    page.wait_for_function(
        "k => { const i = document.querySelector(`#avatars label[title='${k}'] img`);"
        " return i && i.complete && i.naturalWidth === 180; }",
        arg=key,
    )
    assert page.text_content(f"#avatars label[title='{key}'] span") == "astro"
    values = page.eval_on_selector_all("#avatars input", "els => els.map(e => e.value)")
    assert values == ["default", key]
    shot(demo, artifacts, "07-avatar-built")

    # The same name again: the server's refusal, with its code, near the panel and in the log.
    page.click("#build")
    page.wait_for_selector("#build-progress[data-result=failed]")
    error = str(page.text_content("#build-error"))
    assert error.startswith("100001: VirtualmanName 'astro' is already used"), error
    assert f"build: {error}" in log_lines(demo)

    # A stream with it: the session uses the new avatar, and the video plays frames.
    sid = start_stream(demo)
    assert f"session {sid[:8]} created ({key}, webrtc)" in log_lines(demo)
    with Client(server.base_url, server.appkey, server.accesstoken) as c:
        assert [s["SessionId"] for s in c.list_sessions(asset_key=key)] == [sid]
    assert page.evaluate("document.getElementById('video').videoWidth") == 540
    assert page.evaluate("document.getElementById('video').videoHeight") == 960
    frames = frames_keep_coming(demo)
    assert frames[0] >= 25 and frames[1] > 0.5, frames  # presented, and the clock advanced
    shot(demo, artifacts, "08-built-avatar-playing")

    # Delete is refused while the stream uses it: the server's words are shown.
    _click_delete(demo, key)
    page.wait_for_function("document.getElementById('setup-error').textContent.length > 0")
    error = str(page.text_content("#setup-error"))
    assert error.startswith("100001: ") and "close them first" in error, error
    # Stopped, it can be deleted: gone from the picker, the built-in one selected again.
    page.click("#stop")
    page.wait_for_function("document.getElementById('state').textContent.startsWith('closed')")
    _click_delete(demo, key)
    wait_log(demo, f"avatar {key} deleted")
    page.wait_for_function("k => !document.querySelector(`#avatars input[value='${k}']`)", arg=key)
    assert page.is_checked("#avatars input[value=default]")
    assert_no_console_errors(demo)


def test_a_photo_without_a_face_is_refused_in_plain_words(
    demo: PageUnderTest, artifacts: Path, grey_png: Path
) -> None:
    page = demo.page
    # A name the server would refuse is caught before anything is uploaded.
    page.set_input_files("#build-file", str(grey_png))
    page.fill("#build-name", "Grey Wall")
    page.click("#build")
    assert "lowercase letters" in str(page.text_content("#build-error"))
    assert page.is_hidden("#build-progress")

    _build(demo, grey_png, "grey")
    page.wait_for_selector("#build-progress[data-result=failed]", timeout=BUILD_TIMEOUT_MS)
    error = str(page.text_content("#build-error"))
    assert error == "grey was not built: no face was found (no_face)", error
    assert f"build: {error}" in log_lines(demo)
    # The stage where it stopped is marked; the picker is unchanged; the button usable again.
    states = page.eval_on_selector_all("#build-stages li", "els => els.map(e => e.dataset.state)")
    assert "failed" in states, states
    assert (
        page.text_content("#build-status") == "failed while checking the photo and finding the face"
    )
    values = page.eval_on_selector_all("#avatars input", "els => els.map(e => e.value)")
    assert values == ["default"]
    assert page.is_enabled("#build")
    shot(demo, artifacts, "09-build-refused")
    assert_no_console_errors(demo)


def test_a_video_with_a_size_of_the_other_orientation_is_refused(
    demo: PageUnderTest, upright_mp4: Path
) -> None:
    page = demo.page
    # A video: the size and background choices show (the transcript field too).
    page.set_input_files("#build-file", str(upright_mp4))
    assert page.is_visible("#build-size") and page.is_visible("#build-background")
    assert page.is_visible("#build-transcript")
    page.select_option("#build-size", "1280x720")
    _build(demo, upright_mp4, "wide")
    page.wait_for_selector("#build-progress[data-result=failed]", timeout=BUILD_TIMEOUT_MS)
    error = str(page.text_content("#build-error"))
    assert error.startswith("wide was not built: the video is 180x320"), error
    assert "upright (9:16) avatar, not 1280x720" in error, error
    assert_no_console_errors(demo)
