"""The served model.tflite is the committed SavedModel, converted: reproducibly and exactly."""

import hashlib
import json

import numpy as np

from services.recognizer import export
from services.recognizer.config import DEFAULT_MODEL_DIR
from services.recognizer.model import DigitModel, Interpreter
from pathlib import Path

MODEL_DIR = Path(DEFAULT_MODEL_DIR)


def test_converting_the_committed_saved_model_gives_the_committed_tflite():
    flatbuffer, entry = export.checked(MODEL_DIR / "saved_model")
    committed = (MODEL_DIR / "model.tflite").read_bytes()
    assert json.loads((MODEL_DIR / "model.json").read_text())["tflite"]["sha256"] == hashlib.sha256(committed).hexdigest()
    assert len(flatbuffer) == len(committed)
    assert entry["max_difference_from_saved_model"] <= export.MAX_DIFFERENCE
    # The same graph and weights; the converter folds batch norms into the convolutions with the
    # machine's float instructions, so the last bit of a weight may differ between CPUs (seen
    # between two x86-64 machines): the answers must agree, not the bytes.
    x = np.random.default_rng(2).random((32, 28, 28, 1), dtype=np.float32)
    np.testing.assert_allclose(Interpreter(flatbuffer).predict(x), Interpreter(committed).predict(x), atol=1e-6)


def test_the_served_model_answers_a_batch_like_its_images_one_by_one():
    model = DigitModel(MODEL_DIR)
    batch = np.random.default_rng(1).random((5, 28, 28, 1), dtype=np.float32)
    together = model.predict(batch)
    alone = np.concatenate([model.predict(batch[i : i + 1]) for i in range(5)])
    assert together.shape == (5, model.metadata["output"]["shape"][1])
    np.testing.assert_allclose(together, alone, atol=1e-6)
    np.testing.assert_allclose(together.sum(axis=1), 1.0, atol=1e-5)
