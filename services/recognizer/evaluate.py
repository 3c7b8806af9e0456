"""Evaluate an exported recognizer exactly as the service uses it: ``tf.saved_model.load`` and
the ``serve`` endpoint, no Keras. Exits non-zero below ``--min-accuracy`` so CI can gate on it.

    python -m services.recognizer.evaluate --data /work/shared/mnist --model services/recognizer/model
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from services.recognizer import mnist

Serve = Callable[[tf.Tensor], tf.Tensor]


@dataclass(frozen=True)
class Evaluation:
    accuracy: float
    errors: int
    total: int
    confusion: list[list[int]]  # confusion[true][predicted]


def load(model_dir: str | Path) -> Any:
    """``<model_dir>/saved_model`` as the service loads it. Its ``serve`` maps float32
    [N, 28, 28, 1] in [0, 1] (white ink on black) to float32 softmax probabilities [N, 10].
    Keep the returned object alive while using ``serve``: it owns the variables."""
    return tf.saved_model.load(str(Path(model_dir) / "saved_model"))


def predict(serve: Serve, images: np.ndarray, batch_size: int = 1000) -> np.ndarray:
    """Predicted classes for uint8 MNIST images (N, 28, 28)."""
    x = mnist.to_model_input(images)
    out = [np.argmax(serve(tf.constant(x[i : i + batch_size])).numpy(), axis=1)
           for i in range(0, len(x), batch_size)]
    return np.concatenate(out)


def evaluate(serve: Serve, images: np.ndarray, labels: np.ndarray) -> Evaluation:
    predicted = predict(serve, images)
    confusion = np.zeros((10, 10), dtype=np.int64)
    np.add.at(confusion, (labels.astype(np.int64), predicted), 1)
    correct = int(np.trace(confusion))
    return Evaluation(
        accuracy=correct / len(labels),
        errors=len(labels) - correct,
        total=len(labels),
        confusion=confusion.tolist(),
    )


def latency_ms(serve: Serve, image: np.ndarray, calls: int = 200, warmup: int = 20) -> float:
    """Median wall time of one batch-1 ``serve`` call, after warm-up (tracing, allocator)."""
    x = tf.constant(mnist.to_model_input(image[None]))
    for _ in range(warmup):
        serve(x).numpy()
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        serve(x).numpy()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000.0


def format_confusion(confusion: list[list[int]]) -> str:
    header = "true\\pred " + " ".join(f"{p:>5}" for p in range(10))
    rows = [f"{t:>9} " + " ".join(f"{n:>5}" for n in row) for t, row in enumerate(confusion)]
    return "\n".join([header, *rows])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="directory with the four MNIST .gz files")
    p.add_argument("--model", required=True, help="model directory (contains saved_model/)")
    p.add_argument("--min-accuracy", type=float, default=0.99,
                   help="exit with status 1 if test accuracy is below this (default 0.99)")
    p.add_argument("--latency", action="store_true", help="also measure batch-1 latency")
    args = p.parse_args(argv)

    data = mnist.load(args.data)
    loaded = load(args.model)
    serve = loaded.serve
    result = evaluate(serve, data.x_test, data.y_test)
    print(f"test accuracy: {result.accuracy:.4f} ({result.errors} errors in {result.total})")
    print(format_confusion(result.confusion))
    if args.latency:
        print(f"batch-1 latency (median of 200): {latency_ms(serve, data.x_test[0]):.3f} ms")
    if result.accuracy < args.min_accuracy:
        print(f"FAIL: accuracy {result.accuracy:.4f} < --min-accuracy {args.min_accuracy}",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
