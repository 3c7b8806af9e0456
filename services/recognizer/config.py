"""Recognizer settings, from environment variables prefixed ``RECOGNIZER_``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from digits.config import ConfigError, from_env

DEFAULT_MODEL_DIR = str(Path(__file__).resolve().parent / "model")


@dataclass(frozen=True)
class Config:
    host: str = "0.0.0.0"  # RECOGNIZER_HOST
    port: int = 50051  # RECOGNIZER_PORT
    metrics_port: int = 9101  # RECOGNIZER_METRICS_PORT; 0 disables /metrics
    model_dir: str = DEFAULT_MODEL_DIR  # RECOGNIZER_MODEL_DIR: holds saved_model/ and model.json
    max_image_bytes: int = 10 * 1024 * 1024  # RECOGNIZER_MAX_IMAGE_BYTES
    max_image_pixels: int = 40_000_000  # RECOGNIZER_MAX_IMAGE_PIXELS: declared width × height
    # Threads for decoding large images (over inline_max_bytes: photos), off the event loop;
    # small ones share one thread of their own (see server._groups). The model has one thread
    # of its own (see batching.py).
    worker_threads: int = 2  # RECOGNIZER_WORKER_THREADS
    # A lone image up to this size, arriving while no other is being decoded, is decoded on the
    # event loop: at low load a hand-off to a worker thread costs more time than it saves
    # (~2 ms of an upload's latency here), and blocking the idle loop for a millisecond or two
    # delays nobody. Under load, decoding stays on the threads. 0: always on the threads.
    inline_max_bytes: int = 64 * 1024  # RECOGNIZER_INLINE_MAX_BYTES
    # Dynamic batching: concurrent requests share one model call. Off means one call per request.
    batching: bool = True  # RECOGNIZER_BATCHING
    max_batch_size: int = 64  # RECOGNIZER_MAX_BATCH_SIZE: images per model call
    # How long the first request of a batch waits for others; TF Serving's guidance is ~1 ms.
    # A lone image this long after the last model call runs at once, on the event loop.
    max_batch_wait_seconds: float = 0.001  # RECOGNIZER_MAX_BATCH_WAIT_SECONDS
    max_images_per_call: int = 256  # RECOGNIZER_MAX_IMAGES_PER_CALL: bound on one RecognizeBatch
    # An image is refused as "not a digit" when the model's probability of that reaches this.
    # 0 (the default) takes the threshold chosen at training (model.json); 1 never refuses.
    not_digit_threshold: float = 0.0  # RECOGNIZER_NOT_DIGIT_THRESHOLD
    # Calls handled at once; more get RESOURCE_EXHAUSTED (a 503 at the gateway) at once.
    max_concurrent_rpcs: int = 256  # RECOGNIZER_MAX_CONCURRENT_RPCS; 0: no bound
    grace_seconds: float = 10.0  # RECOGNIZER_GRACE_SECONDS: in-flight calls finish within this on SIGTERM
    log_level: str = "info"  # RECOGNIZER_LOG_LEVEL

    def __post_init__(self) -> None:
        # Fail at start-up with the variable's name, not later inside the batcher.
        for name, value, least in (
            ("MAX_BATCH_SIZE", self.max_batch_size, 1),
            ("MAX_BATCH_WAIT_SECONDS", self.max_batch_wait_seconds, 0),
            ("MAX_IMAGES_PER_CALL", self.max_images_per_call, 1),
            ("MAX_CONCURRENT_RPCS", self.max_concurrent_rpcs, 0),
            ("INLINE_MAX_BYTES", self.inline_max_bytes, 0),
        ):
            if value < least:
                raise ConfigError(f"RECOGNIZER_{name}={value}: must be at least {least}")
        if not 0.0 <= self.not_digit_threshold <= 1.0:
            raise ConfigError(f"RECOGNIZER_NOT_DIGIT_THRESHOLD={self.not_digit_threshold}: must be within [0, 1]")

    @classmethod
    def from_env(cls) -> "Config":
        return from_env(cls, "RECOGNIZER_")
