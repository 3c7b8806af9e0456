"""Temperature scaling, calibration error and the refusal threshold, on generated scores whose
true calibration is known."""

from __future__ import annotations

import numpy as np
import pytest

from services.recognizer import calibration


def _sampled(temperature: float, n: int = 20_000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Logits, and labels drawn from softmax(logits / temperature): T is what calibrates them."""
    r = np.random.default_rng(seed)
    logits = r.normal(0, 4, size=(n, 10))
    p = calibration.softmax(logits, temperature)
    labels = np.array([r.choice(10, p=row) for row in p])
    return logits, labels


@pytest.mark.parametrize("true_t", [0.5, 1.0, 2.5])
def test_the_fitted_temperature_is_the_one_that_made_the_labels(true_t):
    logits, labels = _sampled(true_t)
    assert calibration.fit_temperature(logits, labels) == pytest.approx(true_t, rel=0.08)


def test_scaling_by_the_fitted_temperature_removes_the_calibration_error():
    logits, labels = _sampled(2.0)
    before = calibration.digit_reliability(calibration.softmax(logits, 1.0), labels)
    after = calibration.digit_reliability(calibration.softmax(logits, calibration.fit_temperature(logits, labels)), labels)
    assert before.ece > 0.05  # T = 1 is overconfident here
    assert after.ece < 0.02
    assert sum(after.counts) == len(labels)


def test_split_renormalises_the_digits_and_keeps_not_a_digit_apart():
    p = np.array([[0.1, 0.1] + [0.0] * 8 + [0.8]])
    digits, not_digit = calibration.split(p)
    np.testing.assert_allclose(digits[0, :2], [0.5, 0.5])
    assert not_digit[0] == pytest.approx(0.8)
    ten = np.full((1, 10), 0.1)
    assert calibration.split(ten)[1][0] == 0.0  # a 10-output model never says "not a digit"


def test_the_threshold_refuses_at_most_the_allowed_share_of_digits():
    r = np.random.default_rng(1)
    scores = np.concatenate([r.beta(1, 30, 5000), r.beta(20, 2, 5000)])
    is_digit = np.arange(10_000) < 5000
    t = calibration.choose_threshold(scores, is_digit, 0.003)
    assert (scores[is_digit] >= t).mean() <= 0.003
    refused_others = (scores[~is_digit] >= t).mean()
    assert refused_others > 0.9
    curve = calibration.refusal_curve(scores, is_digit, np.array([0.5, t, 0.99]))
    assert [c[0] for c in curve] == [0.5, t, 0.99]
    assert curve[0][2] >= curve[1][2] >= curve[2][2]
