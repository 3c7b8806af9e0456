"""Corrections as training data: what ``make export-corrections`` writes (services/recorder/
export_corrections.py), a folder of 28×28 PNGs (white ink on black, the fields the model read)
and ``labels.csv`` (file, digit, record_id, model_version, labelled_at)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from PIL import Image

FIELD = 28


def load(folder: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 [N, 28, 28], labels uint8 [N]) of every row of ``folder``/labels.csv."""
    folder = Path(folder)
    images, labels = [], []
    with (folder / "labels.csv").open(newline="") as handle:
        for row in csv.DictReader(handle):
            digit = int(row["digit"])
            if not 0 <= digit <= 9:
                raise ValueError(f"{row['file']}: digit {digit} is not 0-9")
            image = np.asarray(Image.open(folder / row["file"]).convert("L"), dtype=np.uint8)
            if image.shape != (FIELD, FIELD):
                raise ValueError(f"{row['file']}: {image.shape} is not {FIELD}x{FIELD}")
            images.append(image)
            labels.append(digit)
    if not images:
        return np.zeros((0, FIELD, FIELD), np.uint8), np.zeros(0, np.uint8)
    return np.stack(images), np.asarray(labels, dtype=np.uint8)
