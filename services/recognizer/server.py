"""The Recognizer gRPC service: bytes in, digits and probabilities out.

Each image is decoded, cut into its digits and normalised in a small thread pool
(segment.py), then every piece is handed to the batcher (batching.py), which runs the model on
its own thread for every piece queued at that moment (or, for a lone piece after a lull, at
once on the event loop); reading.py turns the scores into the answer. ``RecognizeBatch`` goes
through the same path, image by image, so its images share model calls with each other and
with concurrent ``Recognize`` calls.
"""

from __future__ import annotations

import asyncio
import io
import logging
import time
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import grpc
import numpy as np
from PIL import Image
from prometheus_client import Counter, Gauge, Histogram
from threadpoolctl import threadpool_limits

from digits import errors
from digits.grpc_server import GrpcService
from digits.v1 import recognizer_pb2, recognizer_pb2_grpc
from services.recognizer import decoding, reading, segment
from services.recognizer.batching import Batcher, BatcherClosed
from services.recognizer.config import Config
from services.recognizer.model import DigitModel

log = logging.getLogger(__name__)

# Sub-millisecond resolution: a single 28×28 inference takes about a millisecond on a CPU.
_FINE_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.00075, 0.001, 0.0015, 0.002, 0.003, 0.005, 0.0075,
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
)  # fmt: skip
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
# Model-dependent metrics carry the version, so a rollout's effect shows per version.
INFERENCE_SECONDS = Histogram(
    "digits_recognizer_inference_seconds", "Time of one model call (one batch).", ["model_version"],
    buckets=_FINE_BUCKETS,
)  # fmt: skip
BATCH_SIZE = Histogram(
    "digits_recognizer_batch_size", "Images per model call.", ["model_version"], buckets=_BATCH_BUCKETS
)
QUEUE_SECONDS = Histogram(
    "digits_recognizer_queue_seconds", "Time an image waited for its model call.", ["model_version"],
    buckets=_FINE_BUCKETS,
)  # fmt: skip
PREPROCESS_SECONDS = Histogram(
    "digits_recognizer_preprocess_seconds", "Time to decode and normalise one image.", buckets=_FINE_BUCKETS
)
DECODED = Counter(
    "digits_recognizer_decoded_images_total",
    "Images decoded, by where: inline (a lone small image on an idle server) or on the worker threads.",
    ["where"],
)
REJECTED = Counter("digits_recognizer_rejected_images_total", "Uploads refused, by reason.", ["reason"])
MODEL_INFO = Gauge("digits_recognizer_model_info", "The loaded model (value 1).", ["version"])


class PreprocessingFailed(decoding.ImageError):
    """Preprocessing raised something unexpected: our fault (INTERNAL), not the image's."""


class RecognizerServicer(recognizer_pb2_grpc.RecognizerServicer):
    def __init__(self, config: Config) -> None:
        self._config = config
        self._limits = decoding.Limits(config.max_image_bytes, config.max_image_pixels)
        self._executor = ThreadPoolExecutor(config.worker_threads, thread_name_prefix="recognizer")
        self._small_executor = ThreadPoolExecutor(1, thread_name_prefix="recognizer-small")  # see _groups
        self._model: DigitModel | None = None
        self._threshold = 1.0
        self._batcher: Batcher[np.ndarray, np.ndarray] | None = None
        # Images being decoded right now: each will reach the batcher shortly.
        self._decoding = 0

    async def load(self) -> None:
        # Batching off is a batch size of one: the same code path, one model call per image.
        max_batch = self._config.max_batch_size if self._config.batching else 1
        max_wait = self._config.max_batch_wait_seconds if self._config.batching else 0.0

        def load_and_warm() -> DigitModel:
            model = DigitModel(self._config.model_dir)
            model.warm_up(max_batch)
            return model

        model = await asyncio.get_running_loop().run_in_executor(self._executor, load_and_warm)
        version = model.version

        def observe(size: int, waits: Sequence[float]) -> None:
            BATCH_SIZE.labels(version).observe(size)
            queue = QUEUE_SECONDS.labels(version)
            for wait in waits:
                queue.observe(wait)

        def infer(fields: list[np.ndarray]) -> list[np.ndarray]:
            start = time.perf_counter()
            probabilities = model.predict(np.stack(fields)[..., None])
            INFERENCE_SECONDS.labels(version).observe(time.perf_counter() - start)
            return list(probabilities)

        self._batcher = Batcher(
            infer, max_batch, max_wait, observe=observe, thread_name="recognizer-model",
            incoming=lambda: self._decoding,
            # A model call is ~0.1 ms (model.py): after a lull, cheaper here than two hand-offs.
            inline_after_lull=True,
        )  # fmt: skip
        self._model = model
        # A model without a "not a digit" output (10 classes) never refuses.
        chosen = model.metadata.get("calibration", {}).get("not_digit_threshold", 1.0)
        self._threshold = self._config.not_digit_threshold or chosen
        MODEL_INFO.labels(version).set(1)
        log.info("batching", extra={"max_batch_size": max_batch, "max_wait_seconds": max_wait,
                                    "not_digit_threshold": self._threshold})

    async def close(self) -> None:
        # Called after the server has stopped taking calls: what is queued still runs.
        if self._batcher is not None:
            await self._batcher.close()
        self._executor.shutdown(wait=True)
        self._small_executor.shutdown(wait=True)

    def _preprocess(self, data: bytes) -> list[segment.Group]:
        start = time.perf_counter()
        try:
            return segment.read(data, self._limits)
        finally:
            PREPROCESS_SECONDS.observe(time.perf_counter() - start)

    async def _ready(self, context: grpc.aio.ServicerContext) -> tuple[DigitModel, Batcher]:
        if self._model is None or self._batcher is None:
            await errors.abort(context, grpc.StatusCode.UNAVAILABLE, "MODEL_LOADING", "the model is still loading; retry shortly")
        return self._model, self._batcher  # type: ignore[return-value]

    def _groups_of(self, images: Sequence[bytes]) -> list[list[segment.Group] | decoding.ImageError]:
        fields: list[list[segment.Group] | decoding.ImageError] = []
        for data in images:
            try:
                fields.append(self._preprocess(data))
            except decoding.ImageError as exc:
                REJECTED.labels(exc.reason).inc()
                fields.append(exc)
            except Exception:  # a bug: it fails this image alone, not the others of the call
                log.exception("preprocessing failed", extra={"image_bytes": len(data)})
                fields.append(PreprocessingFailed("PREPROCESSING_FAILED", "the image could not be processed (a server error)"))
        return fields

    def _small(self, data: bytes) -> bool:
        """Cheap enough to decode on the event loop: few bytes and, by its header (read without
        decompressing anything), no more pixels than a working copy has."""
        if len(data) > self._config.inline_max_bytes:
            return False
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error")  # a decompression-bomb warning is an answer too
                with Image.open(io.BytesIO(data)) as image:
                    width, height = image.size
        except Exception:  # noqa: BLE001  (not an image, a bomb, ...: the decoding proper says which)
            return False
        return width * height <= decoding.WORKING_SIDE**2

    async def _groups(self, images: Sequence[bytes]) -> list[list[segment.Group] | decoding.ImageError]:
        """The digits of each image, or why there are none, decoded on the worker threads:
        one hand-off per thread, not per image (each costs a thread switch and the GIL); or, for
        a lone small image on an idle server, right here (see Config.inline_max_bytes).

        Small images all go to one thread: decoding them is mostly numpy on small arrays, which
        holds the GIL, so a second thread only adds switching (two threads gave 10-13% fewer
        uploads/s at 16 and 64 concurrent uploads). Large ones (photos) are spread over the
        worker threads: libjpeg and zlib run without the GIL (11% more photos/s with two)."""
        idle = self._decoding == 0 and self._batcher is not None and self._batcher.idle
        if idle and len(images) == 1 and self._small(images[0]):
            DECODED.labels("inline").inc()
            return self._groups_of(images)
        DECODED.labels("threads").inc(len(images))
        loop = asyncio.get_running_loop()
        small: list[int] = []
        large: list[int] = []
        for i, data in enumerate(images):
            (small if len(data) <= self._config.inline_max_bytes else large).append(i)
        threads = self._config.worker_threads
        parts = [(self._small_executor, small)] if small else []
        parts += [(self._executor, large[k::threads]) for k in range(min(threads, len(large)))]
        self._decoding += len(images)
        try:
            done = await asyncio.gather(
                *(loop.run_in_executor(executor, self._groups_of, [images[i] for i in part]) for executor, part in parts)
            )
        finally:
            self._decoding -= len(images)
        fields: list[list[segment.Group] | decoding.ImageError] = [None] * len(images)  # type: ignore[list-item]
        for (_, part), results in zip(parts, done):
            for i, result in zip(part, results):
                fields[i] = result
        return fields

    async def _classify(
        self, batcher: Batcher, fields: list[np.ndarray], context: grpc.aio.ServicerContext
    ) -> list[np.ndarray]:
        try:
            return await batcher.submit_many(fields)
        except BatcherClosed:
            await errors.abort(context, grpc.StatusCode.UNAVAILABLE, "SHUTTING_DOWN", "the server is shutting down; retry")
        except Exception:
            log.exception("inference failed")
            await errors.abort(context, grpc.StatusCode.INTERNAL, "INFERENCE_FAILED", "inference failed")
        raise AssertionError("unreachable: abort raises")

    def _answer(self, groups: list[segment.Group], scores: list[np.ndarray], version: str,
                include_fields: bool) -> recognizer_pb2.RecognizeResponse:
        try:
            return reading.answer(groups, scores, self._threshold, version, include_fields)
        except decoding.ImageError as exc:
            REJECTED.labels(exc.reason).inc()
            raise

    async def Recognize(self, request, context):  # type: ignore[no-untyped-def]
        model, batcher = await self._ready(context)
        (groups,) = await self._groups([request.image])
        if isinstance(groups, PreprocessingFailed):
            await errors.abort(context, grpc.StatusCode.INTERNAL, groups.reason, str(groups))
        if isinstance(groups, decoding.ImageError):
            await errors.abort(context, grpc.StatusCode.INVALID_ARGUMENT, groups.reason, str(groups))
        scores = await self._classify(batcher, reading.fields(groups), context)
        try:
            return self._answer(groups, scores, model.version, request.include_fields)
        except decoding.ImageError as exc:
            await errors.abort(context, grpc.StatusCode.INVALID_ARGUMENT, exc.reason, str(exc))

    async def RecognizeBatch(self, request, context):  # type: ignore[no-untyped-def]
        model, batcher = await self._ready(context)
        limit = self._config.max_images_per_call
        if len(request.images) > limit:
            await errors.abort(
                context, grpc.StatusCode.INVALID_ARGUMENT, "TOO_MANY_IMAGES",
                f"{len(request.images)} images in one call; the limit is {limit}",
            )  # fmt: skip
        images = await self._groups(list(request.images))
        fields = [[] if isinstance(g, decoding.ImageError) else reading.fields(g) for g in images]
        scores = iter(await self._classify(batcher, [f for image in fields for f in image], context))
        results = []
        for groups, own in zip(images, fields):
            if isinstance(groups, decoding.ImageError):
                results.append(_error(groups))
                continue
            mine = [next(scores) for _ in own]
            try:
                answer = self._answer(groups, mine, model.version, request.include_fields)
                results.append(recognizer_pb2.RecognizeBatchResult(recognition=answer))
            except decoding.ImageError as exc:
                results.append(_error(exc))
        return recognizer_pb2.RecognizeBatchResponse(results=results, model_version=model.version)


def _error(exc: decoding.ImageError) -> recognizer_pb2.RecognizeBatchResult:
    return recognizer_pb2.RecognizeBatchResult(error=recognizer_pb2.ImageError(reason=exc.reason, message=str(exc)))


def build(config: Config) -> GrpcService:
    # One BLAS thread: the recognizer's matrix products are small (preprocessing's background
    # grid, a 6×6 fit), and OpenBLAS's second thread, spinning on the other core while it waited
    # for work, doubled their CPU for a 280 px image.
    threadpool_limits(1, user_api="blas")
    servicer = RecognizerServicer(config)
    return GrpcService(
        register=lambda server: recognizer_pb2_grpc.add_RecognizerServicer_to_server(servicer, server),
        service_names=[recognizer_pb2.DESCRIPTOR.services_by_name["Recognizer"].full_name],
        startup=servicer.load,
        shutdown=servicer.close,
        host=config.host,
        port=config.port,
        grace_seconds=config.grace_seconds,
        max_concurrent_rpcs=config.max_concurrent_rpcs,
        # The gRPC frame must hold the largest image we accept plus the envelope.
        max_message_bytes=config.max_image_bytes + 64 * 1024,
    )
