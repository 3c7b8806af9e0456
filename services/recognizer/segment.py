"""Every digit in an upload, left to right, each made into an MNIST field.

People upload "42" as readily as "4". The ink (preprocess.to_ink) falls into marks, connected
runs of stroke pixels (scipy.ndimage.label). Marks that share most of their horizontal extent
belong to one digit (a 5's detached bar, a 1's base, a stroke broken by a dry pen); dust is
dropped. Each remaining mark is one digit, unless it is wide for a digit: then it may be several
that touch, and its spans between candidate cut points are offered as well. Which reading wins
is the model's to say (reading.py finds the path of spans it is surest of), not a fixed rule
of geometry.

A digit that fills only a few pixels of a large photo is read again from the full-resolution
image around it, rather than from the working copy where it would be a smudge. The other way
round, a canvas, scan or photo whose digits are big is read on a copy reduced to ~128 px (a
third of the CPU): the field keeps 20 px of a digit, and digits under 40 px there are read on the
working copy.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from PIL import Image
from scipy import ndimage

from services.recognizer import decoding, preprocess
from services.recognizer.decoding import ImageError, Limits

MAX_DIGITS = 12
# Two marks are one digit when they share this much of the narrower one's width and no more
# than STACKED of the shorter one's height, or when they share CONTAINED of its width.
OVERLAP = 0.5
STACKED = 0.5
CONTAINED = 0.85
# A mark below this share of the tallest mark's height, and light, is a dot or dust, not a digit.
MIN_HEIGHT = 0.35
LIGHT = 0.2
# Wider than this × its height, a mark may be touching digits: it is offered cut at candidate
# points, and every span between two of them from MIN_SPAN to MAX_SPAN × its height wide (a
# digit's width, a narrow 1 to a broad 0) is scored by the model.
WIDE = 1.15
MIN_SPAN = 0.15
MAX_SPAN = 1.3
# Candidate points: valleys of the column profile, and these shares of the width (where two
# round digits overlap, no column need be thinner than their middles); at most MAX_POINTS, at
# least MIN_GAP × the height apart.
PAIR_CUTS = (0.35, 0.42, 0.5, 0.58, 0.65)
MAX_POINTS = 16
# A mark whose box is mostly ink is a filled shape (a shadow, a blot), not strokes: never cut
# (each slice of a solid block would read as a bold 1). Handwriting fills a third of its box.
SOLID = 0.65
MIN_GAP = 0.1
# More marks than this is texture or noise, not a row of digits: read as one mark (the model
# then refuses it as "not a digit").
MAX_MARKS = 4 * MAX_DIGITS
# Digits spanning less than this share of the working copy's longer side are re-read from the
# full-resolution image, if it is at least FULL_RES_GAIN times larger.
SMALL = 0.15
FULL_RES_GAIN = 1.5
# A mark on a reduced copy (preprocess.reduction) shorter than this on its longer side is read
# again at the working copy's resolution: twice the 20 px the field gives a digit.
REDUCED_MIN_DIGIT = 2 * preprocess.BOX
MARGIN = 0.3  # of the digits' extent, kept around them in the full-resolution crop

Box = tuple[int, int, int, int]  # x, y, width, height in the upright upload's pixels


@dataclass(frozen=True)
class Piece:
    field: np.ndarray  # float32 28×28, what the model reads
    box: Box


@dataclass(frozen=True)
class Group:
    """One mark and the ways to read it: ``pieces[(i, j)]`` is the mark from its ``i``-th to its
    ``j``-th cut point (points 0 and ``points - 1`` are its left and right edges), so
    ``pieces[(0, points - 1)]`` is the whole mark and any path of spans from 0 to the last point
    is one reading of it as touching digits."""

    points: int
    pieces: dict[tuple[int, int], Piece]

    @property
    def whole(self) -> Piece:
        return self.pieces[(0, self.points - 1)]


@dataclass(frozen=True)
class _Frame:
    """Where the ink array sits in the upright upload: its pixel (0, 0) and its pixel size."""

    x: float
    y: float
    scale: float

    def box(self, top: int, bottom: int, left: int, right: int) -> Box:
        return (round(self.x + left * self.scale), round(self.y + top * self.scale),
                max(1, round((right - left) * self.scale)), max(1, round((bottom - top) * self.scale)))


@dataclass(frozen=True)
class _Look:
    """The ink of one grayscale copy, where it sits in the upload, and the marks found on it."""

    ink: np.ndarray
    mask: np.ndarray
    marks: list[_Mark]
    frame: _Frame

    @property
    def bbox(self) -> tuple[int, int, int, int]:
        """Top, bottom, left, right of all the marks together (exclusive ends)."""
        return (min(m.top for m in self.marks), max(m.bottom for m in self.marks),
                min(m.left for m in self.marks), max(m.right for m in self.marks))  # fmt: skip


def _look(gray: np.ndarray, frame: _Frame) -> _Look:
    ink = preprocess.to_ink(gray)
    mask = preprocess.stroke_mask(ink)
    return _Look(ink, mask, _marks(ink, mask), frame)


def _look_reduced(image: Image.Image, full_width: int) -> _Look | None:
    """The marks on a copy reduced by preprocess.reduction(image), if it is reduced and every
    mark on it is still at least REDUCED_MIN_DIGIT px: then the reduction lost nothing the 20 px
    field keeps. None otherwise: small digits are looked for at the working copy's resolution."""
    factor = preprocess.reduction(image)
    if factor < 2:
        return None
    reduced = preprocess.reduced(image, factor)
    try:
        look = _look(preprocess.to_grayscale(reduced), _Frame(0.0, 0.0, full_width / image.width * factor))
    except ImageError:  # the full-resolution look gives the answer, whatever it is
        return None
    if min(max(m.bottom - m.top, m.right - m.left) for m in look.marks) < REDUCED_MIN_DIGIT:
        return None
    return look


def read(data: bytes, limits: Limits = Limits()) -> list[Group]:
    """The digits of an encoded image, left to right (ImageError if there are none or too many)."""
    image, (full_width, full_height) = decoding.open_upright(data, limits, draft=True)
    image = decoding.working_size(image)
    # Photos too: a digit that fills much of a photo is read on the reduced copy at a quarter of
    # the working copy's cost; one small in the frame costs that quarter more, and is read below.
    look = _look_reduced(image, full_width)
    if look is None:
        look = _look(preprocess.to_grayscale(image), _Frame(0.0, 0.0, full_width / image.width))
        top, bottom, left, right = look.bbox
        extent = max(bottom - top, right - left)
        if extent < SMALL * max(image.size) and full_width >= FULL_RES_GAIN * image.width:
            # The digits are small in a large frame: crop them from the full-resolution image.
            # Decoded again (rare): the working copy was shrunk in place, or drafted by libjpeg.
            full, _ = decoding.open_upright(data, limits)
            scale, margin = look.frame.scale, MARGIN * extent
            x0, y0 = max(0.0, (left - margin) * scale), max(0.0, (top - margin) * scale)
            x1 = min(float(full_width), (right + margin) * scale)
            y1 = min(float(full_height), (bottom + margin) * scale)
            crop = decoding.working_size(full.crop((round(x0), round(y0), round(x1), round(y1))))
            frame = _Frame(round(x0), round(y0), (round(x1) - round(x0)) / crop.width)
            look = _look(preprocess.to_grayscale(crop), frame)
    if len(look.marks) == 1:  # one digit: exactly the single-digit path (dust handling included)
        mark = look.marks[0]
        field = preprocess.center_in_field(look.ink, look.mask, mark.bbox if mark.whole else None)
        return [_group(mark, look.frame, field)]
    return [_group(m, look.frame, preprocess.center_in_field(m.ink)) for m in look.marks]


@dataclass
class _Mark:
    top: int
    bottom: int
    left: int
    right: int
    labels: set[int]
    weight: float
    window: tuple[np.ndarray, np.ndarray] = None  # type: ignore[assignment]  # labels and ink in its bbox
    # The mask's only component: its box is the box center_in_field would find (one run of rows
    # and of columns, no dust to drop), so it is handed over rather than found again.
    whole: bool = False

    # Made when needed: a lone digit that is not wide never needs them.
    @functools.cached_property
    def mask(self) -> np.ndarray:
        """Its own stroke pixels, in its bounding box."""
        return np.isin(self.window[0], list(self.labels))

    @functools.cached_property
    def ink(self) -> np.ndarray:
        """Its own ink in its bounding box: its strokes and the unlabelled faint pixels around
        them (anti-aliased edges), not its neighbours' strokes."""
        own = self.mask | (self.window[0] == 0)
        return np.where(own, self.window[1], 0.0).astype(np.float32)

    @property
    def bbox(self) -> tuple[int, int, int, int]:
        return self.top, self.bottom, self.left, self.right

    def absorb(self, other: _Mark) -> None:
        self.top, self.bottom = min(self.top, other.top), max(self.bottom, other.bottom)
        self.left, self.right = min(self.left, other.left), max(self.right, other.right)
        self.labels |= other.labels
        self.weight += other.weight


def _marks(ink: np.ndarray, mask: np.ndarray) -> list[_Mark]:
    labels, count = ndimage.label(mask, structure=np.ones((3, 3), dtype=bool))
    if count == 0:
        raise ImageError("NO_DIGIT_FOUND", "no digit found: no stroke is large enough")
    if count == 1:  # the usual upload, one connected digit: its box from the mask's projections
        rows, columns = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
        boxes = [(slice(rows[0], rows[-1] + 1), slice(columns[0], columns[-1] + 1))]
        sizes = np.array([float(np.count_nonzero(mask))])
        whole = True
    else:
        boxes = ndimage.find_objects(labels)
        # Pixels per mark: a bincount is ~5× cheaper than ndimage.sum_labels, and equal (the
        # mask is 1 exactly where a label is).
        sizes = np.bincount(labels.ravel(), minlength=count + 1)[1:].astype(np.float64)
        whole = False
    marks = [
        _Mark(int(s[0].start), int(s[0].stop), int(s[1].start), int(s[1].stop), {i + 1}, float(sizes[i]),
              whole=whole)  # fmt: skip
        for i, s in enumerate(boxes)
    ]
    # Dust is dropped, unless everything is dust (a texture): then it all stays, and is read whole.
    large = [m for m in marks if m.weight >= preprocess.SPECK_FRACTION * sizes.sum()]
    marks = _merge(large or marks)
    texture = not large
    tallest = max(m.bottom - m.top for m in marks)
    heaviest = max(m.weight for m in marks)
    marks = [m for m in marks if m.bottom - m.top >= MIN_HEIGHT * tallest or m.weight >= LIGHT * heaviest]
    if texture or len(marks) > MAX_MARKS:  # texture, not digits
        whole = marks[0]
        for m in marks[1:]:
            whole.absorb(m)
        marks = [whole]
    if len(marks) > MAX_DIGITS:
        raise ImageError("TOO_MANY_DIGITS", f"found {len(marks)} digits; at most {MAX_DIGITS} are read in one image")
    marks.sort(key=lambda m: m.left)
    for m in marks:
        m.window = (labels[m.top : m.bottom, m.left : m.right], ink[m.top : m.bottom, m.left : m.right])
    return marks


def _merge(marks: list[_Mark]) -> list[_Mark]:
    """Join marks that are parts of one digit, until none are: they share most of the narrower
    one's width and lie one above the other (a detached bar or base, a broken stroke), or one
    lies almost wholly within the other's columns. Two slanted digits side by side share
    columns too, but each spans the full height: they stay apart."""
    merged = True
    while merged:
        merged = False
        marks.sort(key=lambda m: m.left)
        for i, a in enumerate(marks):
            for b in marks[i + 1 :]:
                if b.left >= a.right:
                    break
                if _one_digit(a, b):
                    a.absorb(b)
                    marks.remove(b)
                    merged = True
                    break
            if merged:
                break
    return marks


def _one_digit(a: _Mark, b: _Mark) -> bool:
    narrower = min(a.right - a.left, b.right - b.left)
    shared_x = min(a.right, b.right) - max(a.left, b.left)
    shared_y = min(a.bottom, b.bottom) - max(a.top, b.top)
    shorter = min(a.bottom - a.top, b.bottom - b.top)
    return shared_x >= CONTAINED * narrower or (shared_x >= OVERLAP * narrower and shared_y <= STACKED * shorter)


def _group(mark: _Mark, frame: _Frame, whole: np.ndarray) -> Group:
    """The mark whole and, if it is wide for one digit, every span between two of its candidate
    cut points that is as wide as a digit can be: the model scores each once, and reading.py
    finds the best path through them (segmentation by recognition)."""
    height, width = mark.bottom - mark.top, mark.right - mark.left
    if width <= WIDE * height or mark.mask.mean() > SOLID:
        return Group(2, {(0, 1): Piece(whole, frame.box(*mark.bbox))})
    points = _cut_points(mark)
    pieces = {(0, len(points) - 1): Piece(whole, frame.box(*mark.bbox))}
    for i, a in enumerate(points):
        for j in range(i + 1, len(points)):
            b = points[j]
            if b - a > MAX_SPAN * height:
                break
            if b - a < MIN_SPAN * height or (i, j) in pieces:
                continue
            try:
                field = preprocess.center_in_field(mark.ink[:, a:b])
            except ImageError:  # nothing but faint edges between these two points
                continue
            rows = np.flatnonzero(mark.mask[:, a:b].any(axis=1))
            top = mark.top + (int(rows[0]) if rows.size else 0)
            bottom = mark.top + (int(rows[-1]) + 1 if rows.size else height)
            pieces[(i, j)] = Piece(field, frame.box(top, bottom, mark.left + a, mark.left + b))
    return Group(len(points), pieces)


def _cut_points(mark: _Mark) -> list[int]:
    """Where two touching digits may meet: the valleys of the mark's column profile (few stroke
    pixels cross there) and a few fixed shares of its width, at least MIN_GAP apart; and its
    two edges."""
    height, width = mark.bottom - mark.top, mark.right - mark.left
    columns = np.convolve(mark.mask.sum(axis=0).astype(np.float64), np.ones(3) / 3, mode="same")
    inner = np.arange(1, width - 1)
    valleys = inner[(columns[inner] <= columns[inner - 1]) & (columns[inner] <= columns[inner + 1])
                    & (columns[inner] <= np.median(columns))]
    # Lowest valleys first; fixed shares only where no valley is near.
    candidates = [int(v) for v in valleys[np.argsort(columns[valleys], kind="stable")]]
    candidates += [round(f * width) for f in PAIR_CUTS]
    gap = max(2, round(MIN_GAP * height))
    chosen: list[int] = []
    for c in candidates:
        if gap <= c <= width - gap and all(abs(c - k) >= gap for k in chosen):
            chosen.append(c)
        if len(chosen) == MAX_POINTS:
            break
    return [0, *sorted(chosen), width]
