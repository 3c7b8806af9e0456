"""Choosing among an image's readings (reading.py), with the model's scores replaced by small
fakes: the pieces' fields are blank, the probabilities are given."""

from __future__ import annotations

import numpy as np
import pytest

from services.recognizer import reading
from services.recognizer.preprocess import ImageError
from services.recognizer.segment import Group, Piece

BLANK = np.zeros((28, 28), dtype=np.float32)


def piece(x: int) -> Piece:
    return Piece(BLANK, (x, 0, 10, 20))


def scores(digit: int, confidence: float, not_digit: float = 0.0) -> np.ndarray:
    p = np.full(11, (1 - confidence) * (1 - not_digit) / 9)
    p[digit] = confidence * (1 - not_digit)
    p[10] = not_digit
    return p


def test_a_sure_whole_reading_is_kept():
    groups = [Group([[piece(0)], [piece(0), piece(5)]])]
    answer = reading.answer(groups, [scores(0, 0.97), scores(1, 0.99), scores(1, 0.99)], 0.9, "v")
    assert answer.number == "0" and answer.digit == 0 and len(answer.digits) == 1


def test_an_unsure_whole_gives_way_to_a_sure_cut():
    groups = [Group([[piece(0)], [piece(0), piece(12)]]), Group([[piece(30)]])]
    answer = reading.answer(groups, [scores(8, 0.55), scores(4, 0.98), scores(2, 0.96), scores(7, 0.99)], 0.9, "v")
    assert answer.number == "427"
    assert [d.box.x for d in answer.digits] == [0, 12, 30]
    assert answer.digit == 4 and answer.confidence == pytest.approx(0.98, abs=1e-6)
    assert sum(answer.probabilities) == pytest.approx(1.0, abs=1e-6)


def test_a_piece_that_is_not_a_digit_refuses_the_image():
    groups = [Group([[piece(0)]]), Group([[piece(30)]])]
    with pytest.raises(ImageError) as refused:
        reading.answer(groups, [scores(4, 0.99), scores(4, 0.99, not_digit=0.95)], 0.9, "v")
    assert refused.value.reason == "NOT_A_DIGIT" and "mark 2 of 2" in str(refused.value)


def test_a_ten_output_model_never_refuses():
    groups = [Group([[piece(0)]])]
    ten = np.full(10, 0.01)
    ten[3] = 0.91
    assert reading.answer(groups, [ten], 0.5, "v").number == "3"
