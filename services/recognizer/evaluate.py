"""Evaluate an exported recognizer exactly as the service runs it: ``model.tflite`` in the LiteRT
interpreter, checked against ``model.json`` (see model.py). Exits non-zero below
``--min-accuracy`` so CI can gate on it.

    python -m services.recognizer.evaluate --data /work/shared/mnist --model services/recognizer/model
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from services.recognizer import mnist
from services.recognizer.model import DigitModel


class Model(Protocol):
    def predict(self, batch: np.ndarray) -> np.ndarray:
        """float32 [N, 28, 28, 1] in [0, 1], white ink on black → softmax probabilities [N, 10] or [N, 11] (index 10: not a digit)."""
        ...


@dataclass(frozen=True)
class Evaluation:
    accuracy: float
    errors: int
    total: int
    confusion: list[list[int]]  # confusion[true][predicted]


def load(model_dir: str | Path) -> DigitModel:
    """The model directory as the service loads it (hashes checked)."""
    return DigitModel(model_dir)


def predict(model: Model, images: np.ndarray, batch_size: int = 1000) -> np.ndarray:
    """Predicted digits for uint8 MNIST images (N, 28, 28): the most probable of 0-9, as the
    service answers (whether it would refuse the image as not a digit is a separate question)."""
    x = mnist.to_model_input(images)
    out = [np.argmax(model.predict(x[i : i + batch_size])[:, :10], axis=1) for i in range(0, len(x), batch_size)]
    return np.concatenate(out)


def evaluate(model: Model, images: np.ndarray, labels: np.ndarray) -> Evaluation:
    predicted = predict(model, images)
    confusion = np.zeros((10, 10), dtype=np.int64)
    np.add.at(confusion, (labels.astype(np.int64), predicted), 1)
    correct = int(np.trace(confusion))
    return Evaluation(
        accuracy=correct / len(labels),
        errors=len(labels) - correct,
        total=len(labels),
        confusion=confusion.tolist(),
    )


def latency_ms(model: Model, image: np.ndarray, calls: int = 200, warmup: int = 20) -> float:
    """Median wall time of one batch-1 model call, after warm-up (tensor planning, allocator)."""
    x = mnist.to_model_input(image[None])
    for _ in range(warmup):
        model.predict(x)
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        model.predict(x)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000.0


def format_confusion(confusion: list[list[int]]) -> str:
    header = "true\\pred " + " ".join(f"{p:>5}" for p in range(10))
    rows = [f"{t:>9} " + " ".join(f"{n:>5}" for n in row) for t, row in enumerate(confusion)]
    return "\n".join([header, *rows])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="directory with the four MNIST .gz files")
    p.add_argument("--model", required=True, help="model directory (model.tflite, saved_model/, model.json)")
    p.add_argument("--min-accuracy", type=float, default=0.99,
                   help="exit with status 1 if test accuracy is below this (default 0.99)")
    p.add_argument("--latency", action="store_true", help="also measure batch-1 latency")
    args = p.parse_args(argv)

    data = mnist.load(args.data)
    model = load(args.model)
    result = evaluate(model, data.x_test, data.y_test)
    print(f"test accuracy: {result.accuracy:.4f} ({result.errors} errors in {result.total})")
    print(format_confusion(result.confusion))
    if args.latency:
        print(f"batch-1 latency (median of 200): {latency_ms(model, data.x_test[0]):.3f} ms")
    if result.accuracy < args.min_accuracy:
        print(f"FAIL: accuracy {result.accuracy:.4f} < --min-accuracy {args.min_accuracy}",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
