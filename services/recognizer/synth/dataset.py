"""Training examples that MNIST lacks, as 28×28 model inputs made by the service's own preprocessing.

* styles: every digit drawn in the styles of strokes.DIGITS (the flagged 1, the crossed 7, the
  open 4, the open 9, …), with varied slant, proportions, pens, some stretched to fill the box;
* not a digit: nondigits.nondigit, label ``NOT_A_DIGIT`` (10);
* MNIST digits stretched to fill their box (stretched_mnist), as some scanners and forms do.

Each sample is drawn as dark ink on paper and goes through preprocess.to_ink and
center_in_field, exactly as an upload does, so what the model trains on is what it will see.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from services.recognizer import decoding, preprocess
from services.recognizer.synth import nondigits, strokes

NOT_A_DIGIT = 10
CLASSES = 11


def to_field(coverage: np.ndarray, r: np.random.Generator) -> np.ndarray | None:
    """Ink coverage -> the uint8 28×28 field the model sees, through the upload path (or None
    when preprocessing finds no digit-sized ink, as the service would refuse it)."""
    contrast = r.uniform(0.5, 0.95)
    paper = r.uniform(0.75, 1.0)
    gray = paper - contrast * coverage + r.normal(0, r.uniform(0.0, 0.03), coverage.shape)
    try:
        field = preprocess.center_in_field(preprocess.to_ink(np.clip(gray, 0, 1).astype(np.float32)))
    except decoding.ImageError:
        return None
    return np.round(field * 255).astype(np.uint8)


def styles(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``count`` synthetic handwritten digits, classes and styles in equal shares."""
    r = np.random.default_rng([seed, 1])
    fields, labels = [], []
    while len(fields) < count:
        label = len(fields) % 10
        _, coverage = strokes.digit(label, r)
        field = to_field(coverage, r)
        if field is not None:
            fields.append(field)
            labels.append(label)
    return np.stack(fields), np.asarray(labels, dtype=np.uint8)


def not_digits(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    r = np.random.default_rng([seed, 2])
    fields = []
    while len(fields) < count:
        _, coverage = nondigits.nondigit(r)
        field = to_field(coverage, r)
        if field is not None:
            fields.append(field)
    return np.stack(fields), np.full(count, NOT_A_DIGIT, dtype=np.uint8)


def stretched_mnist(images: np.ndarray, seed: int) -> np.ndarray:
    """MNIST digits (uint8 N×28×28) with their box stretched to a square, then re-centred.

    A 1 becomes a broad bar, a 7 a wide wedge: what such forms produce, and what MNIST never
    shows. Upsampled first so that the stretch does not blur a 2-pixel stroke away.
    """
    r = np.random.default_rng([seed, 3])
    out = np.empty_like(images)
    for i, image in enumerate(images):
        big = np.asarray(Image.fromarray(image).resize((84, 84), Image.Resampling.BILINEAR), dtype=np.float32) / 255.0
        # Part-way too: some forms stretch only to their box's proportions.
        coverage = strokes.stretch_to_fill(big, amount=1.0 if r.random() < 0.6 else r.uniform(0.3, 1.0))
        field = preprocess.center_in_field(coverage)
        out[i] = np.round(field * 255).astype(np.uint8)
    return out


def extra_training_set(seed: int, n_styles: int, n_not_digits: int) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = zip(styles(n_styles, seed), not_digits(n_not_digits, seed))
    return np.concatenate(xs), np.concatenate(ys)


# The validation split's synthetic images come from another random stream than training's.
VALIDATION_SEED = 1_000


def split_mnist(count: int, n_validation: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(validation indices, training indices) of MNIST's training set, from the seed."""
    order = np.random.default_rng(seed).permutation(count)
    return order[:n_validation], order[n_validation:]


def validation_set(x_mnist: np.ndarray, y_mnist: np.ndarray, seed: int, n_mnist: int,
                   n_synthetic: int) -> tuple[np.ndarray, np.ndarray]:
    """The validation split train.py fits the temperature and the refusal threshold on:
    held-out MNIST training digits, synthetic styles and non-digits from VALIDATION_SEED."""
    val_idx, _ = split_mnist(len(x_mnist), n_mnist, seed)
    x_extra, y_extra = extra_training_set(seed + VALIDATION_SEED, n_synthetic, n_synthetic)
    return np.concatenate([x_mnist[val_idx], x_extra]), np.concatenate([y_mnist[val_idx], y_extra])
