"""Choosing among an image's readings (reading.py), with the model's scores replaced by small
fakes: the pieces' fields are blank, the probabilities are given."""

from __future__ import annotations

import numpy as np
import pytest

from services.recognizer import reading
from services.recognizer.decoding import ImageError
from services.recognizer.segment import Group, Piece

BLANK = np.zeros((28, 28), dtype=np.float32)


def piece(x: int) -> Piece:
    return Piece(BLANK, (x, 0, 10, 20))


def scores(digit: int, confidence: float, not_digit: float = 0.0) -> np.ndarray:
    p = np.full(11, (1 - confidence) * (1 - not_digit) / 9)
    p[digit] = confidence * (1 - not_digit)
    p[10] = not_digit
    return p


def lattice(*spans: tuple[int, int]) -> Group:
    """A mark with cut points 0..n: the whole (0, n) first, then the given spans."""
    n = max(j for _, j in spans)
    return Group(n + 1, {(0, n): piece(0), **{span: piece(span[0] * 12) for span in spans if span != (0, n)}})


def single(x: int) -> Group:
    return Group(2, {(0, 1): piece(x)})


def test_a_sure_whole_reading_is_kept():
    groups = [lattice((0, 2), (0, 1), (1, 2))]
    answer = reading.answer(groups, [scores(0, 0.97), scores(1, 0.99), scores(1, 0.99)], 0.9, "v")
    assert answer.number == "0" and answer.digit == 0 and len(answer.digits) == 1


def test_an_unsure_whole_gives_way_to_the_likeliest_path_of_sure_digits():
    # Points 0..3: the whole, three narrow spans, and two pairs; the best path is 4 | 2 over (0,1),(1,3).
    groups = [lattice((0, 3), (0, 1), (1, 2), (2, 3), (1, 3), (0, 2)), single(60)]
    probabilities = [scores(8, 0.55), scores(4, 0.98), scores(1, 0.6), scores(1, 0.7), scores(2, 0.96),
                     scores(5, 0.5), scores(7, 0.99)]
    answer = reading.answer(groups, probabilities, 0.9, "v")
    assert answer.number == "427"
    assert [d.box.x for d in answer.digits] == [0, 12, 60]
    assert answer.digit == 4 and answer.confidence == pytest.approx(0.98, abs=1e-6)
    assert sum(answer.probabilities) == pytest.approx(1.0, abs=1e-6)


def test_a_refused_whole_is_read_through_a_sure_cut_and_an_unsure_one_kept_when_the_cut_is_not_sure():
    groups = [lattice((0, 2), (0, 1), (1, 2))]
    refused_whole = reading.answer(groups, [scores(8, 0.9, not_digit=0.95), scores(4, 0.97), scores(2, 0.95)], 0.9, "v")
    assert refused_whole.number == "42"
    with pytest.raises(ImageError):  # pieces of a letter: digit-like, but not surely
        reading.answer(groups, [scores(8, 0.9, not_digit=0.95), scores(4, 0.8), scores(2, 0.7)], 0.9, "v")
    unsure_whole = reading.answer(groups, [scores(8, 0.7), scores(4, 0.8), scores(2, 0.7)], 0.9, "v")
    assert unsure_whole.number == "8"


def test_a_piece_that_is_not_a_digit_refuses_the_image():
    groups = [single(0), single(30)]
    with pytest.raises(ImageError) as refused:
        reading.answer(groups, [scores(4, 0.99), scores(4, 0.99, not_digit=0.95)], 0.9, "v")
    assert refused.value.reason == "NOT_A_DIGIT" and "mark 2 of 2" in str(refused.value)


def test_a_ten_output_model_never_refuses():
    groups = [single(0)]
    ten = np.full(10, 0.01)
    ten[3] = 0.91
    assert reading.answer(groups, [ten], 0.5, "v").number == "3"


def test_a_refused_mark_that_slices_into_ones_stays_refused():
    groups = [lattice((0, 2), (0, 1), (1, 2))]  # a W: two strokes that each read as a 1
    with pytest.raises(ImageError):
        reading.answer(groups, [scores(4, 0.9, not_digit=0.99), scores(1, 0.99), scores(1, 0.99)], 0.9, "v")
