"""The served model.tflite is the committed SavedModel, converted: reproducibly and exactly."""

import hashlib
import json

import numpy as np

from services.recognizer import export
from services.recognizer.config import DEFAULT_MODEL_DIR
from services.recognizer.model import DigitModel
from pathlib import Path

MODEL_DIR = Path(DEFAULT_MODEL_DIR)


def test_converting_the_committed_saved_model_gives_the_committed_tflite():
    flatbuffer, entry = export.checked(MODEL_DIR / "saved_model")
    committed = (MODEL_DIR / "model.tflite").read_bytes()
    assert hashlib.sha256(flatbuffer).hexdigest() == hashlib.sha256(committed).hexdigest()
    assert json.loads((MODEL_DIR / "model.json").read_text())["tflite"]["sha256"] == entry["sha256"]
    assert entry["max_difference_from_saved_model"] <= export.MAX_DIFFERENCE


def test_the_served_model_answers_a_batch_like_its_images_one_by_one():
    model = DigitModel(MODEL_DIR)
    batch = np.random.default_rng(1).random((5, 28, 28, 1), dtype=np.float32)
    together = model.predict(batch)
    alone = np.concatenate([model.predict(batch[i : i + 1]) for i in range(5)])
    assert together.shape == (5, 10)
    np.testing.assert_allclose(together, alone, atol=1e-6)
    np.testing.assert_allclose(together.sum(axis=1), 1.0, atol=1e-5)
