"""Turn an uploaded image into the 28×28 array the model was trained on.

MNIST digits were made by a known recipe: white ink on black, the digit's bounding box scaled
so its longest side is 20 px (keeping the aspect ratio), then placed in a 28×28 field with its
centre of mass at the centre. A network trained on them only works on images made the same
way, so real uploads (dark ink on paper, phone photos, canvas drawings with a transparent
background, any size and position) go through that recipe here, after defensive decoding (decoding.py):

    decode (first frame, EXIF orientation, size limits) → grayscale (alpha flattened)
    → ink (polarity, background and noise removed) → crop, scale to 20 px, centre in 28×28
"""

from __future__ import annotations

import functools
import math
import operator

import numpy as np
from PIL import Image

from services.recognizer.decoding import ImageError, Limits, decode, working_mode
from services.recognizer.order import median, order_stats

FIELD = 28
BOX = 20
# Digits are first looked for on a copy averaged down to about this many px on its shorter side
# (a 280 px canvas to 140 px), and only when they are big there (see segment.read): the field
# gives a digit 20 px, so the finer grain only cost time (a canvas took ~1.6 ms of CPU, half of it
# on pixels the field discards). Small digits are looked for at the working copy's resolution.
REDUCED_SIDE = 128
# A separate blob holding less than this fraction of the ink is dust, not part of the digit.
SPECK_FRACTION = 0.03
# Paper whose fitted level varies by less than this (in [0, 1]) is treated as evenly lit: less
# than a grey level or two, far below what the noise floor (NOISE_SIGMAS) removes anyway.
FLAT_PAPER = 0.008
# Paper whose cells on the background grid are all within this of each other (half a grey
# level) is one level throughout: a canvas drawing, a rendered or cleanly scanned page. Its
# background is that level, without a fit (a fifth of a canvas's preprocessing).
EVEN_PAPER = 0.5 / 255
# Percentiles (polarity, contrast, noise) are taken from a regular subsample of at most about
# this many pixels: the 99.9th percentile is then still the mean of ~12 of the strongest.
SAMPLE_PIXELS = 12_000
# The background (paper, shadows, vignetting) is estimated on a grid at most this size.
BACKGROUND_GRID = 32
# Ink (normalised, 1 = the strongest stroke) above which a pixel belongs to the digit's bounding
# box. MNIST's anti-aliased edges go down to 1/255, so a high threshold would crop them and
# enlarge the digit; this is just above what noise leaves after the noise floor.
INK_THRESHOLD = 0.1
# Ink fainter than this many noise standard deviations (estimated from the paper) is noise.
# No fixed floor: on a clean image it would erase MNIST's faint anti-aliased edges (a fixed
# 0.15 cost 0.5-0.7 points of accuracy on MNIST digits uploaded as PNG).
NOISE_SIGMAS = 3.0
# A digit must cover at least this many pixels of the working copy to be found when it is too
# small for the sampled percentiles (a digit 5% of a 3000 px photo covers a few hundred).
RARE_PIXELS = 24
# Below this contrast between paper and the strongest ink there is no digit to see.
MIN_CONTRAST = 0.12

# An alpha channel whose every pixel is at least this is opaque (within 0.99).
OPAQUE = 253


def to_grayscale(image: Image.Image) -> np.ndarray:
    """Luminance in [0, 1] (float32), with any transparency flattened onto a contrasting paper
    (``flat_luma``)."""
    image = working_mode(image)
    if image.mode == "F":
        return np.clip(np.asarray(image, dtype=np.float32), 0.0, 1.0)
    luma = np.asarray(flat_luma(image), dtype=np.float32)
    luma /= 255.0
    return luma


def flat_luma(image: Image.Image) -> Image.Image:
    """An 8-bit L, RGB or RGBA image's luma (mode L), transparency flattened onto a paper that
    contrasts with the visible ink.

    A canvas drawing is often ink on a transparent background; whatever colour the hidden
    pixels have is meaningless (often transparent black under black ink), so the paper is
    chosen to contrast with the visible ink. PIL's L conversion is ITU-R 601 luma in integer
    arithmetic (at most 1/255 from the exact value), about four times cheaper than in float in
    numpy; its histogram and compositing took a transparent canvas 10% less CPU than numpy's.
    """
    if image.mode == "L":
        return image
    luma = image.convert("L")
    if image.mode != "RGBA":
        return luma
    alpha = image.getchannel("A")
    # The least alpha by numpy: PIL's getextrema takes four times as long on an opaque image.
    if np.frombuffer(alpha.tobytes(), dtype=np.uint8).min() >= OPAQUE:
        return luma
    # The luma of the pixels one sees: alpha above one half (mode 1 without dither: >= 128).
    counts = luma.histogram(alpha.convert("1", dither=Image.Dither.NONE))
    seen = sum(counts)
    ink_is_dark = not seen or sum(map(operator.mul, range(256), counts)) < 127.5 * seen
    paper = Image.new("L", image.size, 255 if ink_is_dark else 0)
    return Image.composite(luma, paper, alpha)


def reduction(image: Image.Image) -> int:
    """The integer k by which a working copy can be averaged over k×k blocks (``Image.reduce``:
    every pixel an exact box mean) to about REDUCED_SIDE px on its shorter side; 1 when it is
    under twice that."""
    return max(1, min(image.size) // REDUCED_SIDE)


def reduced(image: Image.Image, factor: int) -> Image.Image:
    """``image`` averaged over ``factor``×``factor`` blocks, in luma alone: flattened first
    (``flat_luma``), which up to rounding is flattening the average (compositing is linear),
    with one band to average instead of three or four."""
    if image.mode in ("RGB", "RGBA"):
        image = flat_luma(image)
    return image.reduce(factor)


def _background(gray: np.ndarray) -> np.ndarray:
    """The slowly varying paper level under light ink: shadows, vignetting, a lighting gradient.

    A quadratic surface is fitted to the paper on a coarse grid, ignoring cells that stand out
    above it (ink), as a scanner's flat-field correction would. A quadratic cannot bend around
    a stroke, so however bold the digit, the estimate never eats into it; on clean paper it is
    flat and subtracting it changes nothing.
    """
    height, width = gray.shape
    grid = _coarse(gray).astype(np.float64)
    values = grid.ravel()
    level = median(values)
    if level - float(values.min()) < EVEN_PAPER:  # one level throughout (a drawing, a clean scan):
        return np.float32(level)  # type: ignore[return-value]  # nothing to fit
    terms = _quadratic_terms(grid.shape)
    paper = values <= level  # the paper is the majority of any photo of a digit
    for _ in range(3):
        if paper.sum() < 12:
            return np.full_like(gray, level)
        coefficients = _least_squares(terms[paper], values[paper])
        fitted = terms @ coefficients
        spread = 1.4826 * median(np.abs(values[paper] - fitted[paper]))
        refined = values - fitted <= 2.5 * spread + 0.02
        if np.array_equal(refined, paper):  # converged: another round would fit the same cells
            break
        paper = refined
    if float(np.ptp(fitted)) < FLAT_PAPER:  # evenly lit: a constant, without a full-size surface
        return np.float32(fitted.mean())  # type: ignore[return-value]  # broadcasts like the array
    surface = Image.fromarray(fitted.reshape(grid.shape).astype(np.float32))
    return np.asarray(surface.resize((width, height), Image.Resampling.BILINEAR), dtype=np.float32)


def _coarse(gray: np.ndarray) -> np.ndarray:
    """``gray`` averaged onto a grid of at most BACKGROUND_GRID cells a side: PIL's BOX resize,
    done as two small matrix products with PIL's own weights (a quarter of the resize's cost)."""
    height, width = gray.shape
    scale = min(1.0, BACKGROUND_GRID / max(height, width))
    rows, columns = max(1, round(height * scale)), max(1, round(width * scale))
    return _box_weights(height, rows).T @ gray @ _box_weights(width, columns)


@functools.lru_cache(maxsize=128)
def _box_weights(size: int, cells: int) -> np.ndarray:
    """(size, cells) float32: column j holds the weight of each of ``size`` pixels in cell j when
    PIL's BOX filter resizes that axis to ``cells``; taken from PIL itself (an identity matrix,
    resized), so the cells are PIL's to within float32 rounding. Cached: few sizes recur."""
    identity = Image.fromarray(np.eye(size, dtype=np.float32))
    weights = np.asarray(identity.resize((cells, size), Image.Resampling.BOX), dtype=np.float32)
    weights.flags.writeable = False  # shared between calls
    return weights


@functools.lru_cache(maxsize=256)
def _quadratic_terms(shape: tuple[int, int]) -> np.ndarray:
    """1, x, y, x², xy, y² at each cell of a grid spanning [-1, 1]² (cached: few grid shapes recur)."""
    ys, xs = np.mgrid[-1 : 1 : shape[0] * 1j, -1 : 1 : shape[1] * 1j]
    terms = np.stack([np.ones_like(xs), xs, ys, xs * xs, xs * ys, ys * ys], axis=-1).reshape(-1, 6)
    terms.flags.writeable = False  # shared between calls
    return terms


def _least_squares(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The least-squares solution of a @ x = b: by the normal equations (6×6, ~20 µs) when they
    are well conditioned, else by SVD (lstsq, ~10× slower but safe for degenerate grids)."""
    gram = a.T @ a
    # Its condition number from the eigenvalues (gram is symmetric): half the cost of cond's SVD.
    low, high = np.linalg.eigvalsh(gram)[[0, -1]]
    if low > 0 and high < 1e10 * low:
        return np.linalg.solve(gram, a.T @ b)
    return np.linalg.lstsq(a, b, rcond=None)[0]


def _sample(values: np.ndarray) -> np.ndarray:
    """A regular subsample of at most ~SAMPLE_PIXELS pixels: plenty for the percentiles taken
    from it, and it keeps their cost (a partial sort each) flat whatever the working size."""
    step = max(1, math.ceil(np.sqrt(values.size / SAMPLE_PIXELS)))
    return values[::step, ::step]


def _polarity_is_dark_ink(gray: np.ndarray) -> bool:
    """Is the ink darker than the paper? The paper is the typical (median) level; the ink is the
    side that departs from it the most, whatever the paper's brightness or tint."""
    sample = _sample(gray)
    paper, (low, high) = order_stats(sample, (0.2, 99.8))
    return paper - float(low) > float(high) - paper


def to_ink(gray: np.ndarray) -> np.ndarray:
    """Ink intensity in [0, 1] on a zero background, whatever the polarity or lighting of the upload."""
    dark = _polarity_is_dark_ink(gray)
    ink = _ink(1.0 - gray if dark else gray, rare=False)
    if ink is None:
        # Nothing stands out in the sample: perhaps a digit too small in a large frame to
        # reach its percentiles. Look at every pixel's extremes instead (slower, and rare).
        paper = median(_sample(gray))
        flat = gray.ravel()
        k = min(RARE_PIXELS, flat.size - 1)
        low, high = float(np.partition(flat, k)[k]), float(np.partition(flat, -k - 1)[-k - 1])
        dark = paper - low > high - paper
        ink = _ink(1.0 - gray if dark else gray, rare=True)
    if ink is None:
        raise ImageError("NO_DIGIT_FOUND", "no digit found: the image has no visible ink")
    return ink


def _ink(gray: np.ndarray, rare: bool) -> np.ndarray | None:
    """Light ink on dark paper -> ink in [0, 1], or None when nothing reaches MIN_CONTRAST.
    The strongest ink is the 99.9th percentile of a sample or, ``rare``, the RARE_PIXELS-th
    strongest pixel of all."""
    residual = gray - _background(gray)
    sample = _sample(residual)
    middle, (top,) = order_stats(sample, (99.9,), alone=True)
    if rare:
        flat = residual.ravel()
        k = min(RARE_PIXELS, flat.size - 1)
        peak = float(np.partition(flat, -k - 1)[-k - 1])
    else:
        peak = top if sample.size >= 1000 else float(sample.max())
    if peak < MIN_CONTRAST:
        return None
    # Paper texture, sensor and JPEG noise: the robust spread of the residual, which is mostly
    # paper (measured before clipping, or half the paper's noise would be hidden at zero).
    sigma = 1.4826 * median(np.abs(sample - middle)) / peak
    floor = min(0.5, NOISE_SIGMAS * sigma)
    # In place: the same operations in the same order, without a temporary each.
    ink = residual / peak
    ink -= floor
    ink /= 1.0 - floor
    np.clip(ink, 0.0, 1.0, out=ink)
    return ink.astype(np.float32, copy=False)


def _box3(values: np.ndarray) -> np.ndarray:
    """Mean over each pixel's 3×3 neighbourhood (zeros outside), as two 3-tap sums (rows, then
    columns): four array additions instead of eight."""
    height, width = values.shape
    padded = np.zeros((height + 2, width + 2), dtype=values.dtype)  # np.pad's Python costs more here
    padded[1:-1, 1:-1] = values
    rows = padded[:, :-2] + padded[:, 1:-1]
    rows += padded[:, 2:]
    columns = rows[:-2] + rows[1:-1]
    columns += rows[2:]
    columns /= 9.0
    return columns


def _extent(counts: np.ndarray) -> tuple[int, int]:
    """First and last+1 index of the digit along one axis of the mask, given inked pixels per
    row (or column): outer runs separated from the rest by an empty gap and holding under
    SPECK_FRACTION of the ink are dust or noise, and are dropped."""
    rows = np.flatnonzero(counts)
    first, end = int(rows[0]), int(rows[-1]) + 1
    if end - first == rows.size:  # one run, the usual digit: nothing to drop
        return first, end
    inked = counts > 0
    edges = np.flatnonzero(np.diff(np.concatenate(([False], inked, [False])).astype(np.int8)))
    runs = list(zip(edges[::2], edges[1::2]))  # [start, end) of each run of inked rows
    total = counts.sum()
    while len(runs) > 1 and counts[slice(*runs[0])].sum() < SPECK_FRACTION * total:
        total -= counts[slice(*runs.pop(0))].sum()
    while len(runs) > 1 and counts[slice(*runs[-1])].sum() < SPECK_FRACTION * total:
        total -= counts[slice(*runs.pop())].sum()
    return int(runs[0][0]), int(runs[-1][1])


def stroke_mask(ink: np.ndarray) -> np.ndarray:
    """Pixels that belong to strokes: inked, and so is enough of their neighbourhood (noise is
    mostly lone pixels, while strokes, even their anti-aliased edges, have inked neighbours)."""
    return (ink > INK_THRESHOLD) & (_box3(ink) > 2 * INK_THRESHOLD)


def _ink_bbox(ink: np.ndarray, mask: np.ndarray | None = None) -> tuple[int, int, int, int]:
    """Bounding box (top, bottom, left, right; exclusive ends) of the ink, ignoring specks.

    Dust bigger than what stroke_mask drops is away from the digit and small, which _extent
    recognises.
    """
    mask = stroke_mask(ink) if mask is None else mask
    if not mask.any():
        raise ImageError("NO_DIGIT_FOUND", "no digit found: no stroke is large enough")
    top, bottom = _extent(mask.sum(axis=1))
    left, right = _extent(mask.sum(axis=0))
    return top, bottom, left, right


def center_in_field(
    ink: np.ndarray, mask: np.ndarray | None = None, box: tuple[int, int, int, int] | None = None
) -> np.ndarray:
    """Crop to the digit, scale its longest side to 20 px, centre its mass in 28×28.
    ``mask``: stroke_mask(ink), when the caller has it already; ``box``: _ink_bbox(ink, mask),
    likewise."""
    top, bottom, left, right = box or _ink_bbox(ink, mask)
    digit = ink[top:bottom, left:right]
    height, width = digit.shape
    scale = BOX / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    # Shrinking averages the source pixels (BOX), like the anti-aliasing NIST's scans went
    # through; enlarging interpolates linearly, which cannot overshoot.
    resample = Image.Resampling.BOX if scale < 1 else Image.Resampling.BILINEAR
    resized = np.asarray(Image.fromarray(digit).resize(size, resample), dtype=np.float32)
    peak = resized.max()
    if peak <= 0:
        raise ImageError("NO_DIGIT_FOUND", "no digit found: the ink vanished when scaled")
    resized = resized / peak
    np.clip(resized, 0.0, 1.0, out=resized)

    h, w = resized.shape
    total = resized.sum()
    cy = float((resized.sum(axis=1) * np.arange(h)).sum() / total)
    cx = float((resized.sum(axis=0) * np.arange(w)).sum() / total)
    # MNIST puts the centre of mass at pixel index 14 (measured: 13.99, 14.00 on the test set),
    # i.e. half a pixel below and right of the geometric centre; so do we. (Python's min and max,
    # not np.clip: on two numbers that costs more than the rest of this function's arithmetic.)
    oy = min(max(round(FIELD / 2 - cy), 0), FIELD - h)
    ox = min(max(round(FIELD / 2 - cx), 0), FIELD - w)
    field = np.zeros((FIELD, FIELD), dtype=np.float32)
    field[oy : oy + h, ox : ox + w] = resized
    return field


def to_mnist(data: bytes, limits: Limits = Limits()) -> np.ndarray:
    """Encoded image bytes → float32 (28, 28) in [0, 1], white ink on black, MNIST-style."""
    return center_in_field(to_ink(to_grayscale(decode(data, limits))))
