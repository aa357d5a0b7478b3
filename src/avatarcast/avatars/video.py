"""Build a streaming avatar from a short video: checks, face tracking, an idle loop, sprites.

    build_video_avatar(video, name, data_dir, progress=None, size=None, transcript=None,
                       background="keep") -> summary

Two decoding passes keep memory bounded for long videos: the first tracks the face on every
frame (face mesh in video mode, on a copy at most 960 px high) and keeps a small grey
thumbnail per frame; the second crops only the chosen loop frames at full resolution and
aligns the frames chosen for the mouth bank. Frames stored turned (a phone's display
rotation) are turned upright first.

- Checks (`VideoQualityError`, reasons in `REASONS`): the file opens and decodes, lasts at
  least `MIN_SECONDS`, has at least `MIN_FPS`, its first frame passes the photo checks (one
  face, large, upright, frontal, lit, sharp), and the mouth is closed in the first second.
- Tracking: 478 landmarks per frame, smoothed by a centred moving average (`SMOOTH` frames).
- Sound: decoded on the picture's clock; where it has speech the frames are labelled (below)
  and kept out of the idle loop.
- Idle loop: the longest run of silent closed-mouth frames; inside it the loop [a, b) whose next
  frame b is most like its first frame a (mean absolute difference of thumbnails), between
  `MIN_LOOP_S` and `MAX_LOOP_S`; its last `FADE` frames are cross-faded toward the frames
  just before a, so playing b-1 → a continues the video's own motion.
- Framing: the loop is cropped by one matrix around the face's median place (the background
  stays still, the head moves in it), at the output size (`output_size`).
- Mouth: the mouth bank (`avatars.mouth_bank`): the person's own mouths harvested from the
  frames where they speak, labelled by the heard shapes and the lips, aligned to the loop's
  first frame; the photo warp (`MouthRig`) of that frame for slots the video never shows.
  Per loop frame, where its mouth sits (`loop.mouth_offsets`); the renderer moves the
  sprite there and blends it with `mouth_alpha`.
- Background: kept, or keyed (green/white screen) or segmented (`remove`) on every loop frame
  and every harvested mouth (`loop_mattes`); the mattes feed transparent output.
"""

from __future__ import annotations

import time
from collections.abc import Generator
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
from numpy.typing import NDArray

from avatarcast import __version__
from avatarcast.avatars import mouth_bank, photo
from avatarcast.avatars.asset import check_name, mouth_index, write_asset
from avatarcast.avatars.photo import (
    HEIGHT,
    MARGIN,
    MOUTH_LEVELS,
    WIDTH,
    AvatarQualityError,
    ProgressFn,
    check_photo,
)
from avatarcast.avatars.photo_background import apply_background, mediapipe_quiet, person_matte
from avatarcast.avatars.photo_warp import EyeRig, MouthRig
from avatarcast.errors import InputError
from avatarcast.speech.visemes import SHAPES

BUILDER = f"avatarcast {__version__} video/1"
MIN_SECONDS = 5.0  # for now; the recommendation is 1-3 minutes (docs/avatars.md)
MIN_FPS = 25.0
MAX_LIP_GAP = 0.08  # inner-lip gap / mouth width: above it the mouth counts as open
LOOP_LIP_GAP = 0.06  # loop frames need the mouth at least this closed
MIN_LOOP_S, MAX_LOOP_S = 2.0, 4.0
FADE = 6  # frames cross-faded at the loop's seam
SMOOTH = 5  # frames in the landmark moving average
TRACK_MAX_H = 960
THUMB = (48, 48)
SIZES = ((540, 960), (720, 1280), (960, 540), (1280, 720))
SPEECH_PAD = 5  # frames of silence the loop keeps from speech on either side
MOUTH_ANCHOR = (2, 0, 17, 61, 291)  # nose base, lips: where a loop frame's mouth sits
DECODE_THREADS = 0  # FFmpeg decoder threads (0: its own choice); build workers set 1
MAX_TRANSCRIPT_CHARS = 20_000  # ~20 minutes of speech
VIDEO_REASONS = {
    "unsupported_file": "the file is not a video avatarcast can read",
    "corrupt_file": "the video is damaged or truncated",
    "too_short": f"the video is too short; record at least {MIN_SECONDS:.0f} s (1-3 min is best)",
    "low_fps": f"the video has fewer than {MIN_FPS:.0f} frames per second",
    "mouth_open": "the mouth is open in the first second; start the video with lips closed",
    "face_lost": "the face was not found in enough frames; keep the face in view",
    "no_closed_mouth": "no stretch of closed-mouth frames is long enough for the idle loop",
}


class VideoQualityError(AvatarQualityError):
    """The video cannot make a good avatar; `reason` is one of `VIDEO_REASONS` or
    `photo.REASONS` (the first frame's face checks)."""

    code = "avatar_video_rejected"

    def __init__(self, reason: str, detail: str = "") -> None:
        text = VIDEO_REASONS.get(reason) or photo.REASONS[reason]
        InputError.__init__(self, text + (f" ({detail})" if detail else ""))
        self.reason = reason


def _open(path: Path) -> tuple[Any, Any]:
    try:
        raw = Path(path).read_bytes()[:64]
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from exc
    try:
        container = av.open(str(path))
    except av.error.InvalidDataError as exc:
        # a known video signature that does not open is damaged, anything else unsupported
        known = raw[4:8] in (b"ftyp", b"moov", b"mdat", b"free") or raw.startswith(
            (b"\x1a\x45\xdf\xa3", b"RIFF")
        )
        raise VideoQualityError("corrupt_file" if known else "unsupported_file") from exc
    except av.error.FFmpegError as exc:
        raise VideoQualityError("corrupt_file", str(exc)) from exc
    if not container.streams.video:
        container.close()
        raise VideoQualityError("unsupported_file", "no video stream")
    return container, container.streams.video[0]


def _frames(path: Path) -> Generator[NDArray[np.uint8], None, None]:
    container, stream = _open(path)
    if DECODE_THREADS:
        stream.thread_count = DECODE_THREADS
    try:
        for frame in container.decode(stream):
            rgb = frame.to_ndarray(format="rgb24")
            # phones store upright video turned, with a display rotation (counter-clockwise
            # degrees): turn it upright as players do
            turns = round(float(frame.rotation or 0) / 90) % 4
            yield np.ascontiguousarray(np.rot90(rgb, turns) if turns else rgb, np.uint8)
    except av.error.FFmpegError as exc:
        raise VideoQualityError("corrupt_file", str(exc)) from exc
    finally:
        container.close()


def probe(path: Path) -> tuple[float, float]:
    """(fps, seconds) from the container; VideoQualityError if unreadable."""
    container, stream = _open(path)
    try:
        fps = float(stream.average_rate or stream.guessed_rate or 0)
        if stream.duration is not None and stream.time_base is not None:
            seconds = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            seconds = container.duration / 1e6
        else:
            seconds = (stream.frames or 0) / fps if fps else 0.0
    finally:
        container.close()
    return fps, seconds


def lip_gap(lm: NDArray[np.float64]) -> float:
    """Inner-lip gap over mouth width: ~0 closed, 0.1-0.4 speaking."""
    width = max(float(np.linalg.norm(lm[291] - lm[61])), 1.0)
    return float(np.linalg.norm(lm[14] - lm[13])) / width


def track(path: Path, fps: float) -> tuple[NDArray[np.float64], NDArray[np.float32], int]:
    """The first frame's photo checks, then landmarks per frame (n, 478, 2; NaN where lost)
    and grey thumbnails. Returns (landmarks, thumbnails, frame count)."""
    marks: list[NDArray[np.float64]] = []
    thumbs: list[NDArray[np.float32]] = []
    frames = _frames(path)
    first = next(frames, None)
    frames.close()
    if first is None:
        raise VideoQualityError("corrupt_file", "no frame decodes")
    try:  # before the face mesh opens: mediapipe_quiet's lock is not re-entrant
        check_photo(first)
    except AvatarQualityError as exc:
        raise VideoQualityError(exc.reason, "in the first frame") from exc
    with (
        mediapipe_quiet() as mp,
        mp.solutions.face_mesh.FaceMesh(
            static_image_mode=False, max_num_faces=2, refine_landmarks=True
        ) as fm,
    ):
        for i, rgb in enumerate(_frames(path)):
            h, w = rgb.shape[:2]
            s = min(1.0, TRACK_MAX_H / h)
            small = rgb if s == 1 else cv2.resize(rgb, (round(w * s), round(h * s)))
            res = fm.process(np.ascontiguousarray(small))
            faces = res.multi_face_landmarks or []
            if len(faces) > 1 and i < fps:
                raise VideoQualityError("multiple_faces", f"at {i / fps:.2f} s")
            if faces:
                pts = np.array([[p.x * w, p.y * h] for p in faces[0].landmark], np.float64)
            else:
                pts = np.full((478, 2), np.nan)
            marks.append(pts)
            grey = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)
            thumbs.append(cv2.resize(grey, THUMB, interpolation=cv2.INTER_AREA).astype(np.float32))
    if not marks:
        raise VideoQualityError("corrupt_file", "no frame decodes")
    return np.stack(marks), np.stack(thumbs), len(marks)


def smooth(lm: NDArray[np.float64]) -> NDArray[np.float64]:
    """Centred moving average over `SMOOTH` frames, ignoring frames where the face was lost."""
    ok = ~np.isnan(lm[:, 0, 0])
    vals = np.where(ok[:, None, None], lm, 0.0)
    k = np.ones(SMOOTH)
    pad = SMOOTH // 2
    num = np.apply_along_axis(lambda v: np.convolve(np.pad(v, pad, "edge"), k, "valid"), 0, vals)
    den = np.convolve(np.pad(ok.astype(float), pad, "edge"), k, "valid")[:, None, None]
    out = num / np.maximum(den, 1e-9)
    out[den[:, 0, 0] < 1] = np.nan
    return np.asarray(out, np.float64)


def choose_loop(
    closed: NDArray[np.bool_], thumbs: NDArray[np.float32], fps: float
) -> tuple[int, int, float]:
    """(a, b, cost): loop frames a..b-1 in the longest closed-mouth run, a >= FADE."""
    runs, start = [], None
    for i, c in enumerate([*closed.tolist(), False]):
        if c and start is None:
            start = i
        elif not c and start is not None:
            runs.append((start, i))
            start = None
    lo, hi = round(MIN_LOOP_S * fps), round(MAX_LOOP_S * fps)
    runs = [(s, e) for s, e in runs if e - max(s, FADE) > lo]
    if not runs:
        raise VideoQualityError("no_closed_mouth", f"needs {MIN_LOOP_S:.0f} s with lips closed")
    s, e = max(runs, key=lambda r: r[1] - r[0])
    flat = thumbs.reshape(len(thumbs), -1)
    best = (s, s + lo, np.inf)
    for a in range(max(s, FADE), e - lo):
        bs = np.arange(a + lo, min(a + hi, e - 1) + 1)  # frame b itself exists (b < e)
        cost = np.abs(flat[bs] - flat[a]).mean(axis=1)
        j = int(np.argmin(cost))
        if cost[j] < best[2]:
            best = (a, int(bs[j]), float(cost[j]))
    return best


def parse_size(text: str | None) -> tuple[int, int] | None:
    """ "WxH" (the CLI's --size, the API's Size) → (w, h); None stays None."""
    if text is None:
        return None
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise InputError(f"size must look like 540x960, got {text!r}") from None
    return w, h


def output_size(source: tuple[int, int], size: tuple[int, int] | None) -> tuple[int, int]:
    """The avatar's picture size: `size` if given (one of `SIZES`, the video's orientation),
    else 540x960 for an upright video and 960x540 for a wide one."""
    portrait = source[1] >= source[0]
    if size is None:
        return (WIDTH, HEIGHT) if portrait else (HEIGHT, WIDTH)
    if size not in SIZES:
        names = ", ".join(f"{w}x{h}" for w, h in SIZES)
        raise InputError(f"--size must be one of {names}, got {size[0]}x{size[1]}")
    if (size[1] >= size[0]) != portrait:
        want = "upright (9:16)" if portrait else "wide (16:9)"
        raise InputError(
            f"the video is {source[0]}x{source[1]}: it makes an {want} avatar, "
            f"not {size[0]}x{size[1]}"
        )
    return size


def face_width(out: tuple[int, int]) -> float:
    """Pixels between the temples in the output: as the photo path (36 % of the width) when
    upright; 30 % of the height when wide (head and shoulders of a presenter)."""
    w, h = out
    return 0.36 * w if h >= w else 0.30 * h


def crop_matrix(
    lm: NDArray[np.float64], scale: float, size: tuple[int, int], out: tuple[int, int]
) -> NDArray[Any]:
    """Source (`size`) → canvas (`out` + margin) at `scale`: the face centred, the eyes at
    38 % of the height, like the photo path, never past the source's edges."""
    cw, ch = out[0] + 2 * MARGIN, out[1] + 2 * MARGIN
    w, h = size
    centre = (lm[234] + lm[454]) / 2 * scale
    eyes = (lm[33] + lm[263]) / 2 * scale
    ox = float(np.clip(centre[0] - cw / 2, 0, max(w * scale - cw, 0)))
    oy = float(np.clip(eyes[1] - (MARGIN + 0.38 * out[1]), 0, max(h * scale - ch, 0)))
    return np.array([[scale, 0, -ox], [0, scale, -oy]], np.float64)


def _to_canvas(lm: NDArray[np.float64], mat: NDArray[Any]) -> NDArray[np.float64]:
    return np.asarray(lm @ mat[:, :2].T + mat[:, 2], np.float64)


def _soundtrack(video: Path) -> NDArray[np.int16]:
    """The video's sound as 16 kHz mono on the picture's clock (a track that starts later
    than the picture is padded, one that starts earlier trimmed); empty if it has none or
    it does not decode."""
    from avatarcast import SAMPLE_RATE_HZ
    from avatarcast.errors import AudioInputError
    from avatarcast.speech.audio import load_audio

    try:
        pcm = load_audio(video)
    except AudioInputError:
        return np.zeros(0, np.int16)
    container, stream = _open(video)
    try:
        audio = container.streams.audio[0]

        def start(s: Any) -> float:
            return float(s.start_time * s.time_base) if s.start_time is not None else 0.0

        lead = round((start(audio) - start(stream)) * SAMPLE_RATE_HZ)
    finally:
        container.close()
    if lead > 0:
        return np.concatenate([np.zeros(lead, np.int16), pcm])
    return pcm[-lead:]


def build_video_avatar(
    video: Path,
    name: str,
    data_dir: Path,
    progress: ProgressFn | None = None,
    size: tuple[int, int] | None = None,
    transcript: str | None = None,
    background: str = "keep",
) -> dict[str, Any]:
    """Check, build and register the video avatar `name`; returns the CLI's summary.
    `size` (w, h) is the output picture (see `output_size`); `transcript`, the English text
    the person says in the video, if known, times the mouth labels better; `background`
    as for a photo (`photo.BACKGROUNDS`): kept, or keyed from a green or white screen, or
    removed by person segmentation, frame by frame (the matte feeds transparent output)."""
    t0 = time.perf_counter()
    check_name(name)
    if background not in photo.BACKGROUNDS:
        raise InputError(f"--background must be one of {', '.join(photo.BACKGROUNDS)}")
    if (Path(data_dir) / "avatars" / name).exists():
        raise InputError(f"avatar {name!r} already exists; delete it first")
    total, step = 6, 0

    def tick(label: str) -> None:
        nonlocal step
        step += 1
        if progress is not None:
            progress(step, total, label)

    fps, seconds = probe(video)
    if seconds < MIN_SECONDS:
        raise VideoQualityError("too_short", f"{seconds:.1f} s")
    if fps < MIN_FPS - 0.01:
        raise VideoQualityError("low_fps", f"{fps:.1f} fps")
    src_size = _frame_size(video)
    out = output_size(src_size, size)
    tick("tracking the face")
    raw, thumbs, n = track(video, fps)
    first = raw[: max(1, round(fps))]
    gaps = np.array([lip_gap(m) for m in first if not np.isnan(m[0, 0])])
    if len(gaps) and float(np.median(gaps)) > MAX_LIP_GAP:
        raise VideoQualityError("mouth_open", f"lip gap {np.median(gaps):.2f} of the width")
    lost = float(np.isnan(raw[:, 0, 0]).mean())
    if lost > 0.2:
        raise VideoQualityError("face_lost", f"missing in {lost:.0%} of frames")
    tick("listening to the sound")
    lm = smooth(raw)
    gap_all = np.array([lip_gap(m) if not np.isnan(m[0, 0]) else 1.0 for m in raw])
    closed = (gap_all < LOOP_LIP_GAP) & ~np.isnan(lm[:, 0, 0])
    pcm = _soundtrack(video)
    if transcript is not None and len(transcript) > MAX_TRANSCRIPT_CHARS:
        raise InputError(f"the transcript is longer than {MAX_TRANSCRIPT_CHARS} characters")
    heard = mouth_bank.audio_shapes(pcm, n, fps, transcript) if pcm.size else None
    speech = np.array([h is not None for h in heard]) if heard is not None else np.zeros(n, bool)
    if speech.any():  # the loop must be silent too: a closed mouth can still hum or say "m"
        quiet = ~np.convolve(speech, np.ones(2 * SPEECH_PAD + 1, bool), "same")
    else:
        quiet = np.ones(n, bool)
    a, b, cost = choose_loop(closed & quiet, thumbs, fps)
    tick("cutting the loop")
    temple = float(np.median(np.linalg.norm(lm[a:b, 454] - lm[a:b, 234], axis=1)))
    cw, ch = out[0] + 2 * MARGIN, out[1] + 2 * MARGIN
    scale = max(face_width(out) / temple, cw / src_size[0], ch / src_size[1])
    # one crop for the whole loop (the face's median place): the background stays still, as
    # the camera recorded it, and the head moves in it (x264 pays ~25 % more for a whole
    # moving picture); each loop frame's mouth offset follows the head
    frame_mat = crop_matrix(np.nanmedian(lm[a - FADE : b], axis=0), scale, src_size, out)
    key_lm = _to_canvas(lm[a], frame_mat)
    mouth_rig, eye_rig = MouthRig(key_lm), EyeRig(key_lm)
    mx, my, mw, mh = mouth_rig.box
    ex, ey, ew, eh = eye_rig.box
    if ey + eh > my or min(mx, ex, my, ey) < 1 or max(mx + mw, ex + ew) >= cw or my + mh >= ch:
        raise VideoQualityError("face_cut_off", "the mouth or eyes reach the frame edge")
    geo = mouth_bank.mouth_geometry(raw, closed)
    labels = mouth_bank.label_frames(geo, heard)
    usable = ~np.isnan(raw[:, 0, 0])
    plan = mouth_bank.plan_bank(labels, geo, MOUTH_LEVELS, usable)
    wanted = {c.frame for c in plan.values()}
    tick("collecting the person's mouths")
    crops: dict[int, NDArray[np.uint8]] = {}
    aligned: dict[int, NDArray[np.uint8]] = {}
    for i, rgb in enumerate(_frames(video)):
        if i in wanted:  # before the loop's pre-filter: align filters for its own scale
            aligned[i] = mouth_bank.align(rgb, raw[i], key_lm, mouth_rig.box)
            if background != "keep":  # the person over the neutral plate, like the loop
                patch_matte = mouth_bank.align(
                    person_matte(rgb, background), raw[i], key_lm, mouth_rig.box
                )
                apply_background(aligned[i], patch_matte, background)
        if a - FADE <= i < b:
            if scale < 0.9:  # shrinking: pre-filter (warpAffine samples points, and
                # aliasing shimmers as the person moves, which x264 pays for)
                rgb = np.asarray(cv2.GaussianBlur(rgb, (0, 0), 0.45 / scale), np.uint8)
            img = cv2.warpAffine(rgb, frame_mat, (cw, ch), flags=cv2.INTER_LINEAR)
            crops[i] = np.asarray(img, np.uint8)
        if i >= b and i >= max(wanted, default=0):
            break
    loop = np.stack([crops[i] for i in range(a, b)])
    weights = [(j + 1) / (FADE + 1) for j in range(FADE)]
    for j, wgt in enumerate(weights):  # the tail fades toward the frames just before a
        tail = loop[len(loop) - FADE + j].astype(np.float32)
        loop[len(loop) - FADE + j] = np.round(
            (1 - wgt) * tail + wgt * crops[a - FADE + j].astype(np.float32)
        ).astype(np.uint8)
    offsets = _mouth_offsets(lm, a, b, frame_mat, key_lm, weights)
    mattes = loop_mattes(loop, background)
    plate = loop[0].copy()
    if background != "keep":
        for frame, matte in zip(loop, mattes, strict=True):
            plate = apply_background(frame, matte, background)  # in place; the grey plate
    tick("rigging the face")
    src = loop[0]
    key_box = photo.cut_box(src, mouth_rig.box)
    mouth = np.empty((1 + len(SHAPES) * MOUTH_LEVELS, mh + 1, mw + 1, 3), np.uint8)
    mouth[0] = key_box
    warped = []
    for si, shape in enumerate(SHAPES):
        for k in range(1, MOUTH_LEVELS + 1):
            if (shape, k) in plan:
                continue
            sprite = photo.pasted_sprite(
                src, mouth_rig.box, mouth_rig.warp(src, shape, k / MOUTH_LEVELS)
            )
            mouth[mouth_index(si, k, MOUTH_LEVELS)] = sprite
            warped.append(sprite)
    alpha = mouth_bank.blend_mask(mouth_rig, warped, key_box)
    ring = mouth_bank.still_ring(mouth_rig, alpha)
    slots: list[dict[str, Any]] = []
    mismatches = []
    for si, shape in enumerate(SHAPES):
        for k in range(1, MOUTH_LEVELS + 1):
            choice = plan.get((shape, k))
            if choice is None:
                slots.append({"shape": shape.value, "level": k, "source": "warp"})
                continue
            sprite, mismatch = mouth_bank.match(aligned[choice.frame], key_box, ring)
            mouth[mouth_index(si, k, MOUTH_LEVELS)] = sprite
            mismatches.append(mismatch)
            slots.append(
                {
                    "shape": shape.value,
                    "level": k,
                    "source": "video",
                    "frame": choice.frame,
                    "openness": round(choice.openness, 3),
                    "ring_luma_mad": round(mismatch, 2),
                }
            )
    eyes = photo.eye_sprites(src, src, eye_rig)
    tick("saving")
    seam = float(np.abs(_luma(loop[-1]) - _luma(loop[0])).mean())
    harvested = sum(s["source"] == "video" for s in slots)
    manifest: dict[str, Any] = {
        "kind": "video",
        "builder": BUILDER,
        "created_unix": round(time.time(), 3),
        "source": {
            "file": Path(video).name,
            "sha256": photo.file_sha256(Path(video)),
            "width": src_size[0],
            "height": src_size[1],
            "fps": round(fps, 3),
            "seconds": round(seconds, 3),
            "frames": n,
            "scale": round(scale, 5),
            "sound": bool(pcm.size),
            "speech_seconds": round(float(speech.sum()) / fps, 2),
        },
        **photo.rig_manifest(key_lm, mouth_rig, eye_rig, ch, background, out),
        "loop": {
            "fps": round(fps, 3),
            "frames": len(loop),
            "source_frames": [a, b],
            "similarity_cost": round(cost, 3),
            "fade_frames": FADE,
            "seam_luma_mad": round(seam, 3),
            "mouth_offsets": np.round(offsets, 2).tolist(),
        },
        "bank": {
            "labels": ("audio+text+landmarks" if transcript else "audio+landmarks")
            if speech.any()
            else "landmarks",
            "harvested_slots": harvested,
            "warped_slots": len(slots) - harvested,
            "labelled_frames": sum(lab is not None for lab in labels),
            "ring_luma_mad_max": round(max(mismatches, default=0.0), 2),
            "slots": slots,
        },
        "checks": {
            "passed": ["file", "duration", "fps", "first_frame_face", "mouth_closed"],
            "measures": {"lip_gap_first_second": round(float(np.median(gaps)), 4)}
            if len(gaps)
            else {},
        },
    }
    extra = {"loop": loop, "mouth_alpha": alpha}
    if background != "keep":
        extra["loop_matte"] = mattes
    write_asset(Path(data_dir), name, manifest, src, plate, mattes[0], mouth, eyes, extra=extra)
    return {
        "name": name,
        "kind": "video",
        "width": out[0],
        "height": out[1],
        "background": background,
        "loop_frames": len(loop),
        "loop_seconds": round(len(loop) / fps, 2),
        "mouth_slots_from_video": harvested,
        "mouth_slots_warped": len(slots) - harvested,
        "seconds": round(time.perf_counter() - t0, 2),
        "checks_passed": manifest["checks"]["passed"],
        "path": str(Path(data_dir) / "avatars" / name),
    }


def loop_mattes(loop: NDArray[np.uint8], background: str) -> NDArray[np.uint8]:
    """(frames, H, W) person mattes of the loop frames (all 255 for `keep`): keyed or
    segmented per frame, then averaged with both neighbours (cyclically, as the loop plays)
    so the silhouette does not flicker."""
    if background == "keep":
        return np.full(loop.shape[:3], 255, np.uint8)
    raw = np.stack([person_matte(frame, background) for frame in loop]).astype(np.float32)
    smooth = (np.roll(raw, 1, axis=0) + 2 * raw + np.roll(raw, -1, axis=0)) / 4
    return np.asarray(np.round(smooth), np.uint8)


def _mouth_offsets(
    lm: NDArray[np.float64],
    a: int,
    b: int,
    frame_mat: NDArray[Any],
    key_lm: NDArray[np.float64],
    fade: list[float],
) -> NDArray[np.float64]:
    """(loop frames, 2): where each loop frame's mouth sits relative to the key frame's, in
    canvas pixels (the fade frames mix the two frames they blend)."""
    anchor = list(MOUTH_ANCHOR)

    def at(i: int) -> NDArray[np.float64]:
        c = _to_canvas(lm[i], frame_mat)
        return np.asarray(c[anchor].mean(0) - key_lm[anchor].mean(0), np.float64)

    offs = np.stack([at(i) for i in range(a, b)])
    for j, wgt in enumerate(fade):
        k = len(offs) - len(fade) + j
        offs[k] = (1 - wgt) * offs[k] + wgt * at(a - len(fade) + j)
    return offs


def _frame_size(video: Path) -> tuple[int, int]:
    """(width, height) of the first frame as shown (after its display rotation)."""
    frames = _frames(video)
    try:
        first = next(frames, None)
    finally:
        frames.close()
    if first is None:
        raise VideoQualityError("corrupt_file", "no frame decodes")
    return first.shape[1], first.shape[0]


def _luma(rgb: NDArray[np.uint8]) -> NDArray[np.float32]:
    return np.asarray(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), np.float32)
