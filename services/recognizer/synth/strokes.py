"""Glyphs as pen strokes, and a renderer that writes them the way different people would.

MNIST's writers were American: a 1 is a bare stick, a 7 has no bar, a 4 is closed and a 9 has
a round, closed loop. Writers elsewhere draw a 1 with a long flag (and often a base), cross
their 7s, leave the top of a 4 or the loop of a 9 open. A glyph here is a few strokes in a unit
box (x to the right, y down), with named style variants; ``render`` then varies what differs
between hands: slant, proportions, a smooth wobble, pen width, and sometimes the whole glyph
stretched to fill its box (as some scanners and forms do).

Only geometry and numpy: no font, nothing read from disk, so ``make train`` makes the same
glyphs on every machine from the same seed.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

Stroke = list[tuple[float, float]]
Glyph = list[Stroke]


def arc(cx: float, cy: float, rx: float, ry: float, start: float, end: float, steps: int = 0) -> Stroke:
    """Points along an ellipse from angle ``start`` to ``end`` (degrees; 0 = right, 90 = down)."""
    steps = steps or max(4, int(abs(end - start) / 15))
    return [
        (cx + rx * math.cos(math.radians(a)), cy + ry * math.sin(math.radians(a)))
        for a in np.linspace(start, end, steps + 1)
    ]


def _v(r: np.random.Generator, low: float, high: float) -> float:
    return float(r.uniform(low, high))


# Each digit: style name -> a function of a random generator giving the strokes. The styles are
# the ones seen on forms across Europe and the Americas, MNIST's own included.
def _zero(r: np.random.Generator) -> Glyph:
    start = _v(r, 230, 300)
    return [arc(0.5, 0.5, _v(r, 0.28, 0.45), 0.5, start, start + _v(r, 350, 375))]


def _one_plain(r: np.random.Generator) -> Glyph:
    return [[(0.5, 0.0), (0.5 + _v(r, -0.04, 0.04), 1.0)]]


def _one_flag(r: np.random.Generator) -> Glyph:
    # The continental 1: a flag from the left up to the top, often nearly as long as the stem.
    # Steeper than a 7's bar, or it is a 7.
    length = _v(r, 0.2, 0.5)
    drop = length * _v(r, 0.65, 1.4)
    return [[(0.55 - length, drop), (0.55, 0.0), (0.55, 1.0)]]


def _one_flag_base(r: np.random.Generator) -> Glyph:
    glyph = _one_flag(r)
    half = _v(r, 0.18, 0.35)
    return [*glyph, [(0.55 - half, 1.0), (0.55 + half, 1.0)]]


def _one_serif(r: np.random.Generator) -> Glyph:
    # A short hooked flag, like print, with or without a base.
    glyph: Glyph = [[(0.35, _v(r, 0.12, 0.22)), (0.55, 0.0), (0.55, 1.0)]]
    if r.random() < 0.5:
        glyph.append([(0.3, 1.0), (0.8, 1.0)])
    return glyph


def _two(r: np.random.Generator) -> Glyph:
    top = arc(0.5, 0.28, 0.32, 0.28, _v(r, 170, 200), 360 + _v(r, 20, 45))
    foot = (0.12, 1.0)
    stroke = [*top, foot, (0.9, 1.0 + _v(r, -0.03, 0.03))]
    if r.random() < 0.3:  # the looped 2: a small loop where the diagonal meets the base
        stroke = [*top, (0.2, 0.95), *arc(0.25, 0.9, 0.1, 0.08, 90, 360)[1:], (0.9, 0.98)]
    return [stroke]


def _three(r: np.random.Generator) -> Glyph:
    if r.random() < 0.3:  # the flat-topped 3: a bar, a diagonal, then the lower bowl
        return [[(0.15, 0.0), (0.8, 0.0), (0.45, 0.4), *arc(0.5, 0.7, 0.35, 0.3, -80, 140)]]
    upper = arc(0.5, 0.25, 0.3, 0.25, 200, 450)
    lower = arc(0.5, 0.72, 0.35, 0.28, -90, 150)
    return [[*upper, *lower]]


def _four_closed(r: np.random.Generator) -> Glyph:
    x = _v(r, 0.6, 0.75)
    return [[(x, 1.0), (x, 0.0), (0.05, _v(r, 0.6, 0.72)), (0.95, _v(r, 0.6, 0.72))]]


def _four_open(r: np.random.Generator) -> Glyph:
    # The open 4: an L from the top-left, then a separate stem that crosses its bar.
    y = _v(r, 0.5, 0.65)
    x = _v(r, 0.6, 0.75)
    return [[(_v(r, 0.1, 0.3), 0.0), (0.08, y), (0.95, y)], [(x, _v(r, 0.0, 0.25)), (x, 1.0)]]


def _five(r: np.random.Generator) -> Glyph:
    bowl = arc(0.45, 0.66, 0.38, 0.32, -120, 150)
    return [[(0.85, 0.0), (0.25, 0.0), (0.2, 0.42), *bowl]] if r.random() < 0.6 else [
        [(0.25, 0.0), (0.2, 0.42), *bowl], [(0.25, 0.0), (0.85, 0.0)]
    ]


def _six(r: np.random.Generator) -> Glyph:
    loop = arc(0.5, 0.7, 0.32, 0.28, 180, 540)
    return [[(0.75, 0.0), *arc(0.8, 0.7, 0.62, 0.7, 250, 180)[1:], *loop]]


def _seven_plain(r: np.random.Generator) -> Glyph:
    return [[(0.1, 0.0), (0.9, 0.0), (_v(r, 0.3, 0.5), 1.0)]]


def _seven_crossed(r: np.random.Generator) -> Glyph:
    stem_x = _v(r, 0.3, 0.5)
    glyph: Glyph = [[(0.1, _v(r, 0.0, 0.15)), (0.1, 0.0), (0.9, 0.0), (stem_x, 1.0)]]
    y = _v(r, 0.42, 0.6)
    x = 0.9 + (stem_x - 0.9) * y  # where the bar crosses the stem
    glyph.append([(x - _v(r, 0.2, 0.35), y), (x + _v(r, 0.2, 0.35), y)])
    return glyph


def _eight(r: np.random.Generator) -> Glyph:
    if r.random() < 0.5:
        return [arc(0.5, 0.25, 0.26, 0.25, 0, 360), arc(0.5, 0.73, 0.33, 0.27, 0, 360)]
    # One stroke: down the S of the 8 and back up the other way.
    return [[*arc(0.5, 0.25, 0.27, 0.25, 0, -270), *arc(0.5, 0.73, 0.33, 0.27, -90, 180), (0.72, 0.45)]]


def _nine_closed(r: np.random.Generator) -> Glyph:
    loop = arc(0.45, 0.3, 0.33, 0.3, 0, 360)
    return [loop, [(0.78, 0.3), (_v(r, 0.55, 0.8), 1.0)]]


def _nine_open(r: np.random.Generator) -> Glyph:
    # The loop is left open at the bottom-left, the pen running from its end into the stem.
    loop = arc(0.45, 0.3, 0.33, 0.3, _v(r, 100, 145), 360)
    return [[*loop, (_v(r, 0.55, 0.8), 1.0)]]


def _nine_squiggle(r: np.random.Generator) -> Glyph:
    # A loop written in one unsteady movement, its bottom not quite closed, and a wavy stem.
    wobble = _wobble(r, _v(r, 0.03, 0.06))
    loop = [tuple(p) for p in wobble(np.asarray(arc(0.45, 0.3, 0.33, 0.3, _v(r, 60, 110), 360)))]
    amplitude, waves = _v(r, 0.02, 0.06), _v(r, 1.0, 2.0)
    stem = [(0.78 - 0.1 * t + amplitude * math.sin(2 * math.pi * waves * t), 0.3 + 0.7 * t) for t in np.linspace(0, 1, 12)]
    if r.random() < 0.3:  # a short tail turned left at the bottom
        stem += arc(0.55, 0.92, 0.12, 0.08, 0, 110)[1:]
    return [[*loop, *stem[1:]]]


DIGITS: dict[int, dict[str, Callable[[np.random.Generator], Glyph]]] = {
    0: {"oval": _zero},
    1: {"stick": _one_plain, "flag": _one_flag, "flag-base": _one_flag_base, "serif": _one_serif},
    2: {"two": _two},
    3: {"three": _three},
    4: {"closed": _four_closed, "open": _four_open},
    5: {"five": _five},
    6: {"six": _six},
    7: {"plain": _seven_plain, "crossed": _seven_crossed},
    8: {"eight": _eight},
    9: {"closed": _nine_closed, "open": _nine_open, "squiggle": _nine_squiggle},
}


def _wobble(r: np.random.Generator, amount: float) -> Callable[[np.ndarray], np.ndarray]:
    """A smooth random displacement of the plane: a hand's unsteadiness, not jitter per point."""
    waves = [(r.uniform(1, 3), r.uniform(1, 3), r.uniform(0, 2 * math.pi), r.uniform(0, 2 * math.pi)) for _ in range(2)]

    def move(points: np.ndarray) -> np.ndarray:
        x, y = points[:, 0], points[:, 1]
        dx = sum(amount * np.sin(fx * math.pi * y + px) for fx, _, px, _ in waves) / len(waves)
        dy = sum(amount * np.sin(fy * math.pi * x + py) for _, fy, _, py in waves) / len(waves)
        return np.stack([x + dx, y + dy], axis=1)

    return move


def render(
    glyph: Glyph,
    r: np.random.Generator,
    side: int = 96,
    *,
    slant_degrees: tuple[float, float] = (-12.0, 25.0),
    pen: tuple[float, float] = (0.045, 0.18),
    stretch_probability: float = 0.15,
) -> np.ndarray:
    """Ink coverage in [0, 1] (float32, ``side`` × ``side``) of one handwritten glyph."""
    slant = math.tan(math.radians(r.uniform(*slant_degrees)))
    rotate = math.radians(r.normal(0, 4))
    width = r.uniform(0.7, 1.15)  # proportions: a narrow or a round hand
    move = _wobble(r, r.uniform(0.0, 0.04))
    strokes = []
    for stroke in glyph:
        p = move(np.asarray(stroke, dtype=np.float64))
        x, y = (p[:, 0] - 0.5) * width, p[:, 1] - 0.5
        x = x - slant * y  # y points down: leaning right means x grows upwards
        x, y = x * math.cos(rotate) - y * math.sin(rotate), x * math.sin(rotate) + y * math.cos(rotate)
        strokes.append(np.stack([x, y], axis=1))
    allpts = np.concatenate(strokes)
    lo, hi = allpts.min(axis=0), allpts.max(axis=0)
    extent = float(max(hi - lo))
    scale = 0.7 * side / max(extent, 1e-6)
    pen_px = max(1.0, r.uniform(*pen) * 0.7 * side)
    canvas = Image.new("L", (side, side), 0)
    draw = ImageDraw.Draw(canvas)
    centre = (lo + hi) / 2
    for s in strokes:
        q = (s - centre) * scale + side / 2
        points = [tuple(map(float, pt)) for pt in q]
        draw.line(points, fill=255, width=round(pen_px), joint="curve")
        for px, py in (points[0], points[-1]):  # round pen ends
            rad = pen_px / 2
            draw.ellipse((px - rad, py - rad, px + rad, py + rad), fill=255)
    canvas = canvas.filter(ImageFilter.GaussianBlur(r.uniform(0.3, 1.2)))
    coverage = np.asarray(canvas, dtype=np.float32) / 255.0
    if r.random() < stretch_probability:
        coverage = stretch_to_fill(coverage)
    return coverage


def stretch_to_fill(coverage: np.ndarray, amount: float = 1.0) -> np.ndarray:
    """The glyph's bounding box scaled, without keeping its proportions, towards a square that
    fills the frame (``amount`` 1: all the way): what a form or scanner that normalises each box
    does to a narrow 1 or a wide 4."""
    rows, cols = np.flatnonzero(coverage.max(axis=1) > 0.1), np.flatnonzero(coverage.max(axis=0) > 0.1)
    if rows.size == 0:
        return coverage
    crop = coverage[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    side = coverage.shape[0]
    inner = round(side * 0.8)
    height, width = crop.shape
    size = (round(width + (inner - width) * amount), round(height + (inner - height) * amount))
    filled = np.asarray(Image.fromarray(crop).resize(size, Image.Resampling.BILINEAR), dtype=np.float32)
    out = np.zeros((max(side, size[1]), max(side, size[0])), dtype=np.float32)
    top, left = (out.shape[0] - size[1]) // 2, (out.shape[1] - size[0]) // 2
    out[top : top + size[1], left : left + size[0]] = filled
    return out


def digit(label: int, r: np.random.Generator, style: str | None = None, **options: object) -> tuple[str, np.ndarray]:
    """A handwritten ``label`` in a random (or the named) style: (style, coverage)."""
    styles = DIGITS[label]
    name = style or str(r.choice(sorted(styles)))
    return name, render(styles[name](r), r, **options)  # type: ignore[arg-type]
