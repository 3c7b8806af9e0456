"""Recognizer settings, from environment variables prefixed ``RECOGNIZER_``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from digits.config import from_env

DEFAULT_MODEL_DIR = str(Path(__file__).resolve().parent / "model")


@dataclass(frozen=True)
class Config:
    host: str = "0.0.0.0"  # RECOGNIZER_HOST
    port: int = 50051  # RECOGNIZER_PORT
    metrics_port: int = 9101  # RECOGNIZER_METRICS_PORT; 0 disables /metrics
    model_dir: str = DEFAULT_MODEL_DIR  # RECOGNIZER_MODEL_DIR: holds saved_model/ and model.json
    max_image_bytes: int = 10 * 1024 * 1024  # RECOGNIZER_MAX_IMAGE_BYTES
    max_image_pixels: int = 40_000_000  # RECOGNIZER_MAX_IMAGE_PIXELS: declared width × height
    # Threads for decoding and inference, off the event loop. TensorFlow parallelises each
    # model call itself, so more threads than cores only adds contention.
    worker_threads: int = 2  # RECOGNIZER_WORKER_THREADS
    grace_seconds: float = 10.0  # RECOGNIZER_GRACE_SECONDS: in-flight calls finish within this on SIGTERM
    log_level: str = "info"  # RECOGNIZER_LOG_LEVEL

    @classmethod
    def from_env(cls) -> "Config":
        return from_env(cls, "RECOGNIZER_")
