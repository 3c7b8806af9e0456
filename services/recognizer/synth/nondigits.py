"""What people upload that is not a digit: letters, symbols, shapes, scribbles, texture, noise.

The model learns an eleventh class, "not a digit", from these. Glyphs that a person could read
as a digit are left out on purpose (O and o, I and l, S, Z, B, G, g, q, a bare circle or a
vertical bar): refusing them would teach the model to refuse real 0s, 1s, 5s, 2s, 8s, 6s and 9s.
C and J are left out too (an open 0, a hooked 7). Everything is drawn with the same pen as the synthetic digits (strokes.render), so the model
cannot tell the classes apart by how they were drawn, only by what they show.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from PIL import Image, ImageFilter

from services.recognizer.synth.strokes import Glyph, arc, render

# Letters and symbols as strokes in the unit box (x right, y down).
GLYPHS: dict[str, Glyph] = {
    "A": [[(0.0, 1.0), (0.5, 0.0), (1.0, 1.0)], [(0.22, 0.6), (0.78, 0.6)]],
    "E": [[(0.9, 0.0), (0.1, 0.0), (0.1, 1.0), (0.9, 1.0)], [(0.1, 0.5), (0.7, 0.5)]],
    "F": [[(0.9, 0.0), (0.1, 0.0), (0.1, 1.0)], [(0.1, 0.5), (0.7, 0.5)]],
    "H": [[(0.1, 0.0), (0.1, 1.0)], [(0.9, 0.0), (0.9, 1.0)], [(0.1, 0.5), (0.9, 0.5)]],
    "K": [[(0.15, 0.0), (0.15, 1.0)], [(0.85, 0.0), (0.15, 0.55), (0.85, 1.0)]],
    "M": [[(0.0, 1.0), (0.1, 0.0), (0.5, 0.6), (0.9, 0.0), (1.0, 1.0)]],
    "N": [[(0.1, 1.0), (0.1, 0.0), (0.9, 1.0), (0.9, 0.0)]],
    "R": [[(0.15, 1.0), (0.15, 0.0), *arc(0.45, 0.25, 0.35, 0.25, -90, 90)[1:], (0.15, 0.5), (0.85, 1.0)]],
    "P": [[(0.15, 1.0), (0.15, 0.0), *arc(0.45, 0.27, 0.38, 0.27, -90, 90)[1:], (0.15, 0.54)]],
    "T": [[(0.0, 0.0), (1.0, 0.0)], [(0.5, 0.0), (0.5, 1.0)]],
    "V": [[(0.0, 0.0), (0.5, 1.0), (1.0, 0.0)]],
    "W": [[(0.0, 0.0), (0.25, 1.0), (0.5, 0.35), (0.75, 1.0), (1.0, 0.0)]],
    "X": [[(0.0, 0.0), (1.0, 1.0)], [(1.0, 0.0), (0.0, 1.0)]],
    "Y": [[(0.0, 0.0), (0.5, 0.5), (1.0, 0.0)], [(0.5, 0.5), (0.5, 1.0)]],
    "U": [[(0.1, 0.0), *arc(0.5, 0.6, 0.4, 0.4, 180, 0)[1:], (0.9, 0.0)]],
    "L": [[(0.15, 0.0), (0.15, 1.0), (0.9, 1.0)]],
    "k": [[(0.2, 0.0), (0.2, 1.0)], [(0.8, 0.4), (0.2, 0.75), (0.85, 1.0)]],
    "h": [[(0.2, 0.0), (0.2, 1.0)], [(0.2, 0.65), *arc(0.5, 0.65, 0.3, 0.25, 180, 360)[1:], (0.8, 1.0)]],
    "m": [[(0.05, 0.4), (0.05, 1.0)], [*arc(0.28, 0.55, 0.23, 0.15, 180, 360), (0.5, 1.0)],
          [*arc(0.72, 0.55, 0.23, 0.15, 180, 360), (0.95, 1.0)]],
    "n": [[(0.15, 0.35), (0.15, 1.0)], [*arc(0.5, 0.55, 0.35, 0.2, 180, 360), (0.85, 1.0)]],
    "r": [[(0.2, 0.3), (0.2, 1.0)], arc(0.55, 0.55, 0.35, 0.2, 180, 300)],
    "u": [[(0.15, 0.3), *arc(0.5, 0.75, 0.35, 0.25, 180, 0)[1:], (0.85, 0.3), (0.85, 1.0)]],
    "v": [[(0.1, 0.3), (0.5, 1.0), (0.9, 0.3)]],
    "w": [[(0.0, 0.3), (0.25, 1.0), (0.5, 0.45), (0.75, 1.0), (1.0, 0.3)]],
    "x": [[(0.1, 0.3), (0.9, 1.0)], [(0.9, 0.3), (0.1, 1.0)]],
    "y": [[(0.1, 0.3), (0.5, 0.75)], [(0.9, 0.3), (0.3, 1.3)]],
    "e": [[(0.15, 0.62), (0.85, 0.62), *arc(0.5, 0.62, 0.35, 0.32, 0, -300)[1:]]],
    "f": [[*arc(0.7, 0.2, 0.25, 0.2, -20, -180), (0.45, 1.2)], [(0.15, 0.5), (0.8, 0.5)]],
    "t": [[(0.45, 0.0), (0.45, 0.85), *arc(0.65, 0.85, 0.2, 0.15, 180, 90)[1:]], [(0.1, 0.3), (0.85, 0.3)]],
    "+": [[(0.5, 0.1), (0.5, 0.9)], [(0.1, 0.5), (0.9, 0.5)]],
    "=": [[(0.1, 0.35), (0.9, 0.35)], [(0.1, 0.65), (0.9, 0.65)]],
    "#": [[(0.35, 0.0), (0.25, 1.0)], [(0.75, 0.0), (0.65, 1.0)], [(0.05, 0.33), (0.95, 0.33)], [(0.0, 0.66), (0.9, 0.66)]],
    "*": [[(0.5, 0.0), (0.5, 1.0)], [(0.07, 0.25), (0.93, 0.75)], [(0.93, 0.25), (0.07, 0.75)]],
    "%": [arc(0.25, 0.2, 0.15, 0.18, 0, 360), [(0.85, 0.0), (0.15, 1.0)], arc(0.75, 0.8, 0.15, 0.18, 0, 360)],
    "&": [[(0.9, 1.0), *arc(0.45, 0.25, 0.2, 0.22, 60, -230)[1:], (0.2, 0.7), *arc(0.4, 0.78, 0.25, 0.22, 180, 20)[1:],
           (0.95, 0.5)]],
    "?": [[*arc(0.5, 0.25, 0.32, 0.25, 180, 430), (0.5, 0.65)], [(0.5, 0.93), (0.5, 1.0)]],
    "!": [[(0.5, 0.0), (0.5, 0.7)], [(0.5, 0.93), (0.5, 1.0)]],
    "$": [[*arc(0.5, 0.3, 0.35, 0.22, -30, -270), *arc(0.5, 0.72, 0.35, 0.22, -90, 150)[1:]], [(0.5, -0.1), (0.5, 1.1)]],
    "@": [arc(0.5, 0.5, 0.18, 0.2, 0, 360), [(0.68, 0.3), *arc(0.5, 0.5, 0.45, 0.5, 20, -320)]],
    "→": [[(0.0, 0.5), (1.0, 0.5)], [(0.7, 0.25), (1.0, 0.5), (0.7, 0.75)]],
    "←": [[(0.0, 0.5), (1.0, 0.5)], [(0.3, 0.25), (0.0, 0.5), (0.3, 0.75)]],
    "↑": [[(0.5, 0.0), (0.5, 1.0)], [(0.2, 0.3), (0.5, 0.0), (0.8, 0.3)]],
    "✓": [[(0.0, 0.55), (0.35, 1.0), (1.0, 0.0)]],
    "×": [[(0.15, 0.15), (0.85, 0.85)], [(0.85, 0.15), (0.15, 0.85)]],
    "-": [[(0.0, 0.5), (1.0, 0.5)]],
    "~": [[(0.05 + 0.9 * t, 0.5 - 0.2 * math.sin(2 * math.pi * t)) for t in np.linspace(0, 1, 16)]],
    "square": [[(0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0), (0.0, 0.0)]],
    "triangle": [[(0.5, 0.0), (1.0, 1.0), (0.0, 1.0), (0.5, 0.0)]],
    "diamond": [[(0.5, 0.0), (1.0, 0.5), (0.5, 1.0), (0.0, 0.5), (0.5, 0.0)]],
    "star": [[(0.5 + 0.5 * math.sin(math.radians(144 * k)), 0.5 - 0.5 * math.cos(math.radians(144 * k))) for k in range(6)]],
    "heart": [[(0.5, 1.0), *arc(0.27, 0.3, 0.25, 0.25, 135, -180)[1:], *arc(0.73, 0.3, 0.25, 0.25, 180, 405)[1:], (0.5, 1.0)]],
    "smiley": [arc(0.5, 0.5, 0.5, 0.5, 0, 360), [(0.35, 0.33), (0.35, 0.38)], [(0.65, 0.33), (0.65, 0.38)],
               arc(0.5, 0.55, 0.25, 0.2, 20, 160)],
    "spiral": [[(0.5 + 0.05 * t * math.cos(t), 0.5 + 0.05 * t * math.sin(t)) for t in np.linspace(0, 9, 40)]],
    "grid": [[(0.0, y), (1.0, y)] for y in (0.0, 0.5, 1.0)] + [[(x, 0.0), (x, 1.0)] for x in (0.0, 0.5, 1.0)],
    "zigzag": [[(0.1 * k, 0.2 if k % 2 else 0.8) for k in range(11)]],
}
# Never used for training: the evaluation's "unseen symbols" set measures whether refusing
# generalises to shapes the model has never been shown, not just to new drawings of known ones.
HELD_OUT = ("K", "R", "w", "&", "heart", "@", "diamond", "f")
TRAINING_GLYPHS = sorted(set(GLYPHS) - set(HELD_OUT))


def scribble(r: np.random.Generator) -> Glyph:
    """A tangle of several turns: nothing a reader would take for a digit (a curve with only two
    or three turns could be one, so every scribble has many)."""
    strokes = []
    for _ in range(int(r.integers(1, 4))):
        points = r.uniform(0.0, 1.0, size=(int(r.integers(7, 14)), 2))
        # Smooth the control polygon twice (Chaikin) so the pen moves like a hand.
        for _ in range(2):
            q = points
            points = np.concatenate([q[:-1] * 0.75 + q[1:] * 0.25, q[:-1] * 0.25 + q[1:] * 0.75], axis=1).reshape(-1, 2)
        strokes.append([tuple(p) for p in points])
    return strokes


def blob(r: np.random.Generator, side: int) -> np.ndarray:
    """A filled shape or a smudge: ink with no strokes to read."""
    y, x = np.mgrid[0:side, 0:side].astype(np.float32) / side - 0.5
    shape = np.zeros((side, side), dtype=np.float32)
    for _ in range(int(r.integers(1, 4))):
        cx, cy = r.uniform(-0.2, 0.2, size=2)
        rx, ry = r.uniform(0.08, 0.35, size=2)
        shape = np.maximum(shape, ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 < 1)
    blurred = Image.fromarray((shape * 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(r.uniform(0.5, 4)))
    return np.asarray(blurred, dtype=np.float32) / 255.0


def texture(r: np.random.Generator, side: int) -> np.ndarray:
    """Paper grain, sensor noise, a crumpled or patterned surface photographed by mistake."""
    coarse = int(r.integers(2, 24))
    field = r.random((coarse, coarse)).astype(np.float32)
    smooth = np.asarray(Image.fromarray(field).resize((side, side), Image.Resampling.BICUBIC), dtype=np.float32)
    fine = r.random((side, side)).astype(np.float32)
    mix = r.uniform(0, 1)
    values = mix * smooth + (1 - mix) * fine
    if r.random() < 0.5:  # sparse: only the darkest marks of the surface count as ink
        values = np.clip((values - r.uniform(0.5, 0.85)) * 4, 0, 1)
    return np.clip(values, 0.0, 1.0)


GENERATORS: dict[str, Callable[[np.random.Generator, int], np.ndarray]] = {
    "glyph": lambda r, side: render(GLYPHS[str(r.choice(TRAINING_GLYPHS))], r, side),
    "scribble": lambda r, side: render(scribble(r), r, side, pen=(0.02, 0.08)),
    "blob": blob,
    "texture": texture,
}
# How often each kind is drawn: mostly things with strokes, which are the ones a model confuses.
WEIGHTS = {"glyph": 0.55, "scribble": 0.25, "blob": 0.08, "texture": 0.12}


def nondigit(r: np.random.Generator, side: int = 96, kind: str | None = None) -> tuple[str, np.ndarray]:
    """(kind, ink coverage in [0, 1]) of something that is not a digit."""
    kind = kind or str(r.choice(list(WEIGHTS), p=list(WEIGHTS.values())))
    return kind, GENERATORS[kind](r, side)
