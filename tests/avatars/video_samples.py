"""Test videos made from scikit-image's astronaut portrait, encoded with PyAV (libx264).

`talking_video`: the framed portrait (540x960, the photo path's framing, lips closed) with
slight head motion (sub-pixel translations of a few pixels) over a still background,
silent/closed-mouth for the first second and from 5 s on, "speaking" (photo-warped mouth
shapes) from 3 s to 5 s. `speaking_video`: the same person saying an espeak sentence, with
sound (see there).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import av
import cv2
import numpy as np
from numpy.typing import NDArray
from photo_samples import astronaut

from avatarcast.avatars.photo import MARGIN, check_photo, frame_portrait
from avatarcast.avatars.photo_warp import MouthRig
from avatarcast.speech.visemes import Shape

W, H = 540, 960


def portrait() -> tuple[NDArray[np.uint8], list[NDArray[np.uint8]]]:
    """The framed canvas (560x980) with lips closed, and three speaking variants."""
    rgb = astronaut()
    src, lm, _ = frame_portrait(rgb, check_photo(rgb).landmarks)
    rig = MouthRig(lm)
    mx, my, mw, mh = rig.box
    out = []
    for shape, k in ((Shape.X, 0.0), (Shape.C, 0.8), (Shape.D, 1.0), (Shape.E, 0.7)):
        canvas = src.copy()
        canvas[my : my + mh, mx : mx + mw] = rig.warp(src, shape, k)
        out.append(canvas)
    return out[0], out[1:]


_STAGE: dict[str, NDArray[np.float32] | NDArray[np.uint8]] = {}


def on_still_background(
    canvas: NDArray[np.uint8],
    mat: NDArray[np.float64],
    backdrop: tuple[int, int, int] | None = None,
) -> NDArray[np.uint8]:
    """The framed portrait moved by `mat` (canvas → 540x960 frame) over a still background,
    like a person recorded from a tripod: the person (selfie-segmentation matte) moves, the
    background (the photo with the person painted out, or a `backdrop` colour: a green
    screen) does not."""
    if not _STAGE:
        from avatarcast.avatars.photo_background import fill_background, person_matte

        rest, _ = portrait()
        matte = person_matte(rest, "keep")
        _STAGE["matte"] = matte.astype(np.float32) / 255.0
        still = cv2.warpAffine(
            fill_background(rest, matte, MARGIN),
            np.array([[1, 0, -MARGIN], [0, 1, -MARGIN]], np.float64),
            (W, H),
        )
        _STAGE["plate"] = np.asarray(still, np.uint8)
    fg = cv2.warpAffine(canvas, mat, (W, H), flags=cv2.INTER_LINEAR).astype(np.float32)
    a = cv2.warpAffine(_STAGE["matte"], mat, (W, H), flags=cv2.INTER_LINEAR)[..., None]
    plate = _STAGE["plate"] if backdrop is None else np.full((H, W, 3), backdrop, np.uint8)
    out = fg * a + plate.astype(np.float32) * (1 - a)
    return np.asarray(np.clip(out + 0.5, 0, 255), np.uint8)


def write_video(path: Path, frames: Iterable[NDArray[np.uint8]], fps: int) -> Path:
    with av.open(str(path), "w") as out:
        stream = None
        for rgb in frames:
            if stream is None:
                stream = out.add_stream("libx264", rate=fps)
                stream.width, stream.height = rgb.shape[1], rgb.shape[0]
                stream.pix_fmt = "yuv420p"
                stream.options = {"crf": "18", "preset": "veryfast"}
            out.mux(stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
        assert stream is not None
        out.mux(stream.encode())
    return path


def talking_frames(seconds: float = 8.0, fps: int = 25) -> list[NDArray[np.uint8]]:
    return list(iter_talking_frames(seconds, fps))


def landscape_1080p(seconds: float = 60.0, fps: int = 25) -> Iterator[NDArray[np.uint8]]:
    """The talking portrait scaled 1.6x (face ~330 px, 17 % of the width) and cut to 1080
    rows, on a 1920x1080 grey frame (benchmark)."""
    for frame in iter_talking_frames(seconds, fps):
        big = cv2.resize(frame, (864, 1536), interpolation=cv2.INTER_CUBIC)
        out = np.full((1080, 1920, 3), 110, np.uint8)
        out[:, 528 : 528 + 864] = big[200:1280]
        yield out


def iter_talking_frames(seconds: float = 8.0, fps: int = 25) -> Iterator[NDArray[np.uint8]]:
    """Closed mouth except 3-5 s into every 8 s (speaking); head motion throughout."""
    rest, talk = portrait()
    for i in range(round(seconds * fps)):
        t = i / fps
        canvas = talk[(i // 3) % len(talk)] if 3.0 <= t % 8.0 < 5.0 else rest
        dx = 3.0 * np.sin(2 * np.pi * t / 2.0)  # slight head motion, 2 s period
        dy = 1.5 * np.sin(2 * np.pi * t / 3.0)
        mat = np.array([[1, 0, dx - MARGIN], [0, 1, dy - MARGIN]], np.float64)
        yield on_still_background(canvas, mat)


def talking_video(path: Path, seconds: float = 8.0, fps: int = 25) -> Path:
    return write_video(path, talking_frames(seconds, fps), fps)


def corrupt_video(path: Path, good: Path) -> Path:
    """The first 40 % of a good MP4 (libx264 MP4s keep their index at the end)."""
    raw = good.read_bytes()
    path.write_bytes(raw[: int(len(raw) * 0.4)])
    return path


SENTENCE = "Hello world. My five wolves ate a big apple, while you watched them."
SPEECH_START_S = 2.0


def cavity_marker(
    canvas: NDArray[np.uint8], rest: NDArray[np.uint8], rig: MouthRig
) -> NDArray[np.uint8]:
    """The person's 'own' mouth: the dark opening the warp draws, tinted blue (B - R ~ +75),
    so a test can tell a mouth harvested from the video from one warped at run time."""
    out = canvas.astype(np.int16)
    luma = out.mean(axis=2)
    changed = np.abs(out - rest.astype(np.int16)).sum(axis=2) > 30
    yy, xx = np.mgrid[0 : out.shape[0], 0 : out.shape[1]]
    cx, cy = rig.frame.o
    near = ((xx - cx) / (1.2 * rig.a)) ** 2 + ((yy - cy - 0.3 * rig.a) / (0.9 * rig.a)) ** 2 < 1
    dark = changed & (luma < 70) & near
    out[dark, 2] += 60
    out[dark, 0] -= 15
    return np.clip(out, 0, 255).astype(np.uint8)


def speaking_script(
    seconds: float = 11.0, fps: int = 25, every_s: float | None = None
) -> tuple[NDArray[np.int16], list[tuple[Shape, float]]]:
    """16 kHz PCM (silence, then `SENTENCE` spoken by espeak-ng from `SPEECH_START_S`, again
    every `every_s` if given) and the mouth of every video frame: espeak's exact phoneme
    times through the text lip-sync."""
    from avatarcast.speech.text_lipsync import track_from_phonemes
    from avatarcast.speech.tts import get_backend

    utt = get_backend("espeak").synthesize(SENTENCE, voice="en-us")
    n = round(seconds * fps)
    pcm = np.zeros(round(seconds * 16000), np.int16)
    track = track_from_phonemes(utt.phonemes, -(-utt.pcm.size * fps // 16000), fps)
    script = [(Shape.X, 0.0)] * n
    start = SPEECH_START_S
    while start < seconds:
        s0 = round(start * 16000)
        pcm[s0 : s0 + utt.pcm.size] = utt.pcm[: pcm.size - s0]
        f0 = round(start * fps)
        for k, pose in enumerate(track):
            if f0 + k < n:
                script[f0 + k] = (pose.shape, pose.open)
        if every_s is None:
            break
        start += every_s
    return pcm, script


def iter_speaking_frames(
    script: list[tuple[Shape, float]],
    fps: int = 25,
    backdrop: tuple[int, int, int] | None = None,
) -> Iterator[NDArray[np.uint8]]:
    """The framed portrait speaking `script` (mouth warped per frame, opening tinted by
    `cavity_marker`), with head motion: translations of a few pixels and a slow tilt of
    up to 1.5 degrees."""
    rgb = astronaut()
    src, lm, _ = frame_portrait(rgb, check_photo(rgb).landmarks)
    rig = MouthRig(lm)
    mx, my, mw, mh = rig.box
    rest = src.copy()
    rest[my : my + mh, mx : mx + mw] = rig.warp(src, Shape.X, 0.0)
    centre = (float(lm[1, 0]), float(lm[1, 1]))
    cache: dict[tuple[Shape, int], NDArray[np.uint8]] = {}
    for i, (shape, openness) in enumerate(script):
        t = i / fps
        key = (shape, round(openness * 12))
        if key[1] == 0:
            canvas = rest
        else:
            if key not in cache:
                c = src.copy()
                c[my : my + mh, mx : mx + mw] = rig.warp(src, shape, key[1] / 12)
                cache[key] = cavity_marker(c, rest, rig)
            canvas = cache[key]
        mat = cv2.getRotationMatrix2D(centre, 1.5 * np.sin(2 * np.pi * t / 4.0), 1.0)
        mat[0, 2] += 3.0 * np.sin(2 * np.pi * t / 2.0) - MARGIN
        mat[1, 2] += 1.5 * np.sin(2 * np.pi * t / 3.0) - MARGIN
        yield on_still_background(canvas, mat, backdrop)


def write_av(
    path: Path, frames: Iterable[NDArray[np.uint8]], fps: int, pcm: NDArray[np.int16]
) -> Path:
    """An MP4 with H.264 video and AAC audio (16 kHz mono PCM in)."""
    frames = iter(frames)
    first = next(frames)
    with av.open(str(path), "w") as out:
        vs = out.add_stream("libx264", rate=fps)
        vs.width, vs.height = first.shape[1], first.shape[0]
        vs.pix_fmt = "yuv420p"
        vs.options = {"crf": "18", "preset": "veryfast"}
        aus = out.add_stream("aac", rate=16000)
        aus.layout = "mono"  # type: ignore[attr-defined]
        for rgb in (first, *frames):
            out.mux(vs.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
        out.mux(vs.encode())
        step = 1024
        for k in range(0, pcm.size, step):
            chunk = pcm[k : k + step]
            frame = av.AudioFrame.from_ndarray(chunk.reshape(1, -1), format="s16", layout="mono")
            frame.sample_rate = 16000
            frame.pts = k
            out.mux(aus.encode(frame))
        out.mux(aus.encode())
    return path


GREEN_SCREEN = (40, 180, 70)


def speaking_video(
    path: Path,
    seconds: float = 11.0,
    fps: int = 25,
    backdrop: tuple[int, int, int] | None = None,
) -> tuple[Path, list[tuple[Shape, float]]]:
    """Silent with lips closed for 2 s, `SENTENCE` (about 4 s), then silent to the end: the
    customer's recording the docs ask for, with sound. Returns the file and the mouth of
    every frame (espeak's timings vary by a few ms between calls: use this script, not a
    new `speaking_script`). `backdrop`: a colour behind the person (`GREEN_SCREEN`)."""
    pcm, script = speaking_script(seconds, fps)
    return write_av(path, iter_speaking_frames(script, fps, backdrop), fps, pcm), script


def wide_frames(seconds: float = 8.0, fps: int = 25) -> Iterator[NDArray[np.uint8]]:
    """The talking portrait (no sound) enlarged 1.2x, on a 1280x720 grey frame: a 16:9
    recording (face ~18 % of the width)."""
    for frame in iter_talking_frames(seconds, fps):
        big = cv2.resize(frame, (648, 1152), interpolation=cv2.INTER_CUBIC)
        out = np.full((720, 1280, 3), 120, np.uint8)
        out[:, 316 : 316 + 648] = big[150:870]
        yield out


def speaking_1080p(path: Path, seconds: float = 60.0, fps: int = 25) -> Path:
    """The benchmark's recording: 1920x1080 with sound, `SENTENCE` every 8 s from 2 s (the
    speaking portrait enlarged 1.6x, face ~17 % of the width, on a grey frame)."""
    pcm, script = speaking_script(seconds, fps, every_s=8.0)

    def frames() -> Iterator[NDArray[np.uint8]]:
        for frame in iter_speaking_frames(script, fps):
            big = cv2.resize(frame, (864, 1536), interpolation=cv2.INTER_CUBIC)
            out = np.full((1080, 1920, 3), 110, np.uint8)
            out[:, 528 : 528 + 864] = big[200:1280]
            yield out

    return write_av(path, frames(), fps, pcm)
