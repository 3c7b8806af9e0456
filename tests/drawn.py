"""Real images for the tests of numbers and "not a digit": rows of MNIST test digits and symbols
drawn by the synthetic pen, photographed on paper the way the evaluation sets are (fixed seeds,
so every run posts the same bytes)."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from benchmarks.stylesets import photo, row_of_digits
from services.recognizer.synth import nondigits, strokes
from tests.helpers import mnist_test


def number(count: int = 3, gap: int = 5, start: int = 0, scale: int = 4, seed: int = 0) -> tuple[bytes, str]:
    """(PNG/JPEG bytes, expected string) of ``count`` MNIST test digits side by side, ``gap`` px
    apart at 28 px height (negative: overlapping), enlarged ``scale`` times."""
    images, labels = mnist_test(start + count)
    row = row_of_digits(list(images[start : start + count]), gap)
    big = np.asarray(Image.fromarray(row).resize((row.shape[1] * scale, 28 * scale), Image.Resampling.BILINEAR))
    data, _, _ = photo(big, np.random.default_rng(seed), margin=0.1)
    return data, "".join(str(label) for label in labels[start : start + count])


def symbol(name: str, seed: int = 0) -> bytes:
    """A glyph of synth/nondigits.GLYPHS (a letter, a symbol, a shape), photographed."""
    r = np.random.default_rng(seed)
    data, _, _ = photo(strokes.render(nondigits.GLYPHS[name], r, stretch_probability=0.0), r)
    return data


def png(coverage: np.ndarray) -> bytes:
    """Ink coverage in [0, 1] as dark ink on white, PNG."""
    buffer = io.BytesIO()
    Image.fromarray(np.round(255 - 255 * coverage).astype(np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()
