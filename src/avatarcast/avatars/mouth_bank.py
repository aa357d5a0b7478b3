"""The mouth bank of a video avatar: the person's own mouths, labelled, aligned, blended.

A video of the customer talking shows their real lips, teeth and tongue. Building keeps, for
each mouth sprite slot (9 shapes × openness levels), one frame of the video whose mouth is that
shape at about that openness, aligned to the idle loop's key frame:

1. **Geometry** (`mouth_geometry`): per frame, from the face-mesh landmarks, the inner-lip gap,
   how much narrower the mouth is than at rest, and how far the chin dropped, all in rest
   mouth widths (the face's temple distance cancels zoom).
2. **Labels** (`label_frames`): where the video has speech, the audio lip-sync engine's shape
   for the frame (`speech.audio_lipsync.track_from_audio`: the learned audio → shape model
   behind a voice-activity gate), unless the landmarks contradict it (an open shape on
   closed lips or the reverse); elsewhere (or without sound) the nearest shape by
   geometry among those geometry can tell apart (A, B, C, D, E, F). Openness comes from
   the chin drop relative to the shape's full jaw drop.
3. **Choice** (`plan_bank`): per slot, among frames whose label a neighbour shares, the one
   nearest in openness (within `MAX_LEVEL_GAP`), preferring still frames (least landmark
   motion, so least blur) and frames sound and lips agree on; a slot nothing fits falls
   back to the photo warp of the key frame.
4. **Harvest**: the chosen frame mapped onto the key frame by the similarity transform
   (rotation, scale, shift) of landmarks speech does not move (`STABLE`) (`align`), its
   colour matched to the key frame where no mouth shape moves anything (`still_ring`,
   `match`).

At run time the sprite is blended over the current loop frame with one weight map per avatar
(`blend_mask`: 1 over lips, jaw and chin, fading to 0 well inside the box), so the box border
always shows the loop frame itself: no seam, whatever the loop frame's light or position.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

from avatarcast import FRAME_RATE_HZ
from avatarcast.avatars.photo_warp import MAX_JAW, SHAPE_PARAMS, MouthRig, _smooth
from avatarcast.speech.visemes import SHAPES, Shape

# eye corners, nose bridge and tip, nostrils, nose base, temples: still while speaking
STABLE = (33, 133, 362, 263, 6, 168, 197, 195, 5, 4, 1, 98, 327, 2, 234, 454)
GEOMETRY_SHAPES = (Shape.A, Shape.B, Shape.C, Shape.D, Shape.E, Shape.F)
OPEN_SHAPES = frozenset({Shape.C, Shape.D, Shape.E, Shape.H})
ROUND_SHAPES = frozenset({Shape.E, Shape.F})  # the lips narrow
ROUND_NARROW = 0.04  # narrowing (in rest mouth widths) that tells rounded lips
CLOSED_GAP = 0.03  # inner-lip gap (mouth widths) below which the lips count as together
OPEN_GAP = 0.06  # above it they count as apart
# The face mesh reads the drawn and real openings ~20 % smaller than the warp's jaw drop
# (measured on the test video made with the warp); openness divides by it.
JAW_READ = 0.8
MAX_LEVEL_GAP = 0.34  # openness a harvested frame may differ from its slot's (2 of 6 levels)
# a missing slot takes the nearest harvested mouth within this many mouth widths of summed
# gap/narrowing/jaw difference (about one openness level of D, two of C); else the warp
FILL_MAX = 0.16
EDGE_TAPER = 0.08  # of the box's smaller side: the weights ease to 0 over it at the border
GUESS_COST = 0.5  # bank choice: a frame labelled by the lips alone ranks 3 levels worse


@dataclass(frozen=True)
class Geometry:
    """Per-frame mouth measures in rest mouth widths (NaN where the face was lost)."""

    gap: NDArray[np.float64]
    narrow: NDArray[np.float64]
    drop: NDArray[np.float64]
    motion: NDArray[np.float64]  # mean landmark speed around the mouth, in mouth widths/frame


def mouth_geometry(raw: NDArray[np.float64], rest: NDArray[np.bool_]) -> Geometry:
    """Measures of every frame of `raw` (n, 478, 2); `rest` marks closed-mouth frames that
    define the rest width and chin."""
    unit = np.linalg.norm(raw[:, 454] - raw[:, 234], axis=1)
    width = np.linalg.norm(raw[:, 308] - raw[:, 78], axis=1) / unit
    gap = np.linalg.norm(raw[:, 14] - raw[:, 13], axis=1) / unit
    chin = np.linalg.norm(raw[:, 152] - raw[:, 2], axis=1) / unit
    ok = rest & ~np.isnan(width)
    if not ok.any():
        ok = ~np.isnan(width)
    w0, c0 = float(np.median(width[ok])), float(np.median(chin[ok]))
    lips = raw[:, [0, 13, 14, 17, 61, 78, 291, 308, 152]] / (unit * w0)[:, None, None]
    speed = np.full(len(raw), np.nan)
    speed[1:] = np.linalg.norm(np.diff(lips, axis=0), axis=2).mean(axis=1)
    speed[0] = speed[1] if len(raw) > 1 else 0.0
    return Geometry(gap / w0, 1.0 - width / w0, (chin - c0) / w0, speed)


def openness_of(shape: Shape, drop: float) -> float:
    """Openness (0..1) of a frame labelled `shape` whose chin dropped by `drop`."""
    jaw = SHAPE_PARAMS[shape].jaw
    if jaw <= 0:
        return 1.0  # A: pressed lips look the same at every level
    return float(np.clip(drop / (jaw * JAW_READ), 0.0, 1.0))


def _nearest_by_geometry(gap: float, narrow: float, drop: float) -> tuple[Shape, float]:
    best = (Shape.A, 1.0, np.inf)
    for shape in GEOMETRY_SHAPES:
        p = SHAPE_PARAMS[shape]
        for o in np.linspace(0.1, 1.0, 10):
            d = (
                abs(gap - max(p.jaw + p.lift, 0.0) * o * JAW_READ) / 0.04
                + abs(narrow - p.narrow * o) / 0.04
                + abs(drop - max(p.jaw, 0.0) * o * JAW_READ) / 0.05
            )
            if d < best[2]:
                best = (shape, float(o), d)
    return best[0], best[1]


def audio_shapes(
    pcm: NDArray[np.int16], n_frames: int, fps: float, transcript: str | None = None
) -> list[Shape | None]:
    """The audio lip-sync engine's shape at each video frame (None where it hears no
    speech), from 16 kHz mono `pcm` that starts with the video. With the English
    `transcript` of what is said, the text's shapes are timed on the audio instead (more
    accurate: 0.89-0.93 vs 0.82-0.85 frame accuracy on the test videos)."""
    from avatarcast.speech.audio_lipsync import track_from_audio

    track = track_from_audio(pcm, text=transcript or None) if pcm.size else []
    out: list[Shape | None] = []
    for i in range(n_frames):
        k = int(i * FRAME_RATE_HZ / fps)
        pose = track[k] if k < len(track) else None
        speaking = pose is not None and (pose.shape is not Shape.X or pose.open > 0)
        out.append(pose.shape if speaking and pose is not None else None)
    return out


@dataclass(frozen=True)
class Label:
    """A frame's mouth: its shape, openness, and whether the sound and the lips agree on it
    (False: the lips alone decided, because the sound was silent, absent or contradicted)."""

    shape: Shape
    openness: float
    heard: bool


def label_frames(geo: Geometry, heard: list[Shape | None] | None) -> list[Label | None]:
    """A `Label` per frame, or None (face lost, or lips together in silence)."""
    out: list[Label | None] = []
    for i in range(len(geo.gap)):
        gap, narrow, drop = float(geo.gap[i]), float(geo.narrow[i]), float(geo.drop[i])
        if np.isnan(gap):
            out.append(None)
            continue
        shape = heard[i] if heard is not None else None
        if shape is not None:
            p = SHAPE_PARAMS[shape]
            widest = max(p.jaw + p.lift, 0.0) * JAW_READ * 1.25 + 0.02
            contradicted = (
                (shape in OPEN_SHAPES and gap < CLOSED_GAP)
                or (shape in (Shape.A, Shape.X) and gap > OPEN_GAP)
                or gap > widest  # far more open than the shape ever is
                or (shape in ROUND_SHAPES) != (narrow > ROUND_NARROW)  # rounded or not
            )
            if not contradicted:
                out.append(Label(shape, openness_of(shape, drop), True))
                continue
        elif gap < CLOSED_GAP and narrow < 0.05:
            out.append(None)  # at rest: the idle loop's own mouth covers it
            continue
        guess, openness = _nearest_by_geometry(gap, narrow, drop)
        out.append(Label(guess, openness, False))
    return out


@dataclass(frozen=True)
class Choice:
    """The frame chosen for one (shape, level) slot."""

    frame: int
    openness: float


def plan_bank(
    labels: list[Label | None],
    geo: Geometry,
    levels: int,
    usable: NDArray[np.bool_],
) -> dict[tuple[Shape, int], Choice]:
    """(shape, level) → the frame to harvest; slots absent fall back to the warp.

    Candidates are frames whose label a neighbouring frame shares (a lone label sits on a
    transition, where labels are least sure and the lips most blurred); among them, the
    nearest openness, the stillest lips, and — when the video has speech — frames the sound
    and the lips agree on."""
    motion = np.nan_to_num(geo.motion, nan=1.0)
    any_heard = any(lab is not None and lab.heard for lab in labels)

    def steady(i: int) -> bool:
        near = [labels[j] for j in (i - 1, i + 1) if 0 <= j < len(labels)]
        me = labels[i]
        return me is not None and any(n is not None and n.shape is me.shape for n in near)

    plan: dict[tuple[Shape, int], Choice] = {}
    for shape in SHAPES:
        cands = [
            (i, lab.openness, 0.0 if lab.heard or not any_heard else GUESS_COST)
            for i, lab in enumerate(labels)
            if lab is not None and lab.shape is shape and usable[i] and steady(i)
        ]
        if not cands:
            continue
        idx = np.array([c[0] for c in cands])
        opens = np.array([c[1] for c in cands])
        extra = np.array([c[2] for c in cands])
        for k in range(1, levels + 1):
            miss = np.abs(opens - k / levels)
            cost = miss + 2.0 * motion[idx] + extra
            j = int(np.argmin(np.where(miss <= MAX_LEVEL_GAP, cost, np.inf)))
            if miss[j] <= MAX_LEVEL_GAP:
                plan[(shape, k)] = Choice(int(idx[j]), float(opens[j]))
    return plan


def similarity(src: NDArray[np.float64], dst: NDArray[np.float64]) -> NDArray[np.float64]:
    """The 2×3 rotation + uniform scale + shift taking points `src` onto `dst` (least
    squares, Umeyama)."""
    ms, md = src.mean(0), dst.mean(0)
    a, b = src - ms, dst - md
    cov = b.T @ a / len(src)
    u, sv, vt = np.linalg.svd(cov)
    d = np.sign(np.linalg.det(u @ vt))
    fix = np.diag([1.0, d])
    rot = u @ fix @ vt
    scale = float(np.trace(np.diag(sv) @ fix) / (a**2).sum(1).mean())
    mat = np.empty((2, 3))
    mat[:, :2] = scale * rot
    mat[:, 2] = md - mat[:, :2] @ ms
    return mat


def blend_mask(
    rig: MouthRig,
    warped: list[NDArray[np.uint8]],
    key: NDArray[np.uint8],
    half_width: float | None = None,
) -> NDArray[np.uint8]:
    """Weights (h+1, w+1) over the sprite box plus its spare top row and left column: 255 over
    the lips, jaw and chin (an ellipse in the mouth's own frame, `half_width` wide on each
    side, by default the jaw's; grown to cover whatever the warped sprites change), falling
    to 0 before the box border, over `EDGE_TAPER` of the box's size on every side (a box
    cut by the picture's edge still has no hard edge)."""
    bx, by, bw, bh = rig.box
    gx, gy = rig.frame.grid((bx - 1, by - 1, bw + 1, bh + 1))
    width = 2 * rig.a
    jw = rig.jw if half_width is None else half_width
    top = -0.8 * rig.hn
    bottom = rig.hc + 1.4 * MAX_JAW * width
    cy, ry = (top + bottom) / 2, (bottom - top) / 2
    r = np.sqrt((gx / jw) ** 2 + ((gy - cy) / ry) ** 2)
    ellipse = 1.0 - _smooth(0.75, 1.0, r)
    changed = np.zeros(ellipse.shape, np.float32)
    for w in warped:
        diff = np.abs(w.astype(np.int16) - key.astype(np.int16)).max(axis=2) > 2
        changed = np.maximum(changed, diff.astype(np.float32))
    if changed.any():
        changed = np.asarray(cv2.dilate(changed, np.ones((7, 7), np.uint8)), np.float32)
        changed = np.asarray(cv2.GaussianBlur(changed, (0, 0), 2.0), np.float32)
        changed = np.minimum(changed * 2.0, 1.0, dtype=np.float32)
    weight = np.maximum(ellipse, changed)
    taper = max(4.0, EDGE_TAPER * min(bw, bh))
    ys = np.arange(bh + 1, dtype=np.float32)[:, None]
    xs = np.arange(bw + 1, dtype=np.float32)[None, :]
    edge = np.minimum(np.minimum(ys - 2, bh - 1 - ys), np.minimum(xs - 2, bw - 1 - xs))
    weight = weight * np.clip(edge / taper, 0.0, 1.0)
    # zero on the outer two pixels, so the box border always shows the frame beneath
    weight[:3, :] = 0
    weight[-2:, :] = 0
    weight[:, :3] = 0
    weight[:, -2:] = 0
    return np.asarray(np.round(weight * 255), np.uint8)


def still_ring(rig: MouthRig, mask: NDArray[np.uint8]) -> NDArray[np.bool_]:
    """The outer blend ring (weights 5-25 %) above the mouth line: cheeks and nose base, which
    no mouth shape moves, so harvested and key frame should agree there."""
    bx, by, bw, bh = rig.box
    _, gy = rig.frame.grid((bx - 1, by - 1, bw + 1, bh + 1))
    return np.asarray((mask > 12) & (mask < 64) & (gy < 0), np.bool_)


def align(
    frame: NDArray[np.uint8],
    lm: NDArray[np.float64],
    key_lm: NDArray[np.float64],
    box: tuple[int, int, int, int],
) -> NDArray[np.uint8]:
    """The mouth of `frame` (source pixels, landmarks `lm`) mapped onto the key frame
    (landmarks `key_lm`): the sprite box plus its spare top row and left column."""
    mat = similarity(lm[list(STABLE)], key_lm[list(STABLE)])
    scale = float(np.sqrt(abs(np.linalg.det(mat[:, :2]))))
    if scale < 0.9:  # shrinking: pre-filter against aliasing (warpAffine samples points)
        frame = np.asarray(cv2.GaussianBlur(frame, (0, 0), 0.45 / scale), np.uint8)
    bx, by, bw, bh = box
    mat[:, 2] -= (bx - 1, by - 1)
    out = cv2.warpAffine(
        frame, mat, (bw + 1, bh + 1), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    return np.asarray(out, np.uint8)


def match(
    aligned: NDArray[np.uint8], key_box: NDArray[np.uint8], ring: NDArray[np.bool_]
) -> tuple[NDArray[np.uint8], float]:
    """`aligned` with the key frame's light and white balance (mean colour difference over
    `ring`, see `still_ring`), and the remaining mismatch there (mean |luma|)."""
    if not ring.any():
        return aligned, 0.0
    out = aligned.astype(np.float32)
    key = key_box.astype(np.float32)
    out += (key[ring] - out[ring]).mean(axis=0)
    sprite = np.clip(np.round(out), 0, 255).astype(np.uint8)
    luma = np.array([0.299, 0.587, 0.114], np.float32)
    mismatch = float(np.abs((sprite[ring].astype(np.float32) - key[ring]) @ luma).mean())
    return sprite, mismatch


def _slot_geometry(shape: Shape, openness: float) -> NDArray[np.float64]:
    """Lip gap, narrowing and jaw drop (mouth widths) of `shape` at `openness`."""
    p = SHAPE_PARAMS[shape]
    return np.array([max(p.jaw + p.lift, 0.0) * openness, p.narrow * openness, p.jaw * openness])


def _fill_distance(shape: Shape, openness: float, donor: Shape, donor_open: float) -> float:
    p, q = SHAPE_PARAMS[shape], SHAPE_PARAMS[donor]
    d = float(np.abs(_slot_geometry(donor, donor_open) - _slot_geometry(shape, openness)).sum())
    return d + 0.05 * ((p.teeth != q.teeth) + (p.tongue != q.tongue))


def fill_missing(
    plan: dict[tuple[Shape, int], Choice], levels: int, max_dist: float = FILL_MAX
) -> dict[tuple[Shape, int], tuple[Shape, int]]:
    """For each slot the video never shows, the harvested slot whose mouth is nearest in
    geometry (gap, narrowing, jaw drop at the slot's openness; a different kind of teeth or
    tongue counts as 0.05 mouth widths more): a short recording shows few shapes, and the
    person's own nearest mouth looks more like them than a warp of their closed lips.
    Slots with no donor within `max_dist` stay out (the warp fills them)."""
    out: dict[tuple[Shape, int], tuple[Shape, int]] = {}
    if not plan:
        return out
    donors = list(plan.items())
    for shape in SHAPES:
        for k in range(1, levels + 1):
            if (shape, k) in plan:
                continue
            dists = [_fill_distance(shape, k / levels, s2, c.openness) for (s2, _), c in donors]
            j = int(np.argmin(dists))
            if dists[j] <= max_dist:
                out[(shape, k)] = donors[j][0]
    return out
