"""The trained CNN, loaded from a SavedModel directory.

The service calls the exported ``serve`` function (a traced ``tf.function``) directly: no
Keras at serving time and no per-call ``model.predict`` overhead.

A model directory holds ``saved_model/`` and ``model.json``, whose ``version`` is a content
hash of ``saved_model/``. Rolling out a model means pointing ``RECOGNIZER_MODEL_DIR`` at a new
directory; the hash is recomputed at load so that a directory whose files do not match its
``model.json`` (a half-copied rollout, a card from another training run) refuses to serve
rather than answering under the wrong version.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

# model.json's version is this many leading hex digits of content_hash (train.py writes it).
VERSION_HEX_DIGITS = 12


class ModelVersionMismatch(RuntimeError):
    """The SavedModel's files do not hash to the version model.json declares."""


def content_hash(root: Path) -> str:
    """SHA-256 over sorted relative paths and contents: changes iff the files do.

    train.py versions what it exports with this same function, so serving can check it.
    """
    h = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        h.update(path.relative_to(root).as_posix().encode() + b"\0")
        h.update(path.read_bytes())
    return h.hexdigest()


def verified_version(model_dir: Path, metadata: dict) -> str:
    """The model's version: model.json's, checked against the files, or computed if absent."""
    computed = content_hash(model_dir / "saved_model")[:VERSION_HEX_DIGITS]
    declared = metadata.get("version")
    if declared is None:
        log.warning("model.json has no version; using the content hash", extra={"model_version": computed})
        return computed
    if declared != computed:
        raise ModelVersionMismatch(
            f"{model_dir}: model.json declares version {declared!r} but saved_model/ hashes to "
            f"{computed!r}; the directory holds files from different models"
        )
    return computed


class DigitModel:
    """A loaded model: ``predict`` maps float32 [N, 28, 28, 1] in [0, 1] to probabilities [N, 10]."""

    def __init__(self, model_dir: str | Path) -> None:
        # TensorFlow's C++ start-up chatter is not JSON and drowns the service's own logs.
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        import tensorflow as tf  # imported here so that modules importing this one stay light

        model_dir = Path(model_dir)
        metadata = json.loads((model_dir / "model.json").read_text())
        start = time.perf_counter()
        self.version: str = verified_version(model_dir, metadata)
        self.metadata: dict = metadata
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

    def warm_up(self, max_batch_size: int = 1) -> None:
        """Run the traced function once per shape class so the first real requests do not pay for it."""
        for size in sorted({1, max_batch_size}):
            self.predict(np.zeros((size, 28, 28, 1), dtype=np.float32))
