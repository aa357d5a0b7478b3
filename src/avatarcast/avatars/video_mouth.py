"""The mouth of a video avatar: its rest mouth over a talking loop, and the bank's sprites.

- `rest_frame`, `with_mouth_of`, `bake`: when the idle loop is made of talking frames (a
  ping-pong of the calmest ones, `avatars.video_loop`), the person's own most closed, still
  mouth is aligned to the loop's key frame and blended over every loop frame's mouth box,
  moved with the head like a speaking sprite; outside the box the loop frame's own pixels stay.
- `mouth_sprites`: per (shape, level) slot the harvested mouth, else the nearest harvested
  one (`mouth_bank.fill_missing`), else the warp of the key frame; and the blend weights.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from avatarcast.avatars import mouth_bank, photo
from avatarcast.avatars.asset import mouth_index
from avatarcast.avatars.photo import MOUTH_LEVELS
from avatarcast.avatars.photo_warp import MouthRig
from avatarcast.speech.visemes import SHAPES, Shape

# mean |luma| on the still ring (cheeks, nose base) after colour matching above which a
# harvested mouth counts as misaligned (the synthetic test video: ~3.7; real clips whose
# head turns: 10-33 before frames were chosen by pose)
MAX_RING_MISMATCH = 9.0
# half width of the blend over a real mouth, in half mouth widths: past the lip corners but
# short of the jaw's outline, which a harvested frame rarely has where the loop frame has it
LIPS_HALF_WIDTH = 1.4


def rest_frame(geo: mouth_bank.Geometry, speech: NDArray[np.bool_], ok: NDArray[np.bool_]) -> int:
    """The frame whose lips are most closed and still (quiet frames first): the source of
    the closed mouth blended over a ping-pong loop made of talking frames."""
    cost = (
        np.nan_to_num(geo.gap, nan=9.0)
        + 0.5 * np.abs(np.nan_to_num(geo.drop, nan=9.0))
        + np.abs(np.nan_to_num(geo.narrow, nan=9.0))
        + np.nan_to_num(geo.motion, nan=9.0)
        + 0.02 * speech
    )
    return int(np.argmin(np.where(ok, cost, np.inf)))


def with_mouth_of(key_lm: NDArray[np.float64], lm: NDArray[np.float64]) -> NDArray[np.float64]:
    """`key_lm` with the points below the nose tip taken from `lm` mapped onto it by the
    still landmarks: the key frame's face with another frame's mouth (for the mouth rig)."""
    mat = mouth_bank.similarity(lm[list(mouth_bank.STABLE)], key_lm[list(mouth_bank.STABLE)])
    moved = lm @ mat[:, :2].T + mat[:, 2]
    out = key_lm.copy()
    lower = key_lm[:, 1] > key_lm[1, 1]
    out[lower] = moved[lower]
    return out


def bake(
    loop: NDArray[np.uint8],
    sprite: NDArray[np.uint8],
    weight: NDArray[np.uint8],
    box: tuple[int, int, int, int],
    offsets: NDArray[np.float64],
) -> None:
    """Blend `sprite` (the mouth box plus its spare row/column) over every loop frame's
    mouth, moved by that frame's whole-pixel offset, as `VideoAvatar` blends speech."""
    bx, by, bw, bh = box
    w = weight.astype(np.float32)[..., None] / 255.0
    spr = sprite.astype(np.float32)
    for frame, (dx, dy) in zip(loop, np.round(offsets).astype(int), strict=True):
        region = frame[by - 1 + dy : by + bh + dy, bx - 1 + dx : bx + bw + dx]
        mixed = region.astype(np.float32) * (1 - w) + spr * w
        region[...] = np.clip(np.round(mixed), 0, 255).astype(np.uint8)


def blend_half_width(rig: MouthRig, lip_half_px: float) -> float:
    """Half width of the blend over real mouths: past the widest lips the loop and the bank
    show (`lip_half_px`, canvas pixels) and the rig's corners by `LIPS_HALF_WIDTH`, never
    past the jaw."""
    return float(min(rig.jw, max(LIPS_HALF_WIDTH * rig.a, 1.25 * lip_half_px)))


def mouth_sprites(
    src: NDArray[np.uint8],
    key_box: NDArray[np.uint8],
    mouth_rig: MouthRig,
    plan: dict[tuple[Shape, int], mouth_bank.Choice],
    aligned: dict[int, NDArray[np.uint8]],
    half: float,
) -> tuple[NDArray[np.uint8], NDArray[np.uint8], list[dict[str, Any]], list[float]]:
    """The sprites (rest + 9 shapes × levels), the blend weights, the manifest's slot list
    and the harvested mouths' ring mismatches: each slot harvested, else the nearest
    harvested mouth (`mouth_bank.fill_missing`), else the warp of the key frame.

    A harvested mouth that still differs from the key frame on the still ring by more
    than `MAX_RING_MISMATCH` after colour matching is misaligned (the head turned, a blur):
    it is dropped and its slot filled like a missing one. `half`: the blend's half width
    (`blend_half_width`)."""
    # the still ring of the jaw-wide blend: cheeks and nose base (the narrower blend's ring
    # would reach the lip corners, which speech moves)
    ring0 = mouth_bank.still_ring(mouth_rig, mouth_bank.blend_mask(mouth_rig, [], key_box))
    plan = {
        slot: c
        for slot, c in plan.items()
        if mouth_bank.match(aligned[c.frame], key_box, ring0)[1] <= MAX_RING_MISMATCH
    }
    # the person's own nearest mouth, however far, rather than drawn teeth (the warp is
    # left for a recording with no mouth to harvest at all)
    fills = mouth_bank.fill_missing(plan, MOUTH_LEVELS, max_dist=np.inf)
    mh, mw = key_box.shape[:2]
    mouth = np.empty((1 + len(SHAPES) * MOUTH_LEVELS, mh, mw, 3), np.uint8)
    mouth[0] = key_box
    warped = []
    for si, shape in enumerate(SHAPES):
        for k in range(1, MOUTH_LEVELS + 1):
            if (shape, k) in plan or (shape, k) in fills:
                continue
            sprite = photo.pasted_sprite(
                src, mouth_rig.box, mouth_rig.warp(src, shape, k / MOUTH_LEVELS)
            )
            mouth[mouth_index(si, k, MOUTH_LEVELS)] = sprite
            warped.append(sprite)
    alpha = mouth_bank.blend_mask(mouth_rig, warped, key_box, None if warped else half)
    ring = mouth_bank.still_ring(mouth_rig, mouth_bank.blend_mask(mouth_rig, warped, key_box))
    slots: list[dict[str, Any]] = []
    mismatches = []
    for si, shape in enumerate(SHAPES):
        for k in range(1, MOUTH_LEVELS + 1):
            donor = fills.get((shape, k))
            choice = plan.get(donor or (shape, k))
            if choice is None:
                slots.append({"shape": shape.value, "level": k, "source": "warp"})
                continue
            sprite, mismatch = mouth_bank.match(aligned[choice.frame], key_box, ring)
            mouth[mouth_index(si, k, MOUTH_LEVELS)] = sprite
            slot: dict[str, Any] = {"shape": shape.value, "level": k, "frame": choice.frame}
            if donor is None:
                slot |= {"source": "video", "openness": round(choice.openness, 3)}
                slot["ring_luma_mad"] = round(mismatch, 2)
                mismatches.append(mismatch)
            else:
                slot |= {"source": "nearest", "from": f"{donor[0].value}{donor[1]}"}
            slots.append(slot)
    return mouth, alpha, slots, mismatches
