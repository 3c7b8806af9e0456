"""Convert a model directory's SavedModel to the LiteRT flat buffer the service runs.

    python -m services.recognizer.export services/recognizer/model

``train.py`` does this after every training run; the command exists for a model trained
before, or to check that conversion is reproducible. It writes ``model.tflite`` and records its
hash, size and a check that it agrees with the SavedModel under ``tflite`` in ``model.json``.
No quantisation: the converted model must give the SavedModel's answers, not approximately.
Needs TensorFlow (a training dependency), unlike serving.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from pathlib import Path

import numpy as np

from services.recognizer import evaluate
from services.recognizer.model import TFLITE_FILE, Interpreter

# Outputs of the two runtimes may differ by float rounding only.
MAX_DIFFERENCE = 1e-5


def convert(saved_model: Path) -> bytes:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    return tf.lite.TFLiteConverter.from_saved_model(str(saved_model)).convert()


def max_difference(saved_model: Path, flatbuffer: bytes, samples: int = 64, seed: int = 0) -> float:
    """Largest difference between the SavedModel's and the flat buffer's probabilities on
    random inputs and on blank ones."""
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    x = np.concatenate([rng.random((samples, 28, 28, 1), dtype=np.float32), np.zeros((1, 28, 28, 1), np.float32)])
    module = tf.saved_model.load(str(saved_model))  # kept in a name: it owns the variables
    reference = module.serve(tf.constant(x)).numpy()
    converted = Interpreter(flatbuffer).predict(x)
    return float(np.abs(reference - converted).max())


def checked(saved_model: Path) -> tuple[bytes, dict]:
    """The flat buffer converted from ``saved_model`` and its ``model.json`` entry; raises if
    its answers differ from the SavedModel's."""
    flatbuffer = convert(saved_model)
    difference = max_difference(saved_model, flatbuffer)
    if difference > MAX_DIFFERENCE:
        raise RuntimeError(f"the converted model differs from the SavedModel by {difference:g}")
    entry = {
        "file": TFLITE_FILE,
        "sha256": hashlib.sha256(flatbuffer).hexdigest(),
        "bytes": len(flatbuffer),
        "max_difference_from_saved_model": difference,
    }
    return flatbuffer, entry


def export(model_dir: Path) -> dict:
    """Write ``model_dir/model.tflite`` and its ``tflite`` entry in ``model.json``; returns the entry."""
    flatbuffer, entry = checked(model_dir / "saved_model")
    (model_dir / TFLITE_FILE).write_bytes(flatbuffer)
    meta_path = model_dir / "model.json"
    meta = json.loads(meta_path.read_text())
    meta["tflite"] = entry
    # The card's latency is the served artefact's (what train.py measures since it serves LiteRT).
    image = np.random.default_rng(0).integers(0, 256, (28, 28), dtype=np.uint8)
    meta["latency_ms_batch1"] = round(evaluate.latency_ms(Interpreter(flatbuffer), image), 4)
    meta_path.write_text(json.dumps(meta, indent=2) + "\n")
    from services.recognizer import card

    (model_dir / "MODEL_CARD.md").write_text(card.render(meta))
    return entry


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("model_dir", type=Path, help="a directory holding saved_model/ and model.json")
    args = p.parse_args(argv)
    entry = export(args.model_dir)
    print(f"wrote {args.model_dir / TFLITE_FILE}: {entry['bytes']} bytes, sha256 {entry['sha256'][:12]}, "
          f"max difference from the SavedModel {entry['max_difference_from_saved_model']:.2g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
