"""End to end: build a photo avatar with the CLI, render speech with it, decode the MP4."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import av
import cv2
import numpy as np
from skimage import data


def save(path: Path, gain: float = 1.0) -> Path:
    """scikit-image's public-domain astronaut portrait, darkened by `gain`."""
    rgb = (data.astronaut().astype(np.float32) * gain).astype(np.uint8)
    assert cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return path


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "avatarcast", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_build_then_render_with_the_custom_avatar(tmp_path: Path) -> None:
    photo = save(tmp_path / "astronaut.jpg")
    data = ["--data-dir", str(tmp_path / "data")]
    built = run_cli(
        "avatar", "build", "--photo", str(photo), "--name", "eileen", *data, cwd=tmp_path
    )
    assert built.returncode == 0, built.stderr
    summary = json.loads(built.stdout.strip().splitlines()[-1])
    assert summary["name"] == "eileen" and (summary["width"], summary["height"]) == (540, 960)
    assert "sharpness" in summary["checks_passed"]

    listed = run_cli("avatar", "list", *data, cwd=tmp_path)
    names = [json.loads(line)["name"] for line in listed.stdout.splitlines()]
    assert names == ["default", "eileen"]

    again = run_cli(
        "avatar", "build", "--photo", str(photo), "--name", "eileen", *data, cwd=tmp_path
    )
    assert again.returncode == 2 and again.stderr.count("\n") == 1 and "exists" in again.stderr

    out = tmp_path / "x.mp4"
    r = run_cli(
        "render",
        "--avatar",
        "eileen",
        "--text",
        "Hello there",
        "--out",
        str(out),
        *data,
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr
    manifest = json.loads((tmp_path / "data/avatars/eileen/manifest.json").read_text())
    lm = np.array(manifest["landmarks"]) - manifest["margin"]
    (x0, y0), (x1, y1) = lm[[61, 291, 0, 17]].min(0), lm[[61, 291, 0, 17]].max(0)
    mouth = (slice(int(y0) - 8, int(y1) + 30), slice(int(x0) - 8, int(x1) + 8))
    with av.open(str(out)) as c:
        vs = c.streams.video[0]
        assert (vs.codec_context.width, vs.codec_context.height) == (540, 960)
        lumas = [f.to_ndarray(format="yuv420p")[:960].astype(np.int32) for f in c.decode(video=0)]
    assert len(lumas) > 15
    dark = [int((y[mouth] < 50).sum()) for y in lumas]  # the open mouth's cavity
    assert max(dark) > min(dark) + 200, dark
    # the face stays where it was built (motion is a few pixels)
    assert abs(float(lumas[0][mouth].mean()) - float(lumas[-1][mouth].mean())) < 25

    preview = tmp_path / "preview.mp4"
    shown = run_cli(
        "avatar", "show", "eileen", "--out", str(preview), "--text", "Hi!", *data, cwd=tmp_path
    )
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["frames"] > 5 and preview.stat().st_size > 1000

    gone = run_cli("avatar", "delete", "eileen", *data, cwd=tmp_path)
    assert gone.returncode == 0 and not (tmp_path / "data/avatars/eileen").exists()
    bad = run_cli(
        "render", "--avatar", "eileen", "--text", "Hi", "--out", str(out), *data, cwd=tmp_path
    )
    assert bad.returncode == 2 and "unknown avatar" in bad.stderr


def test_rejected_photo_is_one_line_and_leaves_nothing(tmp_path: Path) -> None:
    photo = save(tmp_path / "dark.png", 0.15)
    r = run_cli(
        "avatar",
        "build",
        "--photo",
        str(photo),
        "--name",
        "dim",
        "--data-dir",
        str(tmp_path / "data"),
        cwd=tmp_path,
    )
    assert r.returncode == 2
    assert r.stderr.strip().startswith("avatarcast: error: the face is too dark")
    assert r.stderr.count("\n") == 1
    assert not any((tmp_path / "data" / "avatars").glob("*"))
