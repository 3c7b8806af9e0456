"""order_stats gives numpy's medians and percentiles bit for bit, so preprocessing's fields do not
change by a single bit when it uses them."""

from __future__ import annotations

import numpy as np
import pytest

from services.recognizer.order import median, order_stats


def _arrays():  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(7)
    for n in (1, 2, 3, 4, 5, 8, 9, 10, 31, 64, 999, 1000, 1001, 4096, 12_321):
        for dtype in (np.float32, np.float64):
            yield rng.random(n).astype(dtype)  # distinct values
            yield (rng.integers(0, 256, n) / 255).astype(dtype)  # 8-bit pixels: many ties
            yield (rng.normal(0, 0.05, (1, n)) ** 3).astype(dtype)  # tiny and signed, 2-D


def _same(ours: float, theirs) -> bool:  # type: ignore[no-untyped-def]
    return np.float64(ours).tobytes() == np.float64(theirs).tobytes()


@pytest.mark.parametrize("index", range(90))
def test_the_median_and_percentiles_are_numpys_to_the_bit(index: int):
    values = list(_arrays())[index]
    assert _same(median(values), np.median(values))
    found_median, (low, high) = order_stats(values, (0.2, 99.8))
    expected_low, expected_high = np.percentile(values, [0.2, 99.8])
    assert _same(found_median, np.median(values))
    assert _same(low, expected_low) and _same(high, expected_high)
    for q in (99.9, 50.0, 0.0, 100.0, 33.3):
        assert _same(order_stats(values, (q,), alone=True)[1][0], np.percentile(values, q))
    qs = list(np.random.default_rng(index).uniform(0, 100, 5))
    assert all(_same(a, b) for a, b in zip(order_stats(values, qs)[1], np.percentile(values, qs)))


def test_the_input_is_left_as_it_was():
    values = np.array([3.0, 1.0, 2.0, 5.0], dtype=np.float32)
    order_stats(values, (10, 90))
    assert values.tolist() == [3.0, 1.0, 2.0, 5.0]
