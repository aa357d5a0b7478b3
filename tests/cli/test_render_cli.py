"""End to end: `avatarcast render` as a user runs it; decode the MP4 and check its content."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest

from avatarcast.avatars.registry import load_avatar
from avatarcast.render.frame import FrameState
from avatarcast.speech.visemes import MouthPose, Shape


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "avatarcast", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
    )


def decode(path: Path) -> tuple[list[np.ndarray], np.ndarray, int]:
    """Luma planes of every frame, the mono audio (float), the audio rate."""
    with av.open(str(path)) as c:
        vs = c.streams.video[0]
        assert (vs.codec_context.width, vs.codec_context.height) == (540, 960)
        assert vs.average_rate == 25
        lumas = [f.to_ndarray(format="yuv420p")[:960].copy() for f in c.decode(video=0)]
    with av.open(str(path)) as c:
        rate = c.streams.audio[0].sample_rate
        audio = np.concatenate([f.to_ndarray().reshape(-1) for f in c.decode(audio=0)])
    return lumas, audio.astype(np.float64), rate


def mouth_box() -> tuple[slice, slice]:
    """Where the mouth is drawn: the pixels that differ between wide open and closed."""
    avatar = load_avatar("default")
    closed = avatar.render(FrameState(mouth=MouthPose(Shape.A, 0.0))).y.astype(int)
    wide = avatar.render(FrameState(mouth=MouthPose(Shape.D, 1.0))).y.astype(int)
    ys, xs = np.nonzero(np.abs(wide - closed) > 20)
    pad = 12  # room for head sway
    return slice(ys.min() - pad, ys.max() + pad), slice(xs.min() - pad, xs.max() + pad)


def mouth_darkness(luma: np.ndarray, box: tuple[slice, slice]) -> int:
    """Dark pixels in the mouth box: the open mouth's inside; robust to small head motion."""
    return int((luma[box] < 60).sum())


@pytest.mark.parametrize("method", ["model", "recognizer"])
def test_render_audio_with_pause(
    tmp_path: Path, speech_with_pause: tuple[Path, np.ndarray, tuple[int, int]], method: str
) -> None:
    wav, pcm, (p0, p1) = speech_with_pause
    out = tmp_path / "clip.mp4"
    track = tmp_path / "clip.json"
    r = run_cli(
        "render",
        *("--audio", str(wav), "--out", str(out), "--mouth-track", str(track)),
        *("--lipsync-method", method),
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    lumas, audio, rate = decode(out)

    # Durations: as long as the speech, plus at most one frame; video and audio agree.
    n_expected = -(-pcm.size // 640)
    assert len(lumas) == n_expected == summary["frames"]
    assert abs(audio.size / rate - pcm.size / 16000) <= 1 / 25 + 0.07  # AAC frame granularity
    assert len(json.loads(track.read_text())["frames"]) == n_expected

    # The audio is the input: envelopes correlate and are not shifted.
    ref = pcm.astype(np.float64)
    got = audio[: ref.size] * 32768 if np.abs(audio).max() <= 1.0 else audio[: ref.size]
    n = min(ref.size, got.size)
    env = lambda x: np.abs(x[: n - n % 640]).reshape(-1, 640).mean(axis=1)  # noqa: E731
    e_ref, e_got = env(ref), env(got[:n])
    assert np.corrcoef(e_ref, e_got)[0, 1] > 0.95
    lags = range(-3, 4)
    best = max(lags, key=lambda k: np.dot(np.roll(e_got, k), e_ref))
    assert best == 0

    # The mouth moves during speech and is still during the pause.
    box = mouth_box()
    dark = np.array([mouth_darkness(y, box) for y in lumas])
    f0, f1 = p0 // 640 + 8, p1 // 640 - 2  # inside the pause, after the mouth has closed
    pause = dark[f0:f1]
    speech = dark[: p0 // 640]
    assert pause.max() - pause.min() <= 15, pause
    assert speech.max() - speech.min() > 200, speech
    assert np.abs(np.diff(speech)).sum() > 10 * np.abs(np.diff(pause)).sum() + 100


def test_render_text_mandarin_and_english(tmp_path: Path) -> None:
    for voice, text in (
        ("en-us", "Bob picked a map, then went home."),
        ("cmn", "你好，欢迎光临。"),
    ):
        out = tmp_path / f"{voice}.mp4"
        track = tmp_path / f"{voice}.json"
        r = run_cli(
            "render",
            "--text",
            text,
            "--voice",
            voice,
            "--out",
            str(out),
            "--mouth-track",
            str(track),
            "--alpha",
            cwd=tmp_path,
        )
        assert r.returncode == 0, r.stderr
        frames = json.loads(track.read_text())["frames"]
        shapes = {f["shape"] for f in frames}
        assert len(shapes) >= 4, shapes
        if voice == "en-us":
            assert "A" in shapes  # the closures of B, P, M
        lumas, _audio, _rate = decode(out)
        assert len(lumas) == len(frames)
        box = mouth_box()
        dark = [mouth_darkness(y, box) for y in lumas]
        assert max(dark) - min(dark) > 200
        # The matte file: same frame count; person opaque, corners transparent.
        with av.open(str(tmp_path / f"{voice}.alpha.mp4")) as c:
            mattes = [f.to_ndarray(format="gray") for f in c.decode(video=0)]
        assert len(mattes) == len(frames)
        m = mattes[len(mattes) // 2]
        assert m[5, 5] < 10 and m[480, 270] > 245


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--audio", "missing.wav"], "not found"),
        (["--audio", "empty.wav"], "no samples"),
        (["--audio", "garbage.wav"], "cannot"),
        (["--text", "   "], "empty"),
        (["--text", "hello", "--avatar", "nobody"], "nobody"),
        (["--text", "hello", "--voice", "klingon-xx"], "klingon-xx"),
    ],
)
def test_bad_input_one_line_exit_2_no_output(tmp_path: Path, args: list[str], needle: str) -> None:
    from avatarcast.speech.audio import save_wav

    save_wav(tmp_path / "empty.wav", np.zeros(0, np.int16))
    (tmp_path / "garbage.wav").write_bytes(b"RIFF....WAVEfmt nonsense" * 10)
    r = run_cli("render", *args, "--out", "o.mp4", cwd=tmp_path)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], r.stderr
    assert "Traceback" not in r.stderr
    leftovers = [p.name for p in tmp_path.iterdir() if p.suffix in (".mp4", ".json")]
    assert leftovers == []
