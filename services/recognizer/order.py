"""Medians and percentiles of an image's pixels, equal to numpy's bit for bit, for less CPU.

``np.median`` and ``np.percentile`` spend more time in Python (argument handling, reductions,
NaN checks) than in their partial sort on the few thousand values preprocessing gives them, and
preprocessing asks for nine an image. ``order_stats`` gives an array's median and percentiles
from one partial sort, computed as numpy computes them (its "linear" method), so that every
field the model reads stays exactly as it was; tests/unit/test_order.py checks it against numpy.
Arrays here never hold NaN (pixels and sums of them), so numpy's NaN handling is left out.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def order_stats(values: np.ndarray, percentiles: Sequence[float] = (), alone: bool = False) -> tuple[float, list[float]]:
    """``np.median(values)`` and ``np.percentile(values, q)`` for each q in ``percentiles``.

    ``alone``: as numpy answers a single percentile given as a Python number, which it
    interpolates in the array's own precision; for a list of them it interpolates in float64.
    """
    flat = values.ravel()
    n = flat.size
    kth = set(_middle_indices(n))
    spans = []  # (index below, index above, weight of the one above) per percentile
    for q in percentiles:
        virtual = (n - 1) * (q / 100)  # the same float64 arithmetic as numpy's
        if virtual >= n - 1:  # the last value: numpy takes index -1 for both neighbours
            spans.append((n - 1, n - 1, virtual + 1))
        else:
            below = math.floor(virtual)
            spans.append((below, below + 1, virtual - below))
        kth.update(spans[-1][:2])
    part = np.partition(flat, sorted(kth))
    found = []
    for below, above, t in spans:
        low, high = part[below], part[above]
        step = high - low  # in the array's precision, as numpy
        if not alone:  # numpy's float64 weights make the rest float64
            low, high, step = float(low), float(high), float(step)
        found.append(float(high - step * (1 - t) if t >= 0.5 else low + step * t))
    return _middle(part, n), found


def median(values: np.ndarray) -> float:
    """``np.median(values)``."""
    flat = values.ravel()
    return _middle(np.partition(flat, _middle_indices(flat.size)), flat.size)


def _middle_indices(n: int) -> list[int]:
    """Where the median's values lie in ``n`` sorted values: one index, or the two it averages."""
    return [n // 2] if n % 2 else [n // 2 - 1, n // 2]


def _middle(part: np.ndarray, n: int) -> float:
    """The median of ``part``, partitioned at ``_middle_indices(n)``: the mean of the two middle
    values in the array's precision, as numpy's."""
    half = n // 2
    return float(part[half] if n % 2 else (part[half - 1] + part[half]) / 2)
