"""Load MNIST from its canonical IDX gzip files, with checks that fail loudly on a wrong or
truncated file instead of training on garbage."""

from __future__ import annotations

import gzip
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

FILES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}
IMAGES_MAGIC = 2051
LABELS_MAGIC = 2049
ROWS = COLS = 28
EXPECTED_COUNTS = {"train": 60_000, "test": 10_000}


class MnistFormatError(ValueError):
    """A file is not the IDX data it should be."""


@dataclass(frozen=True)
class Mnist:
    x_train: np.ndarray  # (60000, 28, 28) uint8, 0 background .. 255 ink
    y_train: np.ndarray  # (60000,) uint8
    x_test: np.ndarray  # (10000, 28, 28) uint8
    y_test: np.ndarray  # (10000,) uint8


def _read(path: Path) -> bytes:
    if not path.is_file():
        raise FileNotFoundError(f"MNIST file not found: {path}")
    try:
        with gzip.open(path, "rb") as f:
            return f.read()
    except (OSError, EOFError) as e:
        raise MnistFormatError(f"{path}: not a valid gzip file ({e})") from e


def load_images(path: Path) -> np.ndarray:
    data = _read(path)
    if len(data) < 16:
        raise MnistFormatError(f"{path}: {len(data)} bytes, shorter than the 16-byte IDX header")
    magic, n, rows, cols = (int(v) for v in np.frombuffer(data, ">u4", count=4))
    if magic != IMAGES_MAGIC:
        raise MnistFormatError(f"{path}: magic {magic}, expected {IMAGES_MAGIC} (IDX images)")
    if (rows, cols) != (ROWS, COLS):
        raise MnistFormatError(f"{path}: images are {rows}x{cols}, expected {ROWS}x{COLS}")
    if len(data) - 16 != n * rows * cols:
        raise MnistFormatError(
            f"{path}: header says {n} images ({n * rows * cols} pixel bytes), "
            f"file has {len(data) - 16}"
        )
    return np.frombuffer(data, np.uint8, offset=16).reshape(n, rows, cols)


def load_labels(path: Path) -> np.ndarray:
    data = _read(path)
    if len(data) < 8:
        raise MnistFormatError(f"{path}: {len(data)} bytes, shorter than the 8-byte IDX header")
    magic, n = (int(v) for v in np.frombuffer(data, ">u4", count=2))
    if magic != LABELS_MAGIC:
        raise MnistFormatError(f"{path}: magic {magic}, expected {LABELS_MAGIC} (IDX labels)")
    if len(data) - 8 != n:
        raise MnistFormatError(f"{path}: header says {n} labels, file has {len(data) - 8}")
    labels = np.frombuffer(data, np.uint8, offset=8)
    if labels.size and labels.max() > 9:
        raise MnistFormatError(f"{path}: label {labels.max()} out of range 0-9")
    return labels


def load(directory: str | Path) -> Mnist:
    """Load the four standard files from ``directory``; raise on any mismatch."""
    d = Path(directory)
    arrays = {key: (load_images if key.endswith("images") else load_labels)(d / name)
              for key, name in FILES.items()}
    for split, expected in EXPECTED_COUNTS.items():
        n_images, n_labels = len(arrays[f"{split}_images"]), len(arrays[f"{split}_labels"])
        if n_images != n_labels:
            raise MnistFormatError(f"{split}: {n_images} images but {n_labels} labels")
        if n_images != expected:
            raise MnistFormatError(f"{split}: {n_images} examples, expected {expected}")
    return Mnist(
        x_train=arrays["train_images"],
        y_train=arrays["train_labels"],
        x_test=arrays["test_images"],
        y_test=arrays["test_labels"],
    )


def sha256sums(directory: str | Path) -> dict[str, str]:
    """SHA-256 of each of the four .gz files as stored, keyed by file name (as in SHA256SUMS)."""
    sums = {}
    for name in FILES.values():
        h = hashlib.sha256()
        with open(Path(directory) / name, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        sums[name] = h.hexdigest()
    return sums


def to_model_input(images: np.ndarray) -> np.ndarray:
    """uint8 (N, 28, 28) -> float32 (N, 28, 28, 1) in [0, 1]: the serve signature's input."""
    return (images.astype(np.float32) / 255.0)[..., None]
