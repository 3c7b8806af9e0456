"""Choose a trained model's "not a digit" threshold again, for another refusal policy, without
retraining.

    python -m services.recognizer.threshold --data ../shared/mnist --model services/recognizer/model \\
        --max-digits-refused 0

Rebuilds the validation split train.py used (from the seed and sizes in model.json), scores it
with the served model (model.tflite, as the service runs it), and writes the threshold, its
trade-off, refusal.png and how many MNIST test digits it refuses into the model directory; MODEL_CARD.md is rendered again. The
model's files and version do not change. Serving reads the new threshold at its next start
(RECOGNIZER_NOT_DIGIT_THRESHOLD still overrides it).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from services.recognizer import calibration, card, mnist
from services.recognizer.model import DigitModel
from services.recognizer.synth import dataset


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="directory with the four MNIST .gz files")
    p.add_argument("--model", required=True, type=Path, help="the model directory")
    p.add_argument("--max-digits-refused", type=float, required=True,
                   help="refuse at most this share of the validation digits (0: none)")
    args = p.parse_args(argv)

    model = DigitModel(args.model)
    meta = model.metadata
    examples = meta["training"]["examples"]
    data = mnist.load(args.data)
    x_val, y_val = dataset.validation_set(
        data.x_train, data.y_train, meta["training"]["seed"], examples["validation_mnist"],
        examples["validation_synthetic_styles"],
    )  # fmt: skip
    probabilities = np.concatenate(
        [model.predict(mnist.to_model_input(x_val[i : i + 1000])) for i in range(0, len(x_val), 1000)]
    )
    chosen = calibration.refusal(probabilities[:, calibration.NOT_A_DIGIT], y_val < 10, args.max_digits_refused,
                                 args.model / "refusal.png")
    meta["calibration"].update(chosen)
    # What the new threshold does to MNIST's test digits (reported, never used to choose).
    test = np.concatenate(
        [model.predict(mnist.to_model_input(data.x_test[i : i + 1000])) for i in range(0, len(data.x_test), 1000)]
    )
    meta["test"]["refused"] = int((test[:, calibration.NOT_A_DIGIT] >= chosen["not_digit_threshold"]).sum())
    (args.model / "model.json").write_text(json.dumps(meta, indent=2) + "\n")
    (args.model / "MODEL_CARD.md").write_text(card.render(meta))
    print(f"threshold {chosen['not_digit_threshold']}: validation digits refused {chosen['validation_digits_refused']:.3%}, "
          f"non-digits refused {chosen['validation_not_digits_refused']:.2%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
