"""The exported corrections are what train --corrections reads: the PNGs and labels.csv that
services/recorder/export_corrections.py writes load back as the same 28×28 fields and digits."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from services.recognizer import corrections, segment
from services.recorder.export_corrections import HEADER, fields_of, png
from tests.helpers import DATA


def write(folder, fields, digits) -> None:  # type: ignore[no-untyped-def]
    with (folder / "labels.csv").open("w", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(HEADER)
        for i, (field, digit) in enumerate(zip(fields, digits)):
            (folder / f"r-{i}.png").write_bytes(png(field))
            out.writerow((f"r-{i}.png", digit, "r", "abc", "2026-12-06T00:00:00Z"))


def test_exported_fields_load_back_as_training_examples(tmp_path):
    rng = np.random.default_rng(0)
    fields = [rng.random((28, 28), dtype=np.float32) for _ in range(3)]
    write(tmp_path, fields, [4, 0, 9])
    images, labels = corrections.load(tmp_path)
    assert images.dtype == np.uint8 and images.shape == (3, 28, 28) and labels.tolist() == [4, 0, 9]
    # 8-bit, as MNIST: within half a step of the field.
    assert np.abs(images[0] / 255.0 - fields[0]).max() <= 0.5 / 255 + 1e-6


def test_an_empty_export_adds_nothing(tmp_path):
    write(tmp_path, [], [])
    images, labels = corrections.load(tmp_path)
    assert images.shape == (0, 28, 28) and labels.shape == (0,)


def test_a_bad_row_is_refused_not_trained_on(tmp_path):
    write(tmp_path, [np.zeros((28, 28), np.float32)], [12])
    with pytest.raises(ValueError, match="not 0-9"):
        corrections.load(tmp_path)


def test_the_field_of_a_digit_is_found_by_the_box_the_record_stored():
    seven = (DATA / "seven.png").read_bytes()
    piece = segment.read(seven)[0].whole
    (found,) = fields_of(seven, [piece.box], 1)
    assert np.array_equal(found, piece.field)
    assert fields_of(seven, [(0, 0, 1, 1)], 1) is None  # no such piece: skipped, never mislabelled
    # A record made before boxes were stored: one digit, one mark.
    assert np.array_equal(fields_of(seven, [], 1)[0], piece.field)
    assert fields_of(seven, [], 2) is None
