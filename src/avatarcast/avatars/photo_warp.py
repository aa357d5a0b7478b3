"""Warping a real face: the nine mouth shapes (with an inner mouth drawn in) and eye blinks.

Everything works on the framed portrait ("canvas", RGB) and its 478 face-mesh landmarks in
canvas pixels. A warp is a backward map (for each output pixel, where to sample the photo)
computed in a face-local frame (x along the mouth or eye line, y down), so a slightly rolled
head still opens its jaw along its own axis.

Mouth model (all displacements fade to exactly zero before the sprite box's border, so pasting
a sprite leaves no seam):
- the photo's own lip gap (a smile showing teeth) is first closed: the upper lip comes down
  and the lower lip and jaw come up by half the gap each, so every shape starts from lips
  together;
- the lower lip and chin then drop by `jaw` (lips open in a lens shape, zero at the corners;
  the chin moves rigidly and slides over the neck), the upper lip lifts by `lift`, and the
  mouth narrows by `narrow` (rounded E, puckered F);
- output pixels that neither lip covers are the opening: painted as a dark cavity with upper
  teeth (and lower teeth, tongue) shaded to sit inside the lips.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

from avatarcast.speech.visemes import Shape

F32 = NDArray[np.float32]
Box = tuple[int, int, int, int]  # x, y, w, h in canvas pixels

UPPER_INNER = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308)
LOWER_INNER = (78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308)
# eyes: (corner, corner, upper lid, lower lid) as the face mesh numbers them
EYES = (
    (33, 133, (246, 161, 160, 159, 158, 157, 173), (7, 163, 144, 145, 153, 154, 155)),
    (362, 263, (398, 384, 385, 386, 387, 388, 466), (382, 381, 380, 374, 373, 390, 249)),
)


@dataclass(frozen=True)
class ShapeParams:
    """A mouth shape at full openness, lengths in mouth widths (scaled by openness)."""

    jaw: float  # lower lip + chin drop
    lift: float  # upper lip raise
    narrow: float  # 0 = normal width, 0.3 = corners 30 % closer to the centre
    teeth: str  # "upper", "both" (teeth together), "fill" (upper teeth on the lower lip)
    tongue: str  # "", "low", "high"


SHAPE_PARAMS: dict[Shape, ShapeParams] = {
    Shape.A: ShapeParams(-0.015, -0.01, 0.02, "upper", ""),  # lips pressed together
    Shape.B: ShapeParams(0.09, 0.02, 0.0, "both", ""),
    Shape.C: ShapeParams(0.26, 0.04, 0.0, "upper", ""),
    Shape.D: ShapeParams(0.42, 0.05, 0.06, "upper", "low"),
    Shape.E: ShapeParams(0.20, 0.03, 0.18, "upper", ""),
    Shape.F: ShapeParams(0.12, 0.02, 0.32, "upper", ""),
    Shape.G: ShapeParams(0.07, 0.0, 0.0, "fill", ""),  # lower lip tucked under the teeth
    Shape.H: ShapeParams(0.24, 0.04, 0.04, "upper", "high"),
    Shape.X: ShapeParams(0.06, 0.01, 0.0, "upper", ""),
}
MAX_JAW = max(p.jaw for p in SHAPE_PARAMS.values())


def _smooth(e0: float | F32, e1: float | F32, x: F32) -> F32:
    """Hermite smoothstep from 0 at e0 to 1 at e1 (either order)."""
    t = np.clip((x - e0) / (np.asarray(e1, np.float32) - e0 + 1e-6), 0.0, 1.0)
    return (t * t * (3.0 - 2.0 * t)).astype(np.float32)


class LocalFrame:
    """Face-local coordinates: origin `o`, x along unit vector `ex`, y perpendicular, down."""

    def __init__(self, o: NDArray[np.float64], ex: NDArray[np.float64]) -> None:
        self.o = o
        self.ex = ex / np.linalg.norm(ex)
        self.ey = np.array([-self.ex[1], self.ex[0]])

    def to_local(self, p: NDArray[np.float64]) -> NDArray[np.float64]:
        d = p - self.o
        return np.stack([d @ self.ex, d @ self.ey], axis=-1)

    def grid(self, box: Box) -> tuple[F32, F32]:
        x0, y0, w, h = box
        gx, gy = np.meshgrid(
            np.arange(x0, x0 + w, dtype=np.float32) - self.o[0],
            np.arange(y0, y0 + h, dtype=np.float32) - self.o[1],
        )
        return (gx * self.ex[0] + gy * self.ex[1]).astype(np.float32), (
            gx * self.ey[0] + gy * self.ey[1]
        ).astype(np.float32)

    def to_canvas(self, lx: F32, ly: F32) -> tuple[F32, F32]:
        cx = self.o[0] + lx * self.ex[0] + ly * self.ey[0]
        cy = self.o[1] + lx * self.ex[1] + ly * self.ey[1]
        return cx.astype(np.float32), cy.astype(np.float32)


def _arr(v: float) -> F32:
    return np.array([v], np.float32)


def _contour(local: NDArray[np.float64], idx: tuple[int, ...]) -> tuple[F32, F32]:
    pts = local[list(idx)]
    order = np.argsort(pts[:, 0])
    return pts[order, 0].astype(np.float32), pts[order, 1].astype(np.float32)


def _even_box(x0: float, y0: float, x1: float, y1: float) -> Box:
    """An even-aligned box (chroma is 2×2) covering [x0, x1) × [y0, y1)."""
    bx, by = int(np.floor(x0)) & ~1, int(np.floor(y0)) & ~1
    w, h = int(np.ceil(x1)) - bx, int(np.ceil(y1)) - by
    return bx, by, w + w % 2, h + h % 2


class MouthRig:
    """The mouth/jaw geometry of one face, and its warps."""

    def __init__(self, lm: NDArray[np.float64]) -> None:
        c = (lm[78] + lm[308]) / 2
        self.frame = LocalFrame(c, lm[308] - lm[78])
        loc = self.frame.to_local(lm)
        self.a = float(np.linalg.norm(lm[308] - lm[78]) / 2)  # half mouth width
        self.ux, self.uy = _contour(loc, UPPER_INNER)
        self.lx, self.ly = _contour(loc, LOWER_INNER)
        mid0 = (np.interp(0, self.ux, self.uy) + np.interp(0, self.lx, self.ly)) / 2
        self.tu = max(2.0, mid0 - loc[0, 1])  # upper lip thickness (to its top, point 0)
        self.hn = max(self.tu + 3, mid0 - loc[2, 1])  # to the nose base (point 2)
        self.tl = max(2.0, loc[17, 1] - mid0)  # lower lip thickness
        self.hc = max(self.tl + 3, loc[152, 1] - mid0)  # to the chin
        self.jw = max(1.6 * self.a, abs(loc[397, 0] - loc[172, 0]) / 2)  # jaw half width
        width = 2 * self.a
        corners = [
            self.frame.to_canvas(_arr(sx * 1.08 * self.jw), _arr(sy))
            for sx in (-1, 1)
            for sy in (mid0 - 0.95 * self.hn, mid0 + 1.5 * self.hc + 1.7 * MAX_JAW * width)
        ]
        xs = [float(p[0][0]) for p in corners]
        ys = [float(p[1][0]) for p in corners]
        self.box = _even_box(min(xs) - 2, min(ys) - 2, max(xs) + 3, max(ys) + 3)

    def _edges(self, x: F32) -> tuple[F32, F32]:
        return (
            np.interp(x, self.ux, self.uy).astype(np.float32),
            np.interp(x, self.lx, self.ly).astype(np.float32),
        )

    def warp(self, src: NDArray[np.uint8], shape: Shape, openness: float) -> NDArray[np.uint8]:
        """The mouth box of `src` showing `shape` at `openness` (RGB, box-sized)."""
        p = SHAPE_PARAMS[shape]
        width = 2 * self.a
        jaw, lift = p.jaw * width * openness, p.lift * width * openness
        sx = 1.0 - p.narrow * openness
        gx, gy = self.frame.grid(self.box)
        a_s = self.a * sx

        def lens(x: F32) -> F32:  # lip opening profile: 1 at the centre, 0 at the corners
            return np.sqrt(np.clip(1.0 - (x / a_s) ** 2, 0.0, 1.0)).astype(np.float32)

        def half_gap(x: F32) -> F32:
            up, lo = self._edges(x)
            return np.maximum(lo - up, 0.0) / 2

        g0 = float(half_gap(np.zeros(1, np.float32))[0])
        reach = min(1.9 * self.a, 0.95 * self.jw)

        def dx(x: F32, v: F32) -> F32:
            fx = 1.0 - _smooth(self.a, reach, np.abs(x))
            fv = _smooth(-0.9 * self.hn, -self.tu, v) * (1.0 - _smooth(self.tl, self.hc, v))
            return ((sx - 1.0) * x * fx * fv).astype(np.float32)

        def mid(x: F32) -> F32:
            up, lo = self._edges(x)
            return (up + lo) / 2

        def d_upper(x: F32, y: F32) -> F32:
            v = y - mid(x)
            return (half_gap(x) - lift * lens(x)) * _smooth(-0.9 * self.hn, -self.tu, v)

        def d_lower(x: F32, y: F32) -> F32:
            v = np.maximum(y - mid(x), 0.0)
            lip = -half_gap(x) + jaw * lens(x)
            jawprof = 1.0 - _smooth(0.55 * self.jw, self.jw, np.abs(x))
            whole = (jaw - g0) * jawprof
            # the lower lip moves with the jaw at the centre; below the corners (which stay)
            # the skin stretches over most of the way to the chin
            span = self.tl + (0.8 * self.hc - self.tl) * (1.0 - lens(x))
            t = _smooth(0.0, span, v)
            # past the chin the jaw slides over the neck; the fade is long enough not to fold
            chin = 1.0 - _smooth(self.hc, 1.5 * self.hc + 1.6 * max(jaw, 0.0), v)
            return ((lip + (whole - lip) * t) * chin).astype(np.float32)

        def solve(d_fn: Callable[[F32, F32], F32]) -> tuple[F32, F32]:
            """Invert output = source + displacement(source): the small horizontal part by
            fixed-point iteration, the vertical part (which may stretch the skin below the
            corners several-fold) by Newton's method per pixel."""
            xs = gx.copy()
            v0 = gy - mid(gx)
            for _ in range(3):
                xs = gx - dx(xs, v0)
            ys = gy.copy()
            for _ in range(6):
                f = ys + d_fn(xs, ys) - gy
                slope = 1.0 + (d_fn(xs, ys + 0.5) - d_fn(xs, ys - 0.5))
                ys = ys - f / np.maximum(slope, 0.2)
            return xs, ys

        ux_, uy_ = solve(d_upper)
        lx_, ly_ = solve(d_lower)
        du = uy_ - self._edges(ux_)[0]  # > 0: the upper rule samples below the upper lip
        dl = self._edges(lx_)[1] - ly_  # > 0: the lower rule samples above the lower lip
        use_u = (du <= 0) | ((dl > 0) & (du < dl))
        mx, my = self.frame.to_canvas(np.where(use_u, ux_, lx_), np.where(use_u, uy_, ly_))
        out = cv2.remap(src, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        # coverage of the opening: anti-aliased over one pixel, and only between the corners
        # (beyond them the lips meet; narrowing would otherwise open slivers at the sides)
        cover = np.clip(np.minimum(du, dl), 0.0, 1.0) * np.clip(a_s - np.abs(gx), 0.0, 1.0)
        cover = cover[..., None]
        if float(cover.max()) <= 0.0:
            return np.asarray(out, np.uint8)
        inner = self._inner(gx, np.maximum(du, 0.0), np.maximum(dl, 0.0), a_s, p)
        blended = out.astype(np.float32) * (1 - cover) + inner * cover
        return np.clip(blended + 0.5, 0, 255).astype(np.uint8)

    def _inner(self, x: F32, du: F32, dl: F32, a_s: float, p: ShapeParams) -> F32:
        """The inside of the open mouth: cavity, tongue, teeth (RGB float)."""
        h = du + dl + 1e-3
        side = np.clip(np.abs(x) / max(a_s, 1.0), 0.0, 1.0)
        depth = np.clip(np.minimum(du, dl) / 6.0, 0.0, 1.0)
        cavity = np.array([70, 34, 34], np.float32) * (1.0 - 0.6 * depth)[..., None]
        img = cavity * (1.0 - 0.35 * side)[..., None]
        teeth_w = 0.8 * a_s
        tooth_shade = (1.0 - 0.5 * np.clip(np.abs(x) / teeth_w, 0, 1) ** 4)[..., None]
        if p.tongue:
            if p.tongue == "low":
                cy, ry, rx = h - 0.05 * h, 0.45 * h, 0.62 * a_s
                ty = du
            else:  # tongue tip up behind the upper teeth
                cy, ry, rx = 0.35 * h, 0.28 * h, 0.38 * a_s
                ty = du
            e = (x / rx) ** 2 + ((ty - cy) / (ry + 1e-3)) ** 2
            t_alpha = np.clip((1.0 - e) * 4.0, 0.0, 1.0)[..., None]
            tongue = np.array([168, 78, 82], np.float32) * (0.75 + 0.25 * (1 - side))[..., None]
            img = img * (1 - t_alpha) + tongue * t_alpha
        teeth_color = np.array([222, 214, 198], np.float32)
        width = 2 * self.a
        if p.teeth == "fill":
            th = h
        elif p.teeth == "both":
            th = 0.5 * h - 0.5
        else:
            th = np.minimum(0.42 * h, 0.13 * width)
        in_x = np.clip((teeth_w - np.abs(x)) + 0.5, 0.0, 1.0)
        up_alpha = (np.clip(th - du + 0.5, 0.0, 1.0) * in_x)[..., None]
        up_shade = (0.72 + 0.28 * np.clip(du / np.maximum(th, 1.0), 0, 1))[..., None]
        img = img * (1 - up_alpha) + teeth_color * up_shade * tooth_shade * up_alpha
        if p.teeth == "both":
            lo_alpha = (np.clip(th - dl + 0.5, 0.0, 1.0) * in_x)[..., None]
            img = img * (1 - lo_alpha) + teeth_color * 0.8 * tooth_shade * lo_alpha
        return img.astype(np.float32)


class EyeRig:
    """Both eyes' lids; one box covering eyes and brows' lower half."""

    def __init__(self, lm: NDArray[np.float64]) -> None:
        self.eyes = []
        xs: list[float] = []
        ys: list[float] = []
        for c0, c1, upper, lower in EYES:
            fr = LocalFrame((lm[c0] + lm[c1]) / 2, lm[c1] - lm[c0])
            loc = fr.to_local(lm)
            ux, uy = _contour(loc, (c0, *upper, c1))
            lx, ly = _contour(loc, (c0, *lower, c1))
            half = float(np.linalg.norm(lm[c1] - lm[c0]) / 2)
            opening = float(np.max(np.interp(ux, lx, ly) - uy))
            hb = max(0.9 * opening, 3.0)  # the lid skin band that stretches (see warp)
            self.eyes.append((fr, ux, uy, lx, ly, hb))
            for sx_ in (-1.25 * half, 1.25 * half):
                for sy_ in (float(uy.min()) - hb - 2, float(ly.max()) + 2):
                    cx, cy = fr.to_canvas(_arr(sx_), _arr(sy_))
                    xs.append(float(cx[0]))
                    ys.append(float(cy[0]))
        self.box = _even_box(min(xs) - 2, min(ys) - 2, max(xs) + 3, max(ys) + 3)

    def warp(self, src: NDArray[np.uint8], level: float) -> NDArray[np.uint8]:
        """The eye box of `src` with the upper lids lowered by `level` (0 open .. 1 shut).

        Only the lid skin moves: the band between the lash line and ~0.7 eye-openings above
        it is stretched down to the new lid edge (a linear map per column), so the crease,
        brow and everything above stay put and straight (a smooth fall-off reaching up to
        the brow bent them into waves, as the lid closes more in the middle than at the
        corners). The photo's lash line rides down on the lid edge and covers the eye."""
        x0, y0, w, h = self.box
        out = src[y0 : y0 + h, x0 : x0 + w].astype(np.float32)
        if level <= 0:
            return src[y0 : y0 + h, x0 : x0 + w].copy()
        for fr, ux, uy, lx, ly, _hb in self.eyes:
            gx, gy = fr.grid(self.box)
            up = np.interp(gx, ux, uy, left=np.nan, right=np.nan).astype(np.float32)
            lo = np.interp(gx, lx, ly, left=np.nan, right=np.nan).astype(np.float32)
            inside = ~np.isnan(up)
            up = np.where(inside, up, 0.0).astype(np.float32)
            lo = np.where(inside, lo, 0.0).astype(np.float32)
            opening = float(np.max(lo - up))
            # closing a little past the lower lid hides the lash line's gap at full blink
            bh = np.where(inside, np.maximum(lo - up, 0.0) * level * 1.1, 0.0).astype(np.float32)
            band = max(2.0, 0.7 * opening)
            top, edge = up - band, up + bh
            sy = top + (gy - top) * (band / (band + bh))
            mx, my = fr.to_canvas(gx, np.where(gy >= top, sy, gy).astype(np.float32))
            lid = cv2.remap(src, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            cover = np.clip(edge - gy + 0.5, 0.0, 1.0) * (gy >= top) * (bh > 0.05)
            cover = cover[..., None]
            out = out * (1 - cover) + lid.astype(np.float32) * cover
        return np.clip(out + 0.5, 0, 255).astype(np.uint8)
