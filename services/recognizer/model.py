"""The trained CNN as the service runs it: a LiteRT (TensorFlow Lite) flat buffer.

Training exports a TensorFlow SavedModel (``saved_model/``, the source of truth, versioned by
its content hash) and converts it to ``model.tflite`` (see ``export.py``). The service runs the
converted file with the LiteRT interpreter: the same weights and the same outputs (to ~1e-12),
but a model call costs ~0.13 ms of one core per image instead of ~2 ms of TensorFlow's
per-call overhead, and serving needs neither TensorFlow nor its ~600 MB of memory.

A model directory holds ``saved_model/``, ``model.tflite`` and ``model.json``. ``version`` is
the content hash of ``saved_model/``; ``tflite.sha256`` is the hash of the converted file.
Rolling out a model means pointing ``RECOGNIZER_MODEL_DIR`` at a new directory; both hashes
are checked at load, so a directory whose files do not match its ``model.json`` (a half-copied
rollout, a card from another training run) refuses to serve rather than answering under the
wrong version.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

# model.json's version is this many leading hex digits of content_hash (train.py writes it).
VERSION_HEX_DIGITS = 12
TFLITE_FILE = "model.tflite"


class ModelVersionMismatch(RuntimeError):
    """The model's files do not hash to what model.json declares."""


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


def verified_tflite(model_dir: Path, metadata: dict) -> bytes:
    """``model.tflite``'s bytes, checked against the hash model.json declares for it."""
    data = (model_dir / TFLITE_FILE).read_bytes()
    declared = (metadata.get("tflite") or {}).get("sha256")
    if declared is None:
        raise ModelVersionMismatch(f"{model_dir}: model.json has no tflite.sha256; run services.recognizer.export")
    if hashlib.sha256(data).hexdigest() != declared:
        raise ModelVersionMismatch(
            f"{model_dir}: {TFLITE_FILE} does not hash to model.json's tflite.sha256; "
            "it was converted from another model"
        )
    return data


class Interpreter:
    """A LiteRT interpreter over a flat buffer: ``predict`` maps float32 [N, 28, 28, 1] to [N, 10].

    Not thread-safe (one interpreter, one set of tensors): the service calls it from its
    batcher's single model thread.
    """

    def __init__(self, flatbuffer: bytes) -> None:
        from ai_edge_litert.interpreter import Interpreter as LiteRT  # a heavy import, kept local

        # One thread: the service parallelises across requests (batches), not inside a call, so
        # the model never competes with request handling for this machine's few cores.
        self._interpreter = LiteRT(model_content=flatbuffer, num_threads=1)
        self._input = self._interpreter.get_input_details()[0]["index"]
        self._output = self._interpreter.get_output_details()[0]["index"]
        self._batch = 0

    def predict(self, batch: np.ndarray) -> np.ndarray:
        if len(batch) != self._batch:  # re-planning the tensors costs ~0.2 ms: only on a change
            self._interpreter.resize_tensor_input(self._input, list(batch.shape), strict=False)
            self._interpreter.allocate_tensors()
            self._batch = len(batch)
        self._interpreter.set_tensor(self._input, np.ascontiguousarray(batch, dtype=np.float32))
        self._interpreter.invoke()
        return self._interpreter.get_tensor(self._output).copy()  # the buffer is reused by the next call


class DigitModel:
    """A loaded, verified model: ``predict`` maps float32 [N, 28, 28, 1] in [0, 1] to probabilities [N, 10]."""

    def __init__(self, model_dir: str | Path) -> None:
        model_dir = Path(model_dir)
        metadata = json.loads((model_dir / "model.json").read_text())
        start = time.perf_counter()
        self.version: str = verified_version(model_dir, metadata)
        self.metadata: dict = metadata
        self._interpreter = Interpreter(verified_tflite(model_dir, metadata))
        log.info(
            "model loaded",
            extra={"model_version": self.version, "seconds": round(time.perf_counter() - start, 3)},
        )

    def predict(self, batch: np.ndarray) -> np.ndarray:
        return self._interpreter.predict(batch)

    def warm_up(self, max_batch_size: int = 1) -> None:
        """Run each shape class once so the first real requests do not pay for planning."""
        for size in sorted({max_batch_size, 1}, reverse=True):
            self.predict(np.zeros((size, 28, 28, 1), dtype=np.float32))
