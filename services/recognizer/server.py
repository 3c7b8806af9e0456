"""The Recognizer gRPC service: bytes in, digit and probabilities out."""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor

import grpc
import numpy as np
from prometheus_client import Counter, Gauge, Histogram

from digits.grpc_server import GrpcService
from digits.v1 import recognizer_pb2, recognizer_pb2_grpc
from services.recognizer import preprocess
from services.recognizer.config import Config
from services.recognizer.model import DigitModel

log = logging.getLogger(__name__)

# Sub-millisecond resolution: a single 28×28 inference takes about a millisecond on a CPU.
_FINE_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.00075, 0.001, 0.0015, 0.002, 0.003, 0.005, 0.0075,
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
)  # fmt: skip
INFERENCE_SECONDS = Histogram(
    "digits_recognizer_inference_seconds", "Time of one model call.", buckets=_FINE_BUCKETS
)
PREPROCESS_SECONDS = Histogram(
    "digits_recognizer_preprocess_seconds", "Time to decode and normalise one image.", buckets=_FINE_BUCKETS
)
REJECTED = Counter("digits_recognizer_rejected_images_total", "Uploads refused, by reason.", ["reason"])
MODEL_INFO = Gauge("digits_recognizer_model_info", "The loaded model (value 1).", ["version"])


class RecognizerServicer(recognizer_pb2_grpc.RecognizerServicer):
    def __init__(self, config: Config) -> None:
        self._config = config
        self._limits = preprocess.Limits(config.max_image_bytes, config.max_image_pixels)
        self._executor = ThreadPoolExecutor(config.worker_threads, thread_name_prefix="recognizer")
        self._model: DigitModel | None = None

    async def load(self) -> None:
        def load_and_warm() -> DigitModel:
            model = DigitModel(self._config.model_dir)
            model.warm_up()
            return model

        self._model = await asyncio.get_running_loop().run_in_executor(self._executor, load_and_warm)
        MODEL_INFO.labels(self._model.version).set(1)

    async def close(self) -> None:
        self._executor.shutdown(wait=True)

    async def _run(self, fn, *args):  # type: ignore[no-untyped-def]
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def _preprocess(self, data: bytes) -> np.ndarray:
        start = time.perf_counter()
        try:
            return preprocess.to_mnist(data, self._limits)
        finally:
            PREPROCESS_SECONDS.observe(time.perf_counter() - start)

    def _infer(self, batch: np.ndarray) -> np.ndarray:
        assert self._model is not None
        start = time.perf_counter()
        probabilities = self._model.predict(batch)
        INFERENCE_SECONDS.observe(time.perf_counter() - start)
        return probabilities

    async def Recognize(self, request, context):  # type: ignore[no-untyped-def]
        model = self._model
        if model is None:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "the model is still loading; retry shortly")
        try:
            field = await self._run(self._preprocess, request.image)
        except preprocess.ImageError as exc:
            REJECTED.labels(exc.reason).inc()
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"{exc.reason}: {exc}")
        probabilities = (await self._run(self._infer, field[None, :, :, None]))[0]
        digit = int(np.argmax(probabilities))
        return recognizer_pb2.RecognizeResponse(
            digit=digit,
            confidence=float(probabilities[digit]),
            probabilities=[float(p) for p in probabilities],
            model_version=model.version,
        )


def build(config: Config) -> GrpcService:
    servicer = RecognizerServicer(config)
    return GrpcService(
        register=lambda server: recognizer_pb2_grpc.add_RecognizerServicer_to_server(servicer, server),
        service_names=[recognizer_pb2.DESCRIPTOR.services_by_name["Recognizer"].full_name],
        startup=servicer.load,
        shutdown=servicer.close,
        host=config.host,
        port=config.port,
        grace_seconds=config.grace_seconds,
        # The gRPC frame must hold the largest image we accept plus the envelope.
        max_message_bytes=config.max_image_bytes + 64 * 1024,
    )
