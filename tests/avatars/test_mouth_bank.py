"""The mouth bank's pure parts: alignment, labelling rules, slot choice."""

from __future__ import annotations

import numpy as np

from avatarcast.avatars.mouth_bank import (
    Geometry,
    Label,
    label_frames,
    plan_bank,
    similarity,
)
from avatarcast.speech.visemes import Shape


def test_similarity_recovers_rotation_scale_and_shift() -> None:
    rng = np.random.default_rng(1)
    src = rng.uniform(0, 500, (16, 2))
    angle, scale, shift = np.radians(4.0), 0.8, np.array([12.5, -7.0])
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    dst = src @ (scale * rot).T + shift
    mat = similarity(src, dst)
    assert np.allclose(mat[:, :2], scale * rot, atol=1e-9)
    assert np.allclose(mat[:, 2], shift, atol=1e-6)
    noisy = dst + rng.normal(0, 0.5, dst.shape)  # landmark jitter: still close
    assert np.allclose(similarity(src, noisy)[:, 2], shift, atol=1.5)


def geometry(rows: list[tuple[float, float, float]]) -> Geometry:
    gap, narrow, drop = (np.array(col, np.float64) for col in zip(*rows, strict=True))
    return Geometry(gap, narrow, drop, np.zeros(len(rows)))


def test_heard_shape_is_kept_unless_the_lips_contradict_it() -> None:
    geo = geometry(
        [
            (0.15, -0.03, 0.12),  # open, unrounded: C as heard
            (0.00, 0.00, 0.00),  # C heard on closed lips: contradicted
            (0.12, 0.10, 0.08),  # C heard on rounded lips: contradicted (rounded)
            (0.04, 0.12, 0.03),  # F heard on rounded lips: kept
            (0.20, 0.00, 0.15),  # A heard on open lips: contradicted
            (0.00, 0.00, 0.00),  # silence, lips together: nothing to harvest
            (0.25, -0.02, 0.20),  # silence, open lips: labelled by geometry
        ]
    )
    heard = [Shape.C, Shape.C, Shape.C, Shape.F, Shape.A, None, None]
    labels = label_frames(geo, heard)
    assert labels[0] == Label(Shape.C, labels[0].openness, True)  # type: ignore[union-attr]
    assert labels[1] is not None and not labels[1].heard and labels[1].shape is not Shape.C
    assert labels[2] is not None and not labels[2].heard
    assert labels[2].shape in (Shape.E, Shape.F)  # rounded lips → a rounded shape
    assert labels[3] is not None and labels[3].shape is Shape.F and labels[3].heard
    assert labels[4] is not None and not labels[4].heard and labels[4].shape is not Shape.A
    assert labels[5] is None
    assert labels[6] is not None and labels[6].shape in (Shape.C, Shape.D) and not labels[6].heard
    # openness follows the chin: C's full jaw drop reads as 0.26 * 0.8 widths
    assert 0.5 < labels[0].openness < 0.65  # type: ignore[union-attr]


def test_plan_prefers_steady_agreed_frames_and_leaves_far_levels_to_the_warp() -> None:
    geo = geometry([(0.1, 0.0, 0.1)] * 6)
    c = Shape.C
    labels: list[Label | None] = [
        Label(c, 0.5, True),  # lone (neighbours differ): on a transition, skipped
        Label(Shape.B, 0.3, True),
        Label(c, 0.52, False),  # steady, but the lips alone decided
        Label(c, 0.48, False),
        Label(c, 0.5, True),  # steady and agreed: preferred
        Label(c, 0.5, True),
    ]
    plan = plan_bank(labels, geo, 6, np.ones(6, bool))
    assert plan[(c, 3)].frame in (4, 5)  # level 3 = openness 0.5
    assert (c, 6) not in plan  # 1.0 is more than two levels from any C frame: warped
    assert (Shape.B, 2) not in plan  # the only B frame is lone
