"""The trained CNN, loaded from a SavedModel directory.

The service calls the exported ``serve`` function (a traced ``tf.function``) directly: no
Keras at serving time and no per-call ``model.predict`` overhead.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)


class DigitModel:
    """A loaded model: ``predict`` maps float32 [N, 28, 28, 1] in [0, 1] to probabilities [N, 10]."""

    def __init__(self, model_dir: str | Path) -> None:
        import tensorflow as tf  # imported here so that modules importing this one stay light

        model_dir = Path(model_dir)
        metadata = json.loads((model_dir / "model.json").read_text())
        self.version: str = metadata["version"]
        self.metadata: dict = metadata
        start = time.perf_counter()
        self._tf = tf
        self._module = tf.saved_model.load(str(model_dir / "saved_model"))
        self._serve = self._module.serve
        log.info(
            "model loaded",
            extra={"model_version": self.version, "seconds": round(time.perf_counter() - start, 3)},
        )

    def predict(self, batch: np.ndarray) -> np.ndarray:
        outputs = self._serve(self._tf.constant(batch, dtype=self._tf.float32))
        if isinstance(outputs, dict):  # a signature returns a dict of named outputs
            outputs = next(iter(outputs.values()))
        return np.asarray(outputs)

    def warm_up(self) -> None:
        """Run the traced function once so the first real request does not pay for it."""
        self.predict(np.zeros((1, 28, 28, 1), dtype=np.float32))
