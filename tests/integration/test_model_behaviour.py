"""The committed model's promises, on real images through the service's own code path
(segment.read, the LiteRT model, reading.answer) but without a server: honest confidence,
refusing what is not a digit, and almost never refusing a digit. Smaller, fixed cuts of what
`make eval-styles` measures, so a worse model fails the suite."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from benchmarks import stylesets
from services.recognizer import calibration, reading, segment
from services.recognizer.config import DEFAULT_MODEL_DIR
from services.recognizer.model import DigitModel
from services.recognizer.decoding import ImageError
from tests.helpers import encode, mnist_test


@pytest.fixture(scope="module")
def model() -> DigitModel:
    return DigitModel(DEFAULT_MODEL_DIR)


def read(model: DigitModel, data: bytes) -> str | None:
    """The number read, or None when refused."""
    try:
        groups = segment.read(data)
        scores = list(model.predict(np.stack(reading.fields(groups))[..., None]))
        return reading.answer(groups, scores, model.metadata["calibration"]["not_digit_threshold"], model.version).number
    except ImageError:
        return None


def test_confidence_on_mnist_test_digits_is_calibrated(model):
    images, labels = mnist_test(3000)
    p = model.predict(images[..., None].astype(np.float32) / 255.0)
    rel = calibration.digit_reliability(p, labels)
    assert rel.ece < 0.01
    assert model.metadata["calibration"]["ece_after"] < 0.01


def test_digits_are_almost_never_refused(model):
    images, labels = mnist_test(400)
    answers = [read(model, encode(image)) for image in images]
    assert sum(a is None for a in answers) <= 2
    assert sum(a == str(label) for a, label in zip(answers, labels)) >= 0.98 * len(labels)


def test_most_of_what_is_not_a_digit_is_refused(model):
    cases = list(itertools.islice(stylesets.not_digit_cases(count=120, unseen=0), 120))
    refused = sum(read(model, c.data) is None for c in cases)
    assert refused >= 0.85 * len(cases)


def test_the_styles_mnist_lacks_are_read(model):
    cases = [c for c in stylesets.style_cases(per_style=4) if c.set.startswith(("style:1", "style:4", "style:7", "style:9"))]
    right = sum(read(model, c.data) == c.expected for c in cases)
    assert right >= 0.95 * len(cases)


def test_numbers_apart_are_read_whole(model):
    images, labels = mnist_test(10_000)
    cases = [c for c in itertools.islice(stylesets.number_cases(images, labels, per_set=20), 20)]
    assert {c.set for c in cases} == {"numbers-spaced"}
    right = sum(read(model, c.data) == c.expected for c in cases)
    assert right >= 17
