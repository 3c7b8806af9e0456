"""The synthetic training data (synth/): reproducible from the seed, ink where expected, and the
non-digits free of anything a reader would take for a digit."""

from __future__ import annotations

import numpy as np

from services.recognizer.synth import dataset, nondigits, strokes


def test_the_same_seed_draws_the_same_images():
    a, la = dataset.styles(30, seed=5)
    b, lb = dataset.styles(30, seed=5)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(la, lb)
    assert not np.array_equal(a, dataset.styles(30, seed=6)[0])


def test_every_style_of_every_digit_draws_ink():
    r = np.random.default_rng(0)
    for label, styles in strokes.DIGITS.items():
        for style in styles:
            _, coverage = strokes.digit(label, r, style)
            assert coverage.max() > 0.5, (label, style)


def test_digit_like_glyphs_are_never_taught_as_not_a_digit():
    for name in ("O", "o", "I", "l", "S", "Z", "B", "G", "g", "q", "C", "J"):
        assert name not in nondigits.GLYPHS
    assert not set(nondigits.HELD_OUT) & set(nondigits.TRAINING_GLYPHS)


def test_not_digits_are_fields_labelled_ten():
    x, y = dataset.not_digits(20, seed=1)
    assert x.shape == (20, 28, 28) and x.dtype == np.uint8
    assert set(y) == {dataset.NOT_A_DIGIT}


def test_stretching_fills_the_box_whatever_the_proportions():
    narrow = np.zeros((96, 96), dtype=np.float32)
    narrow[10:86, 45:51] = 1.0  # a bare 1
    filled = strokes.stretch_to_fill(narrow)
    cols = np.flatnonzero(filled.max(axis=0) > 0.5)
    assert cols[-1] - cols[0] > 60
