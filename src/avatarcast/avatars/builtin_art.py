"""The built-in avatar's artwork: a presenter drawn with skia vector paths, no image files.

Everything is drawn in a 540×960 design space; callers scale the canvas to the output size,
so the figure is crisp at any 9:16 size. Layers, back to front: background; back hair (moves
with the head); body — neck, blouse, blazer (moves with breathing); head — ears, face, nose,
cheeks, brows, eyes (blink 0..1), mouth (`MouthGeo`), front hair (moves with the head).
The mouth is parametric: each shape's geometry at full openness is interpolated from one
closed mouth, so openness 0 of every shape is the same closed mouth and 0..1 is smooth.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import skia

from avatarcast.speech.visemes import Shape

DESIGN_W, DESIGN_H = 540.0, 960.0

# Sprite rectangles in design coordinates; both lie inside the opaque face for every pose
# (checked by the tests), so pasting them never touches hair, neck or background.
EYE_BOX = (184.0, 355.0, 356.0, 398.0)
MOUTH_BOX = (226.0, 442.0, 314.0, 520.0)

EYE_Y = 378.0
EYES_X = (222.0, 318.0)
MOUTH_C = (270.0, 470.0)


def _c(hex_rgb: int, a: float = 1.0) -> int:
    return skia.Color((hex_rgb >> 16) & 255, (hex_rgb >> 8) & 255, hex_rgb & 255, round(a * 255))


SKIN, SKIN_SHADE, SKIN_DEEP = 0xF3C9A8, 0xE2A887, 0xC98466
HAIR, HAIR_DARK, HAIR_LIGHT = 0x3E2B24, 0x261913, 0x7A5443
BLAZER, BLAZER_DARK, BLAZER_LIGHT = 0x2C3E63, 0x1F2D4A, 0x3B5282
SHIRT, SHIRT_SHADE = 0xFBFBFD, 0xDCE1EA
LIP_UP, LIP_LO, MOUTH_IN = 0xC45A5C, 0xD97E78, 0x4A1A22
TEETH, TONGUE = 0xFBF8F2, 0xD9707A
IRIS, IRIS_DARK, LASH, BROW = 0x7A4E33, 0x3D2416, 0x2A1A15, 0x4A3128


def _fill(color: int, *, shader: skia.Shader | None = None, blur: float = 0.0) -> skia.Paint:
    p = skia.Paint(AntiAlias=True, Color=color)
    if shader is not None:  # the paint's alpha modulates the shader: make it opaque
        p.setColor(skia.ColorBLACK)
        p.setShader(shader)
    if blur > 0:
        p.setMaskFilter(skia.MaskFilter.MakeBlur(skia.kNormal_BlurStyle, blur))
    return p


def _stroke(color: int, width: float, blur: float = 0.0) -> skia.Paint:
    p = _fill(color, blur=blur)
    p.setStyle(skia.Paint.kStroke_Style)
    p.setStrokeWidth(width)
    p.setStrokeCap(skia.Paint.kRound_Cap)
    p.setStrokeJoin(skia.Paint.kRound_Join)
    return p


def _path(start: tuple[float, float], *cubics: tuple[float, ...], close: bool = True) -> skia.Path:
    """A path of cubic segments (6 numbers each) or lines (2 numbers)."""
    p = skia.Path()
    p.moveTo(*start)
    for seg in cubics:
        if len(seg) == 6:
            p.cubicTo(*seg)
        else:
            p.lineTo(*seg)
    if close:
        p.close()
    return p


def _mirror(path: skia.Path) -> skia.Path:
    m = skia.Matrix()
    m.setScale(-1, 1, 270, 0)
    out = skia.Path()
    path.transform(m, out)
    return out


def _linear(p0: tuple[float, float], p1: tuple[float, float], colors: list[int]) -> skia.Shader:
    return skia.GradientShader.MakeLinear([skia.Point(*p0), skia.Point(*p1)], colors)


def _radial(c: tuple[float, float], r: float, colors: list[int]) -> skia.Shader:
    return skia.GradientShader.MakeRadial(skia.Point(*c), r, colors)


# ---------------------------------------------------------------- static parts of the figure

FACE = _path(
    (270, 208),
    (334, 208, 381, 248, 384, 322),
    (387, 392, 380, 448, 360, 486),
    (340, 522, 302, 546, 270, 547),
    (238, 546, 200, 522, 180, 486),
    (160, 448, 153, 392, 156, 322),
    (159, 248, 206, 208, 270, 208),
)
BACK_HAIR = _path(
    (270, 108),
    (388, 104, 454, 190, 454, 312),
    (454, 420, 446, 500, 440, 560),
    (432, 586, 400, 592, 370, 578),
    (170, 578),
    (140, 592, 108, 586, 100, 560),
    (94, 500, 86, 420, 86, 312),
    (86, 190, 152, 104, 270, 108),
)
LEFT_LOCK = _path(
    (234, 116),
    (160, 122, 100, 190, 98, 310),
    (96, 420, 102, 500, 106, 550),
    (116, 584, 160, 586, 184, 558),
    (166, 500, 158, 440, 160, 380),
    (162, 300, 170, 262, 190, 236),
    (206, 200, 226, 160, 234, 116),
)
FRINGE = _path(
    (234, 116),
    (340, 104, 440, 170, 444, 300),
    (446, 400, 440, 490, 436, 562),
    (418, 584, 386, 580, 376, 556),
    (392, 490, 392, 400, 386, 340),
    (382, 310, 376, 292, 366, 280),
    (330, 236, 262, 222, 190, 236),
    (206, 190, 222, 150, 234, 116),
)
EAR = _path((381, 352), (400, 340, 414, 360, 408, 392), (404, 420, 394, 432, 378, 428))
NECK = _path(
    (226, 470),
    (226, 590),
    (224, 612, 220, 624, 216, 634),
    (270, 664),
    (324, 634),
    (320, 624, 316, 612, 314, 590),
    (314, 470),
)
BLAZER_L = _path(
    (230, 618),
    (200, 640, 150, 652, 104, 664),
    (52, 678, 24, 716, 18, 790),
    (12, 990),
    (264, 990),
    (264, 840),
    (254, 740, 244, 660, 230, 618),
)
LAPEL_L = _path(
    (230, 618), (218, 656), (186, 694), (212, 704), (264, 840), (250, 730, 242, 666, 230, 618)
)
COLLAR_L = _path((222, 622), (198, 676), (250, 704), (254, 680), (240, 660, 230, 642, 222, 622))


def draw_background(canvas: skia.Canvas) -> None:
    canvas.drawRect(
        skia.Rect(0, 0, DESIGN_W, DESIGN_H),
        _fill(0, shader=_linear((0, 0), (0, DESIGN_H), [_c(0xF4F6F9), _c(0xD9E0E9)])),
    )
    canvas.drawCircle(
        270,
        380,
        330,
        _fill(0, shader=_radial((270, 380), 330, [_c(0xFFFFFF, 0.7), _c(0xFFFFFF, 0)])),
    )


def _draw_back_hair(canvas: skia.Canvas) -> None:
    canvas.drawPath(BACK_HAIR, _fill(_c(HAIR_DARK)))


def _draw_body(canvas: skia.Canvas) -> None:
    canvas.drawPath(NECK, _fill(0, shader=_linear((0, 540), (0, 640), [_c(SKIN_SHADE), _c(SKIN)])))
    canvas.save()
    canvas.clipPath(NECK, doAntiAlias=True)
    # shadow the head casts on the neck
    canvas.drawOval(skia.Rect(214, 500, 326, 586), _fill(_c(SKIN_DEEP, 0.6), blur=9))
    canvas.restore()
    canvas.drawPath(_path((236, 680), (304, 680), (300, 990), (240, 990)), _fill(_c(SHIRT)))
    canvas.drawPath(
        _path((214, 624), (270, 704), (326, 624), (290, 654, 250, 654, 214, 624)),
        _fill(0, shader=_linear((0, 620), (0, 700), [_c(SKIN_SHADE), _c(SKIN)])),
    )
    for flip in (False, True):
        g = _mirror if flip else (lambda p: p)
        canvas.drawPath(
            g(BLAZER_L),
            _fill(0, shader=_linear((0, 650), (0, 960), [_c(BLAZER_LIGHT), _c(BLAZER)])),
        )
        # the sleeve seam and a darker outer edge round the shoulders off
        canvas.drawPath(
            g(_path((96, 668), (70, 740, 70, 860, 80, 990), close=False)),
            _stroke(_c(BLAZER_DARK, 0.6), 2),
        )
        canvas.save()
        canvas.clipPath(g(BLAZER_L), doAntiAlias=True)
        canvas.drawPath(
            g(_path((10, 800), (16, 720, 50, 684, 100, 668), close=False)),
            _stroke(_c(BLAZER_DARK, 0.5), 22, blur=10),
        )
        canvas.restore()
        canvas.drawPath(g(LAPEL_L), _fill(_c(BLAZER_DARK)))
        canvas.drawPath(g(LAPEL_L), _stroke(_c(BLAZER_LIGHT, 0.6), 1.2))
    for flip in (False, True):  # the blouse collar lies over the lapels' top
        collar = _mirror(COLLAR_L) if flip else COLLAR_L
        canvas.drawPath(collar, _fill(_c(SHIRT)))
        canvas.drawPath(collar, _stroke(_c(SHIRT_SHADE), 1.5))
    # the blouse's placket, then the blazer's button
    canvas.drawPath(_path((270, 706), (270, 990), close=False), _stroke(_c(SHIRT_SHADE), 1.5))
    canvas.drawCircle(270, 900, 7, _fill(_c(BLAZER_DARK)))


def draw_head(canvas: skia.Canvas, blink: float, mouth: MouthGeo) -> None:
    canvas.drawPath(_mirror(EAR), _fill(_c(SKIN_SHADE)))
    canvas.drawPath(
        FACE, _fill(0, shader=_radial((300, 360), 250, [_c(SKIN), _c(SKIN), _c(SKIN_SHADE)]))
    )
    canvas.save()
    canvas.clipPath(FACE, doAntiAlias=True)
    # soft jaw shadow and the fringe's shadow on the forehead
    canvas.drawPath(FACE, _stroke(_c(SKIN_SHADE, 0.7), 26, blur=10))
    canvas.drawPath(FRINGE, _fill(_c(SKIN_DEEP, 0.6), blur=9))
    canvas.drawPath(LEFT_LOCK, _fill(_c(SKIN_DEEP, 0.5), blur=9))
    for cx in (208.0, 332.0):
        canvas.drawCircle(
            cx,
            440,
            34,
            _fill(0, shader=_radial((cx, 440), 34, [_c(0xF08F86, 0.35), _c(0xF08F86, 0)])),
        )
    canvas.restore()
    _draw_nose(canvas)
    for x, side in zip(EYES_X, (-1.0, 1.0), strict=True):
        _draw_brow(canvas, x, side)
        _draw_eye(canvas, x, side, blink)
    _draw_mouth(canvas, mouth)
    _draw_front_hair(canvas)
    canvas.drawPath(EAR, _fill(_c(SKIN)))
    canvas.drawPath(
        _path((388, 366), (398, 370, 400, 392, 390, 408), close=False),
        _stroke(_c(SKIN_DEEP, 0.8), 3),
    )
    canvas.drawCircle(384, 432, 4.5, _fill(_c(0xE2B85A)))
    canvas.drawCircle(383, 431, 1.6, _fill(_c(0xFFF2C0)))


def _draw_front_hair(canvas: skia.Canvas) -> None:
    light = _linear((250, 110), (330, 560), [_c(HAIR_LIGHT), _c(HAIR), _c(HAIR_DARK)])
    canvas.drawPath(LEFT_LOCK, _fill(0, shader=light))
    canvas.drawPath(FRINGE, _fill(0, shader=light))
    canvas.save()
    canvas.clipPath(FRINGE, doAntiAlias=True)
    # the lock tucked under the fringe casts a shadow along the part
    canvas.drawPath(LEFT_LOCK, _stroke(_c(HAIR_DARK, 0.8), 10, blur=6))
    # a soft sheen band along the swoop, then fine strands that give it direction
    sheen = _path((236, 150), (310, 130, 392, 168, 414, 262), close=False)
    canvas.drawPath(sheen, _stroke(_c(0xB98A6E, 0.45), 18, blur=6))
    for path, w, a in (
        (_path((244, 140), (320, 124, 404, 168, 424, 270), close=False), 2.2, 0.5),
        (_path((226, 176), (290, 150, 360, 170, 396, 232), close=False), 2.0, 0.45),
        (_path((206, 206), (260, 186, 320, 196, 352, 236), close=False), 1.8, 0.4),
        (_path((420, 320), (424, 400, 418, 470, 424, 540), close=False), 2.0, 0.35),
    ):
        canvas.drawPath(path, _stroke(_c(0xC29579, a), w))
    canvas.restore()
    canvas.save()
    canvas.clipPath(LEFT_LOCK, doAntiAlias=True)
    for path, w, a in (
        (_path((150, 190), (120, 250, 112, 340, 116, 450), close=False), 9.0, 0.3),
        (_path((178, 200), (140, 280, 136, 400, 140, 540), close=False), 1.8, 0.4),
    ):
        canvas.drawPath(path, _stroke(_c(0xB98A6E, a), w, blur=w / 3))
    canvas.restore()
    # the part: a dark seam where the two sides meet
    canvas.drawPath(
        _path((234, 118), (222, 150, 212, 180, 192, 222), close=False),
        _stroke(_c(HAIR_DARK, 0.8), 2),
    )


def _draw_nose(canvas: skia.Canvas) -> None:
    canvas.drawPath(
        _path((258, 388), (254, 410, 252, 422, 254, 430), close=False),
        _stroke(_c(SKIN_SHADE, 0.8), 3, blur=1.5),
    )
    canvas.drawPath(
        _path((256, 436), (262, 442, 278, 442, 284, 436), close=False),
        _stroke(_c(SKIN_DEEP, 0.8), 2.4),
    )
    canvas.drawCircle(276, 424, 4, _fill(_c(0xFFFFFF, 0.35), blur=2))


def _draw_brow(canvas: skia.Canvas, x: float, side: float) -> None:
    s = side
    p = _path(
        (x - 28 * s, EYE_Y - 31),
        (x - 12 * s, EYE_Y - 43, x + 10 * s, EYE_Y - 47, x + 32 * s, EYE_Y - 37),
        (x + 10 * s, EYE_Y - 41, x - 10 * s, EYE_Y - 37, x - 27 * s, EYE_Y - 26),
        (x - 29 * s, EYE_Y - 27, x - 29 * s, EYE_Y - 30, x - 28 * s, EYE_Y - 31),
    )
    canvas.drawPath(p, _fill(_c(BROW)))


def _eye_curves(x: float, side: float, blink: float) -> tuple[skia.Path, skia.Path]:
    """(opening, upper lid line) of one eye; the upper lid slides down onto the lower lid."""
    s, y = side, EYE_Y
    ix, iy, ox, oy = x - 24 * s, y + 1, x + 26 * s, y - 3
    up1, up2 = y - 17 + 25 * blink, y - 16 + 24 * blink
    lid = _path((ix, iy), (x - 12 * s, up1, x + 14 * s, up2, ox, oy), close=False)
    opening = _path(
        (ix, iy),
        (x - 12 * s, up1, x + 14 * s, up2, ox, oy),
        (x + 14 * s, y + 11, x - 10 * s, y + 12, ix, iy),
    )
    return opening, lid


def _draw_eye(canvas: skia.Canvas, x: float, side: float, blink: float) -> None:
    s, y = side, EYE_Y
    _, open_lid = _eye_curves(x, side, 0.0)
    opening, lid = _eye_curves(x, side, blink)
    crease = _path(
        (x - 20 * s, y - 15),
        (x - 8 * s, y - 24, x + 14 * s, y - 24, x + 26 * s, y - 13),
        close=False,
    )
    canvas.drawPath(crease, _stroke(_c(SKIN_DEEP, 0.55 * (1 - blink)), 1.6))
    if blink > 0:  # the lowered lid is skin with a touch of shadow
        lid_area = _path(
            (x - 24 * s, y + 1), (x - 12 * s, y - 17, x + 14 * s, y - 16, x + 26 * s, y - 3)
        )
        canvas.save()
        canvas.clipPath(lid_area, doAntiAlias=True)
        canvas.drawPath(lid_area, _fill(_c(SKIN_SHADE, 0.5)))
        canvas.restore()
    if blink < 0.97:
        canvas.save()
        canvas.clipPath(opening, doAntiAlias=True)
        canvas.drawPath(opening, _fill(_c(0xFCFCFB)))
        ic = (x + 1 * s, y - 1)
        canvas.drawCircle(
            *ic, 12.5, _fill(0, shader=_radial(ic, 12.5, [_c(IRIS_DARK), _c(IRIS), _c(IRIS_DARK)]))
        )
        canvas.drawCircle(*ic, 5.5, _fill(_c(0x140C08)))
        canvas.drawCircle(ic[0] + 4, ic[1] - 4.5, 3.0, _fill(_c(0xFFFFFF, 0.95)))
        canvas.drawCircle(ic[0] - 4, ic[1] + 4, 1.4, _fill(_c(0xFFFFFF, 0.7)))
        canvas.drawPath(open_lid, _stroke(_c(0x8A6A5A, 0.35), 7, blur=2.5))
        canvas.restore()
    lower = _path(
        (x - 18 * s, y + 8), (x - 6 * s, y + 13, x + 12 * s, y + 12, x + 24 * s, y + 2), close=False
    )
    canvas.drawPath(lower, _stroke(_c(SKIN_DEEP, 0.6), 1.2))
    canvas.drawPath(lid, _stroke(_c(LASH), 3.2 - 0.6 * blink))
    wing_y = y - 3 + 8 * blink
    wing = _path((x + 22 * s, wing_y - 3), (x + 31 * s, wing_y - 7), (x + 25 * s, wing_y + 1))
    canvas.drawPath(wing, _fill(_c(LASH)))


# ---------------------------------------------------------------- the mouth, parametric


@dataclass(frozen=True, slots=True)
class MouthGeo:
    """Mouth geometry in design pixels around MOUTH_C; every field interpolates linearly."""

    hw: float = 29.0  # half width, centre to corner
    lift: float = -1.0  # corner height (negative: corners up, a smile)
    up: float = 0.0  # opening above the lip line
    dn: float = 0.0  # opening below the lip line (the jaw)
    tu: float = 7.0  # upper lip thickness
    td: float = 9.0  # lower lip thickness
    rnd: float = 0.0  # 0 wide lens-shaped opening … 1 round (lips pushed forward)
    teeth_u: float = 0.0  # visible upper teeth below the upper lip
    teeth_d: float = 0.0  # visible lower teeth above the lower lip
    tongue: float = 0.0  # tongue height at the bottom of the opening
    tongue_up: float = 0.0  # tongue tip raised to the upper teeth (L)
    press: float = 0.0  # lips pressed together (P B M): darker seam, thinner lips
    bite: float = 0.0  # upper teeth resting on the lower lip (F V)

    def lerp(self, other: MouthGeo, t: float) -> MouthGeo:
        return MouthGeo(
            *(getattr(self, f.name) * (1 - t) + getattr(other, f.name) * t for f in fields(self))
        )


CLOSED = MouthGeo(lift=-2.5)  # at rest the corners turn up a little: a friendly face
FULL: dict[Shape, MouthGeo] = {
    Shape.A: MouthGeo(hw=30, lift=0, tu=5, td=6.5, press=1),
    Shape.B: MouthGeo(hw=32, lift=-2, up=4, dn=4, teeth_u=4.5, teeth_d=4.5),
    Shape.C: MouthGeo(hw=32, lift=-1, up=7, dn=15, rnd=0.3, teeth_u=6, teeth_d=2, tongue=4),
    Shape.D: MouthGeo(hw=33, lift=0, up=10, dn=30, tu=6, td=7, rnd=0.5, teeth_u=7, tongue=9),
    Shape.E: MouthGeo(hw=24, lift=0, up=6, dn=12, tu=8, td=10, rnd=0.75, teeth_u=4, tongue=3),
    Shape.F: MouthGeo(hw=14, lift=0, up=4, dn=6, tu=9.5, td=11, rnd=1.0),
    Shape.G: MouthGeo(hw=30, lift=-1.5, up=5, dn=0, tu=6.5, td=7, teeth_u=5, bite=1),
    Shape.H: MouthGeo(hw=30, lift=-1, up=8, dn=14, rnd=0.2, teeth_u=5, tongue_up=1),
    Shape.X: MouthGeo(hw=29.5, lift=-3.5),
}


def mouth_geo(shape: Shape, openness: float) -> MouthGeo:
    return CLOSED.lerp(FULL[shape], openness)


def _draw_mouth(canvas: skia.Canvas, g: MouthGeo) -> None:
    cx, cy = MOUTH_C
    lx, rx, ky = cx - g.hw, cx + g.hw, cy + g.lift
    k = 0.55 + 0.35 * g.rnd  # control-point spread: round openings bulge near the corners

    def arc(depth: float, back: bool = False) -> tuple[float, ...]:
        # a symmetric cubic between the corners passing through (cx, cy + depth)
        yc = (8 * (cy + depth) - 2 * ky) / 6
        if back:
            return (cx + g.hw * k, yc, cx - g.hw * k, yc, lx, ky)
        return (cx - g.hw * k, yc, cx + g.hw * k, yc, rx, ky)

    inner = _path((lx, ky), arc(-g.up), arc(g.dn, back=True))
    top, bow = cy - g.up - g.tu, cy - g.up - g.tu * 0.62
    bw = g.hw * 0.36
    upper = _path(
        (lx - 1, ky),
        (lx + g.hw * 0.3, ky - g.tu * 0.35, cx - bw * 1.75, top, cx - bw, top),
        (cx - bw * 0.55, top, cx - bw * 0.35, bow, cx, bow),
        (cx + bw * 0.35, bow, cx + bw * 0.55, top, cx + bw, top),
        (cx + bw * 1.75, top, rx - g.hw * 0.3, ky - g.tu * 0.35, rx + 1, ky),
        (rx, ky),
        arc(-g.up, back=True),
    )
    bottom = cy + g.dn + g.td
    lyc = (8 * bottom - 2 * ky) / 6
    lower = _path(
        (rx + 1, ky),
        (cx + g.hw * 0.8, lyc, cx - g.hw * 0.8, lyc, lx - 1, ky),
        arc(g.dn),
    )
    # shadow under the lower lip (moves down with the jaw) before the lips themselves
    canvas.drawOval(
        skia.Rect(cx - 16, bottom + 1, cx + 16, bottom + 9), _fill(_c(SKIN_DEEP, 0.45), blur=3.5)
    )
    if g.up + g.dn > 0.3:
        canvas.save()
        canvas.clipPath(inner, doAntiAlias=True)
        canvas.drawPath(inner, _fill(_c(MOUTH_IN)))
        tw = g.hw * 0.62
        if g.teeth_u > 0.2:
            r = skia.RRect.MakeRectXY(
                skia.Rect(cx - tw, cy - g.up - 10, cx + tw, cy - g.up + g.teeth_u), 4, 4
            )
            canvas.drawRRect(r, _fill(_c(TEETH)))
        if g.teeth_d > 0.2:
            r = skia.RRect.MakeRectXY(
                skia.Rect(cx - tw * 0.9, cy + g.dn - g.teeth_d, cx + tw * 0.9, cy + g.dn + 10), 4, 4
            )
            canvas.drawRRect(r, _fill(_c(0xEDE8E0)))
        if (
            g.teeth_d > 0.2 and g.teeth_u + g.teeth_d >= g.up + g.dn
        ):  # teeth together: a faint line between rows
            mid = cy + (g.dn - g.up) / 2
            canvas.drawLine(cx - tw, mid, cx + tw, mid, _stroke(_c(0xB8AFA6, 0.8), 0.8))
        if g.tongue > 0.2:
            canvas.drawOval(
                skia.Rect(
                    cx - g.hw * 0.62,
                    cy + g.dn - g.tongue,
                    cx + g.hw * 0.62,
                    cy + g.dn + g.tongue + 8,
                ),
                _fill(_c(TONGUE)),
            )
        if g.tongue_up > 0.05:
            h = (g.up + g.dn) * g.tongue_up
            canvas.drawOval(
                skia.Rect(cx - g.hw * 0.38, cy + g.dn - h, cx + g.hw * 0.38, cy + g.dn + h),
                _fill(_c(TONGUE)),
            )
        canvas.restore()
    canvas.drawPath(
        lower, _fill(0, shader=_linear((0, cy), (0, bottom), [_c(0xB8616A), _c(LIP_LO)]))
    )
    if g.bite > 0.05:  # F V: the upper teeth come down over the tucked-in lower lip
        tw = g.hw * 0.6
        r = skia.RRect.MakeRectXY(
            skia.Rect(cx - tw, cy - g.up - 4, cx + tw, cy + g.td * 0.45 * g.bite), 3, 3
        )
        canvas.drawRRect(r, _fill(_c(TEETH, min(1.0, g.bite * 1.5))))
    canvas.drawPath(upper, _fill(0, shader=_linear((0, top), (0, cy), [_c(LIP_UP), _c(0xA84C53)])))
    canvas.drawOval(
        skia.Rect(cx - g.hw * 0.35, bottom - g.td * 0.7, cx + g.hw * 0.2, bottom - g.td * 0.3),
        _fill(_c(0xFFFFFF, 0.22), blur=1.5),
    )
    seam = _path((lx, ky), arc(-g.up), close=False)
    canvas.drawPath(seam, _stroke(_c(0x6E2A30, 0.75 + 0.25 * g.press), 1.4 + 0.8 * g.press))
    for sx in (lx, rx):  # corner dimples
        canvas.drawCircle(sx, ky, 1.6, _fill(_c(0x8E4A48, 0.7), blur=0.8))


def draw_figure(
    canvas: skia.Canvas, key: tuple[int, int, int], scale: float, blink: float, mouth: MouthGeo
) -> None:
    """Back hair, body and head at a pose key (head dx, head dy, body lift) in output pixels."""
    dx, dy, lift = key
    for (ox, oy), draw in (((dx, dy), _draw_back_hair), ((0, lift), _draw_body)):
        canvas.save()
        canvas.translate(ox, oy)
        canvas.scale(scale, scale)
        draw(canvas)
        canvas.restore()
    canvas.save()
    canvas.translate(dx, dy)
    canvas.scale(scale, scale)
    draw_head(canvas, blink, mouth)
    canvas.restore()
