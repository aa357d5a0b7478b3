"""Build a streaming avatar from a short video: checks, face tracking, an idle loop, sprites.

    build_video_avatar(video, name, data_dir, progress=None, size=None, transcript=None,
                       background="keep") -> summary

Two decoding passes keep memory bounded for long videos, both on the 25 fps session clock
by frame timestamps (`avatars.video_timing`: any frame rate, variable timing): the first
tracks the face on every frame (face mesh in video mode, on a copy at most 960 px high) and
keeps a small grey thumbnail per frame; the second crops only the chosen loop frames at full
resolution and aligns the frames chosen for the mouth bank. Frames stored turned (a phone's
display rotation) are turned upright first.

- Checks (`avatars.video_checks`): refused (`VideoQualityError`) only what cannot make an
  avatar — unreadable, under 3 s, under 15 fps, no face, two faces, the face out of view too
  often or too small to track; what only lowers the quality (short, soft, dark, turned,
  moving head, no silent pause, few mouths) becomes a warning in the summary and manifest.
- Tracking: 478 landmarks per frame, smoothed by a centred moving average (`SMOOTH` frames).
- Sound: decoded on the picture's clock; where it has speech the frames are labelled (below)
  and kept out of a forward idle loop.
- Idle loop (`avatars.video_loop`), wherever the clip is quietest: a forward loop cut from
  a silent closed-mouth run (cross-faded seam), or a ping-pong of the calmest frames with
  the person's own closed mouth blended over talking ones (`avatars.video_mouth`).
- Framing: the loop is cropped by one matrix around the face's median place (the background
  stays still, the head moves in it), at the output size (`output_size`).
- Mouth: the mouth bank (`avatars.mouth_bank`): the person's own mouths harvested from the
  frames where they speak, labelled by the heard shapes and the lips, aligned to the loop's
  first frame; slots the video never shows take the nearest harvested mouth (the warp of
  that frame, `MouthRig`, only when nothing was harvested).
  Per loop frame, where its mouth sits (`loop.mouth_offsets`); the renderer moves the
  sprite there and blends it with `mouth_alpha`.
- Background: kept, or keyed (green/white screen) or segmented (`remove`) on every loop frame
  and every harvested mouth (`loop_mattes`); the mattes feed transparent output.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from avatarcast import FRAME_RATE_HZ, __version__
from avatarcast.avatars import mouth_bank, photo, video_loop, video_mouth
from avatarcast.avatars import video_checks as checks
from avatarcast.avatars.asset import check_name, write_asset
from avatarcast.avatars.photo import (
    HEIGHT,
    MARGIN,
    MOUTH_LEVELS,
    WIDTH,
    ProgressFn,
)
from avatarcast.avatars.photo_background import apply_background, mediapipe_quiet, person_matte
from avatarcast.avatars.photo_warp import EyeRig, MouthRig
from avatarcast.avatars.video_checks import VideoQualityError
from avatarcast.avatars.video_loop import FADE
from avatarcast.avatars.video_timing import ClockedVideo, DecodeError, open_video
from avatarcast.errors import InputError

BUILDER = f"avatarcast {__version__} video/1"
MAX_LIP_GAP = 0.08  # inner-lip gap / mouth width: above it the mouth counts as open
LOOP_LIP_GAP = 0.06  # loop frames need the mouth at least this closed
SMOOTH = 5  # frames in the landmark moving average
TRACK_MAX_H = 960
THUMB = (48, 48)
SIZES = ((540, 960), (720, 1280), (960, 540), (1280, 720), (540, 540), (720, 720))
SQUARE_ASPECT = 1.2  # width/height within 1/1.2..1.2 makes a square avatar
SPEECH_PAD = 5  # frames of silence the loop keeps from speech on either side
MOUTH_ANCHOR = (2, 0, 17, 61, 291)  # nose base, lips: where a loop frame's mouth sits
# a ping-pong loop's frames may be talking: its mouth follows the nose and the lip
# corners, which speech moves least (the lips' middle opens and closes)
STILL_ANCHOR = (2, 98, 327, 61, 291)
POSE_YAW_TOL = 0.08  # yaw asymmetry a harvested frame may differ from the key frame's (~7°)
POSE_ROLL_TOL_DEG = 4.0
MIN_BANK_FRAMES = 25  # fewer frames posed like the key frame: harvest from all
DECODE_THREADS = 0  # FFmpeg decoder threads (0: its own choice); build workers set 1
MAX_TRANSCRIPT_CHARS = 20_000  # ~20 minutes of speech


def _clocked(path: Path) -> ClockedVideo:
    return ClockedVideo(Path(path), DECODE_THREADS)


def _decoded(frames: Iterator[tuple[int, NDArray[np.uint8]]]) -> Iterator[tuple[int, Any]]:
    """`frames` with decoding errors as VideoQualityError."""
    try:
        yield from frames
    except DecodeError as exc:
        raise VideoQualityError(exc.reason, exc.detail) from exc


def probe(path: Path) -> tuple[float, float]:
    """(fps, seconds) as the container states them (may be wrong: the build measures both
    from the frames' timestamps); VideoQualityError if unreadable."""
    try:
        container, stream = open_video(path)
    except DecodeError as exc:
        raise VideoQualityError(exc.reason, exc.detail) from exc
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


def track(
    clocked: ClockedVideo,
) -> tuple[NDArray[np.float64], NDArray[np.float32], checks.FaceStats]:
    """Landmarks per output frame (n, 478, 2; NaN where lost), grey thumbnails, and the
    face measures the checks need (`checks.FaceStats`). Sets `clocked.timing`."""
    marks: list[NDArray[np.float64]] = []
    thumbs: list[NDArray[np.float32]] = []
    stats = checks.FaceStats()
    with (
        mediapipe_quiet() as mp,
        mp.solutions.face_mesh.FaceMesh(
            static_image_mode=False, max_num_faces=2, refine_landmarks=True
        ) as fm,
    ):
        for i, rgb in _decoded(clocked.frames()):
            h, w = rgb.shape[:2]
            s = min(1.0, TRACK_MAX_H / h)
            small = rgb if s == 1 else cv2.resize(rgb, (round(w * s), round(h * s)))
            res = fm.process(np.ascontiguousarray(small))
            faces = res.multi_face_landmarks or []
            stats.two_faces += len(faces) > 1
            grey = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)
            if faces:
                pts = np.array([[p.x * w, p.y * h] for p in faces[0].landmark], np.float64)
                if i % checks.SAMPLE_EVERY == 0:
                    stats.sample(grey, pts * s)
            else:
                pts = np.full((478, 2), np.nan)
            marks.append(pts)
            thumbs.append(cv2.resize(grey, THUMB, interpolation=cv2.INTER_AREA).astype(np.float32))
    if not marks:
        raise VideoQualityError("corrupt_file", "no frame decodes")
    return np.stack(marks), np.stack(thumbs), stats


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


def parse_size(text: str | None) -> tuple[int, int] | None:
    """ "WxH" (the CLI's --size, the API's Size) → (w, h); None stays None."""
    if text is None:
        return None
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise InputError(f"size must look like 540x960, got {text!r}") from None
    return w, h


def orientation(size: tuple[int, int]) -> str:
    """ "square" for a picture within `SQUARE_ASPECT` of 1:1, else "upright" or "wide"."""
    aspect = size[0] / size[1]
    if 1 / SQUARE_ASPECT <= aspect <= SQUARE_ASPECT:
        return "square"
    return "upright" if aspect < 1 else "wide"


def output_size(source: tuple[int, int], size: tuple[int, int] | None) -> tuple[int, int]:
    """The avatar's picture size: `size` if given (one of `SIZES`, the video's orientation),
    else 540x960 for an upright video, 960x540 for a wide one, and 540x540 for a square one
    (close face crops, as many recordings are cut: a 9:16 frame from a square close-up would
    enlarge the face twice). Not 720x720 by default: a real face's texture and motion cost
    x264 1.4-2x the built-in avatar per pixel, so 720x720 streams at ~1.4x the built-in's
    cost, 540x540 at ~1.0x; ask for 720x720 with `size`."""
    kind = orientation(source)
    if size is None:
        if kind == "square":
            return (540, 540)
        return (WIDTH, HEIGHT) if kind == "upright" else (HEIGHT, WIDTH)
    if size not in SIZES:
        names = ", ".join(f"{w}x{h}" for w, h in SIZES)
        raise InputError(f"--size must be one of {names}, got {size[0]}x{size[1]}")
    if orientation(size) != kind:
        want = {"upright": "upright (9:16)", "wide": "wide (16:9)", "square": "square"}[kind]
        raise InputError(
            f"the video is {source[0]}x{source[1]}: it makes a {want} avatar, "
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


def _soundtrack(video: Path, picture_start_s: float) -> NDArray[np.int16]:
    """The video's sound as 16 kHz mono on the picture's clock, whose zero is the first
    frame's presentation time (a track that starts later is padded, one that starts earlier
    trimmed); empty if it has none or it does not decode."""
    from avatarcast import SAMPLE_RATE_HZ
    from avatarcast.errors import AudioInputError
    from avatarcast.speech.audio import load_audio

    try:
        pcm = load_audio(video)
    except AudioInputError:
        return np.zeros(0, np.int16)
    container, _ = open_video(video)
    try:
        audio = container.streams.audio[0]
        start = float(audio.start_time * audio.time_base) if audio.start_time is not None else 0
    finally:
        container.close()
    lead = round((start - picture_start_s) * SAMPLE_RATE_HZ)
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
    """Check, build and register the video avatar `name`; returns the CLI's summary
    (its `warnings`: what would make a better avatar, see `video_checks`).
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
    if transcript is not None and len(transcript) > MAX_TRANSCRIPT_CHARS:
        raise InputError(f"the transcript is longer than {MAX_TRANSCRIPT_CHARS} characters")
    total, step = 6, 0

    def tick(label: str) -> None:
        nonlocal step
        step += 1
        if progress is not None:
            progress(step, total, label)

    _, stated_s = probe(video)
    if 0 < stated_s < 0.9 * checks.MIN_SECONDS:  # clearly short: before any decoding
        raise VideoQualityError("too_short", f"{stated_s:.1f} s")
    clocked = _clocked(video)
    try:
        first = clocked.first_frame()
    except DecodeError as exc:
        raise VideoQualityError(exc.reason, exc.detail) from exc
    src_size = (first.shape[1], first.shape[0])
    out = output_size(src_size, size)
    fps = float(FRAME_RATE_HZ)
    tick("tracking the face")
    raw, thumbs, stats = track(clocked)
    assert clocked.timing is not None
    timing = clocked.timing
    n = len(raw)
    ok, measures, warnings = checks.check_clip(raw, stats, timing, src_size)
    raw[~ok] = np.nan  # a face cut by the picture's edge is as good as lost
    tick("listening to the sound")
    lm = smooth(raw)
    usable = ok & ~np.isnan(lm[:, 0, 0])
    gap_all = np.array([lip_gap(m) if u else 1.0 for m, u in zip(raw, usable, strict=True)])
    closed = (gap_all < LOOP_LIP_GAP) & usable
    pcm = _soundtrack(video, timing.first_s)
    heard = mouth_bank.audio_shapes(pcm, n, fps, transcript) if pcm.size else None
    speech = np.array([h is not None for h in heard]) if heard is not None else np.zeros(n, bool)
    if speech.any():  # the loop must be silent too: a closed mouth can still hum or say "m"
        quiet = ~np.convolve(speech, np.ones(2 * SPEECH_PAD + 1, bool), "same")
    else:
        quiet = np.ones(n, bool)
    if not pcm.size:
        warnings.append(checks.warning("no_sound"))
    geo = mouth_bank.mouth_geometry(raw, closed)
    yaw, roll = checks.head_pose(raw)
    dev_yaw = np.abs(yaw - np.nanmedian(yaw[usable]))
    dev_roll = np.abs(roll - np.nanmedian(roll[usable]))
    pose_dev = dev_yaw / POSE_YAW_TOL + dev_roll / POSE_ROLL_TOL_DEG
    calm = video_loop.calm_cost(geo.gap, geo.drop, geo.motion, speech, usable, 0.1 * pose_dev)
    idle = video_loop.choose_idle(closed & quiet, calm, closed, thumbs, fps)
    if idle.kind == "pingpong":
        warnings.append(checks.warning("no_rest"))
    order, a, b = idle.order, idle.a, idle.b
    tick("cutting the loop")
    temple = float(np.median(np.linalg.norm(lm[a:b, 454] - lm[a:b, 234], axis=1)))
    cw, ch = out[0] + 2 * MARGIN, out[1] + 2 * MARGIN
    scale = max(face_width(out) / temple, cw / src_size[0], ch / src_size[1])
    # one crop for the whole loop (the face's median place): the background stays still, as
    # the camera recorded it, and the head moves in it (x264 pays ~25 % more for a whole
    # moving picture); each loop frame's mouth offset follows the head
    frame_mat = crop_matrix(np.nanmedian(lm[idle.first_needed : b], axis=0), scale, src_size, out)
    key_lm = _to_canvas(lm[a], frame_mat)
    # mouths are harvested only from frames posed like the key frame: a turned head's
    # mouth does not line up with a frontal one (the still landmarks align shift, scale and
    # roll, not a turn)
    like_key = usable & (np.abs(yaw - yaw[a]) < POSE_YAW_TOL)
    like_key &= np.abs(roll - roll[a]) < POSE_ROLL_TOL_DEG
    bank_frames = like_key if like_key.sum() >= MIN_BANK_FRAMES else usable
    rest = video_mouth.rest_frame(geo, speech, bank_frames) if idle.bake else a
    rig_lm = video_mouth.with_mouth_of(key_lm, raw[rest]) if idle.bake else key_lm
    mouth_rig, eye_rig = MouthRig(rig_lm), EyeRig(key_lm)
    anchor = MOUTH_ANCHOR if idle.kind == "forward" else STILL_ANCHOR
    fade = [(a - FADE + j, (j + 1) / (FADE + 1)) for j in range(FADE)]
    if idle.kind != "forward":
        fade = []
    offsets = _mouth_offsets(lm, order, frame_mat, key_lm, anchor, fade)
    # a close-up's jaw room may pass the picture's edge: the boxes stop inside the shown
    # frame, as far in as the loop moves the mouth (the recording shows no more either)
    reach = int(np.ceil(np.abs(offsets).max(initial=0.0))) + 2
    inner = (MARGIN + reach, MARGIN + reach, MARGIN + out[0] - reach, MARGIN + out[1] - reach)
    mouth_rig.box = _clip_box(mouth_rig.box, inner)
    eye_rig.box = _clip_box(eye_rig.box, inner)
    lips_eyes = rig_lm[[0, 17, 61, 291, 33, 133, 362, 263, 159, 145, 386, 374]]
    outside = (lips_eyes < inner[:2]).any() or (lips_eyes >= inner[2:]).any()
    if outside or eye_rig.box[1] + eye_rig.box[3] > mouth_rig.box[1]:
        raise VideoQualityError("face_cut_off", "the mouth or eyes reach the frame edge")
    labels = mouth_bank.label_frames(geo, heard)
    plan = mouth_bank.plan_bank(labels, geo, MOUTH_LEVELS, bank_frames)
    wanted = {c.frame for c in plan.values()} | ({rest} if idle.bake else set())
    tick("collecting the person's mouths")
    crops: dict[int, NDArray[np.uint8]] = {}
    aligned: dict[int, NDArray[np.uint8]] = {}
    for i, rgb in _decoded(clocked.frames()):
        if i in wanted:  # before the loop's pre-filter: align filters for its own scale
            aligned[i] = mouth_bank.align(rgb, raw[i], key_lm, mouth_rig.box)
            if background != "keep":  # the person over the neutral plate, like the loop
                patch_matte = mouth_bank.align(
                    person_matte(rgb, background), raw[i], key_lm, mouth_rig.box
                )
                apply_background(aligned[i], patch_matte, background)
        if idle.first_needed <= i < b:
            if scale < 0.9:  # shrinking: pre-filter (warpAffine samples points, and
                # aliasing shimmers as the person moves, which x264 pays for)
                rgb = np.asarray(cv2.GaussianBlur(rgb, (0, 0), 0.45 / scale), np.uint8)
            img = cv2.warpAffine(rgb, frame_mat, (cw, ch), flags=cv2.INTER_LINEAR)
            crops[i] = np.asarray(img, np.uint8)
        if i >= b and i >= max(wanted, default=0):
            break
    loop = np.stack([crops[i] for i in order])
    if fade:
        for j, (src_i, wgt) in enumerate(fade):  # the tail fades toward the frames before a
            tail = loop[len(loop) - FADE + j].astype(np.float32)
            loop[len(loop) - FADE + j] = np.round(
                (1 - wgt) * tail + wgt * crops[src_i].astype(np.float32)
            ).astype(np.uint8)
    # the blend must cover the bank's widest lips and, on every loop frame, that frame's
    # own lip corners where the sprite lands (its offset): a smile's corner left outside
    # would show beside the blended mouth
    bank_w = np.linalg.norm(raw[sorted(wanted), 291] - raw[sorted(wanted), 61], axis=1)
    lip_half = 0.5 * float(np.nanmax(bank_w, initial=0.0)) * scale
    for j, i in enumerate(order):
        corners = _to_canvas(raw[i][[61, 291]], frame_mat) - offsets[j]
        if not np.isnan(corners).any():
            reach_x = np.abs(mouth_rig.frame.to_local(corners)[:, 0]).max()
            lip_half = max(lip_half, float(reach_x))
    half = video_mouth.blend_half_width(mouth_rig, lip_half)
    if idle.bake:  # the person's own closed mouth over every (talking) loop frame
        rest_alpha = mouth_bank.blend_mask(
            mouth_rig,
            [],
            photo.cut_box(loop[0], mouth_rig.box),
            half,
        )
        ring = mouth_bank.still_ring(
            mouth_rig, mouth_bank.blend_mask(mouth_rig, [], photo.cut_box(loop[0], mouth_rig.box))
        )
        closed_sprite, _ = mouth_bank.match(
            aligned[rest], photo.cut_box(loop[0], mouth_rig.box), ring
        )
        video_mouth.bake(loop, closed_sprite, rest_alpha, mouth_rig.box, offsets)
    mattes = loop_mattes(loop, background)
    plate = loop[0].copy()
    if background != "keep":
        for frame, matte in zip(loop, mattes, strict=True):
            plate = apply_background(frame, matte, background)  # in place; the grey plate
    tick("rigging the face")
    src = loop[0]
    key_box = photo.cut_box(src, mouth_rig.box)
    mouth, alpha, slots, mismatches = video_mouth.mouth_sprites(
        src, key_box, mouth_rig, plan, aligned, half
    )
    eyes = photo.eye_sprites(src, src, eye_rig)
    tick("saving")
    seam = float(np.abs(_luma(loop[-1]) - _luma(loop[0])).mean())
    harvested = sum(s["source"] == "video" for s in slots)
    from_video = sum(s["source"] != "warp" for s in slots)
    if harvested < len(slots) // 2:
        warnings.append(checks.warning("few_mouths", harvested=harvested, slots=len(slots)))
    manifest: dict[str, Any] = {
        "kind": "video",
        "builder": BUILDER,
        "created_unix": round(time.time(), 3),
        "source": {
            "file": Path(video).name,
            "sha256": photo.file_sha256(Path(video)),
            "width": src_size[0],
            "height": src_size[1],
            "fps": round(timing.source_fps, 3),
            "seconds": round(timing.seconds, 3),
            "frames": timing.source_frames,
            "frame_interval_spread": timing.interval_spread,
            "frames_at_25fps": n,
            "scale": round(scale, 5),
            "sound": bool(pcm.size),
            "speech_seconds": round(float(speech.sum()) / fps, 2),
        },
        **photo.rig_manifest(rig_lm, mouth_rig, eye_rig, ch, background, out),
        "loop": {
            "fps": fps,
            "frames": len(loop),
            "kind": idle.kind,
            "source_frames": [a, b],
            "similarity_cost": round(idle.cost, 3),
            "fade_frames": len(fade),
            "rest_mouth_frame": rest if idle.bake else None,
            "seam_luma_mad": round(seam, 3),
            "mouth_offsets": np.round(offsets, 2).tolist(),
        },
        "bank": {
            "labels": ("audio+text+landmarks" if transcript else "audio+landmarks")
            if speech.any()
            else "landmarks",
            "harvested_slots": harvested,
            "nearest_slots": from_video - harvested,
            "warped_slots": len(slots) - from_video,
            "labelled_frames": sum(lab is not None for lab in labels),
            "ring_luma_mad_max": round(max(mismatches, default=0.0), 2),
            "slots": slots,
        },
        "checks": {
            "passed": ["file", "duration", "fps", "one_face", "face_in_view"],
            "measures": measures,
            "warnings": [w.to_json() for w in warnings],
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
        "loop_kind": idle.kind,
        "mouth_slots_from_video": harvested,
        "mouth_slots_nearest": from_video - harvested,
        "mouth_slots_warped": len(slots) - from_video,
        "seconds": round(time.perf_counter() - t0, 2),
        "checks_passed": manifest["checks"]["passed"],
        "warnings": [w.to_json() for w in warnings],
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
    order: list[int],
    frame_mat: NDArray[Any],
    key_lm: NDArray[np.float64],
    anchor: tuple[int, ...],
    fade: list[tuple[int, float]],
) -> NDArray[np.float64]:
    """(loop frames, 2): where each loop frame's mouth sits relative to the key frame's, in
    canvas pixels, from the `anchor` landmarks; `fade` (source frame, weight) per final loop
    frame mixes in the frame a cross-faded loop frame blends toward."""
    idx = list(anchor)

    def at(i: int) -> NDArray[np.float64]:
        c = _to_canvas(lm[i], frame_mat)
        return np.asarray(c[idx].mean(0) - key_lm[idx].mean(0), np.float64)

    offs = np.stack([at(i) for i in order])
    for j, (src, wgt) in enumerate(fade):
        k = len(offs) - len(fade) + j
        offs[k] = (1 - wgt) * offs[k] + wgt * at(src)
    return offs


def _clip_box(
    box: tuple[int, int, int, int], inner: tuple[int, int, int, int]
) -> tuple[int, int, int, int]:
    """`box` (x, y, w, h, even-aligned) cut to `inner` (x0, y0, x1, y1), still even."""
    x, y, w, h = box
    x0, y0 = max(x, inner[0] + inner[0] % 2), max(y, inner[1] + inner[1] % 2)
    x1, y1 = min(x + w, inner[2] - inner[2] % 2), min(y + h, inner[3] - inner[3] % 2)
    return x0, y0, max(x1 - x0, 2), max(y1 - y0, 2)


def _luma(rgb: NDArray[np.uint8]) -> NDArray[np.float32]:
    return np.asarray(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), np.float32)
