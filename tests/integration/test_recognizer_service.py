"""The Recognizer over real gRPC on an ephemeral port, through the generated stubs."""

from __future__ import annotations

import io
import json
import shutil
from concurrent.futures import ThreadPoolExecutor

import grpc

from digits import errors
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from PIL import Image
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from prometheus_client import REGISTRY
from threadpoolctl import threadpool_info, threadpool_limits

from digits.v1 import recognizer_pb2, recognizer_pb2_grpc
from services.recognizer.config import DEFAULT_MODEL_DIR, Config
from services.recognizer.server import build
from tests.helpers import DATA, ServiceThread, encode, mnist_test, png_bomb

MAX_IMAGES_PER_CALL = 16


def serve(**settings):
    """A running recognizer on an ephemeral loopback port, and a channel to it."""
    config = Config(host="127.0.0.1", port=0, metrics_port=0, **settings)
    service = ServiceThread(build(config)).start()
    service.wait_ready()
    channel = grpc.insecure_channel(service.address)
    return service, channel


@pytest.fixture(scope="module")
def recognizer():
    service, channel = serve(max_image_bytes=2_000_000, max_images_per_call=MAX_IMAGES_PER_CALL)
    with channel:
        yield channel
    service.stop()


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def recognize(channel, data: bytes, timeout: float = 10) -> recognizer_pb2.RecognizeResponse:
    return recognizer_pb2_grpc.RecognizerStub(channel).Recognize(
        recognizer_pb2.RecognizeRequest(image=data, content_type="image/png"), timeout=timeout
    )


def enlarged_seven(side: int, compress_level: int = 6) -> bytes:
    """tests/data/seven.png scaled to ``side`` px a side, as a PNG: slower to decode than the
    original, and past the size decoded inline when saved uncompressed (level 0)."""
    buffer = io.BytesIO()
    image = Image.open(DATA / "seven.png").convert("L").resize((side, side))
    image.save(buffer, "PNG", compress_level=compress_level)
    return buffer.getvalue()


def test_health_is_serving_once_the_model_is_loaded(recognizer):
    reply = health_pb2_grpc.HealthStub(recognizer).Check(health_pb2.HealthCheckRequest(service="digits.v1.Recognizer"))
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_blas_runs_on_one_thread_once_built():
    # OpenBLAS's second thread doubled the CPU of preprocessing's small matrix products.
    with threadpool_limits(2, user_api="blas"):  # what a fresh process on two cores starts with
        build(Config(host="127.0.0.1", port=0, metrics_port=0))
        threads = {pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"}
    assert threads == {1}


def test_reflection_lists_the_service(recognizer):
    stub = reflection_pb2_grpc.ServerReflectionStub(recognizer)
    replies = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
    names = {s.name for reply in replies for s in reply.list_services_response.service}
    assert {"digits.v1.Recognizer", "grpc.health.v1.Health"} <= names


def test_the_sample_seven_is_a_seven(recognizer):
    reply = recognize(recognizer, (DATA / "seven.png").read_bytes())
    assert reply.digit == 7
    assert reply.confidence > 0.9
    assert len(reply.probabilities) == 10
    assert sum(reply.probabilities) == pytest.approx(1.0, abs=1e-3)
    assert reply.probabilities[7] == pytest.approx(reply.confidence)
    assert reply.model_version


def test_mnist_test_digits_are_recognised(recognizer):
    images, labels = mnist_test(200)
    predicted = np.array([recognize(recognizer, encode(255 - image)).digit for image in images])
    assert (predicted == labels).mean() >= 0.97


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "EMPTY_IMAGE"),
        (b"just some text", "NOT_AN_IMAGE"),
        (encode(np.full((64, 64), 255, dtype=np.uint8)), "NO_DIGIT_FOUND"),
        (b"\x89PNG\r\n\x1a\n" + b"\0" * 2_000_000, "IMAGE_TOO_LARGE"),
        # A few bytes declaring billions of pixels: small enough to be read on the event loop,
        # so the size check must answer before that path decodes anything.
        (png_bomb(50_000, 50_000), "IMAGE_TOO_LARGE"),
        (png_bomb(12_000, 12_000), "IMAGE_TOO_LARGE"),
    ],
    ids=["empty", "text", "blank", "over-limit", "bomb-past-pil-limit", "bomb-past-our-limit"],
)
def test_bad_images_are_invalid_argument_and_the_service_keeps_serving(recognizer, data, reason):
    with pytest.raises(grpc.RpcError) as caught:
        recognize(recognizer, data)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    # The reason travels as google.rpc.ErrorInfo in the status details, not in the message text.
    assert errors.reason_of(caught.value) == reason
    assert errors.error_info(caught.value).domain == "digits.v1"
    assert caught.value.details() and not caught.value.details().startswith(reason)
    assert recognize(recognizer, (DATA / "seven.png").read_bytes()).digit == 7


def test_a_message_far_over_the_limit_is_stopped_by_the_transport(recognizer):
    # gRPC refuses it before it is read into memory; the service is unaffected.
    with pytest.raises(grpc.RpcError) as caught:
        recognize(recognizer, b"\0" * 3_000_000)
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert recognize(recognizer, (DATA / "seven.png").read_bytes()).digit == 7


def test_inference_batch_queue_and_status_metrics_carry_the_model_version(recognizer):
    version = recognize(recognizer, (DATA / "seven.png").read_bytes()).model_version
    names = ("inference_seconds_count", "batch_size_count", "batch_size_sum", "queue_seconds_count")
    before = {n: metric(f"digits_recognizer_{n}", model_version=version) for n in names}
    ok = {"method": "/digits.v1.Recognizer/Recognize", "code": "OK"}
    handled = metric("digits_grpc_server_handled_total", **ok)
    recognize(recognizer, (DATA / "seven.png").read_bytes())
    for n in names:
        assert metric(f"digits_recognizer_{n}", model_version=version) == before[n] + 1, n
    assert metric("digits_grpc_server_handled_total", **ok) == handled + 1
    assert metric("digits_recognizer_model_info", version=version) == 1


def test_recognize_batch_answers_each_image_in_order_and_fails_bad_ones_alone(recognizer):
    images, labels = mnist_test(10)
    uploads = [encode(255 - image) for image in images]
    uploads[3] = b"just some text"
    uploads[7] = b""
    reply = recognizer_pb2_grpc.RecognizerStub(recognizer).RecognizeBatch(
        recognizer_pb2.RecognizeBatchRequest(images=uploads), timeout=30
    )
    assert reply.model_version
    assert len(reply.results) == 10
    assert reply.results[3].WhichOneof("result") == "error"
    assert reply.results[3].error.reason == "NOT_AN_IMAGE"
    assert reply.results[7].error.reason == "EMPTY_IMAGE"
    good = [i for i in range(10) if i not in (3, 7)]
    assert all(reply.results[i].WhichOneof("result") == "recognition" for i in good)
    predicted = np.array([reply.results[i].recognition.digit for i in good])
    assert (predicted == labels[good]).mean() >= 0.85  # 8 digits: order is what is checked
    assert {reply.results[i].recognition.model_version for i in good} == {reply.model_version}


def test_a_batch_of_small_and_large_images_answers_each_in_order(recognizer):
    """Small images are decoded on one thread and large ones spread over the others
    (server._groups): each answer must still be its own image's, whatever part it went to."""
    images, _ = mnist_test(12)
    noise = np.random.default_rng(0).integers(0, 40, (700, 700), dtype=np.uint8)  # grainy paper
    uploads = []
    for i, image in enumerate(images):
        if i % 3 == 1:  # a noisy 700 px photo-like PNG, far past the small-image size
            big = np.asarray(Image.fromarray(255 - image).resize((700, 700)), dtype=np.uint8)
            uploads.append(encode(np.minimum(big, 255 - noise)))
            assert len(uploads[-1]) > Config().inline_max_bytes
        else:
            uploads.append(encode(255 - image))
    stub = recognizer_pb2_grpc.RecognizerStub(recognizer)
    alone = [stub.Recognize(recognizer_pb2.RecognizeRequest(image=u), timeout=10).digit for u in uploads]
    reply = stub.RecognizeBatch(recognizer_pb2.RecognizeBatchRequest(images=uploads), timeout=30)
    assert [r.recognition.digit for r in reply.results] == alone


def test_recognize_batch_of_nothing_is_an_empty_answer(recognizer):
    reply = recognizer_pb2_grpc.RecognizerStub(recognizer).RecognizeBatch(
        recognizer_pb2.RecognizeBatchRequest(images=[]), timeout=10
    )
    assert list(reply.results) == []


def test_recognize_batch_refuses_more_images_than_the_limit(recognizer):
    seven = (DATA / "seven.png").read_bytes()
    stub = recognizer_pb2_grpc.RecognizerStub(recognizer)
    with pytest.raises(grpc.RpcError) as caught:
        stub.RecognizeBatch(recognizer_pb2.RecognizeBatchRequest(images=[seven] * (MAX_IMAGES_PER_CALL + 1)))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert errors.reason_of(caught.value) == "TOO_MANY_IMAGES"
    reply = stub.RecognizeBatch(recognizer_pb2.RecognizeBatchRequest(images=[seven] * MAX_IMAGES_PER_CALL))
    assert [r.recognition.digit for r in reply.results] == [7] * MAX_IMAGES_PER_CALL


def batches_for_concurrent_calls(channel, calls: int) -> tuple[float, float]:
    """(model calls, images) counted by the batch-size histogram while ``calls`` Recognize calls run at once.

    The image is past the size decoded inline, so each call's decoding takes a worker thread
    for a few milliseconds and the calls overlap there; with the small seven, each decoded
    inline in well under a millisecond, a slow machine sometimes delivered the calls so far
    apart that each found the server idle and ran alone (the batcher waits for company only
    while some is being decoded)."""
    seven = enlarged_seven(600, compress_level=0)
    assert len(seven) > Config().inline_max_bytes
    version = recognize(channel, seven).model_version
    count = metric("digits_recognizer_batch_size_count", model_version=version)
    total = metric("digits_recognizer_batch_size_sum", model_version=version)
    # All sent before any answer is awaited (threads of a pool start one after another).
    stub = recognizer_pb2_grpc.RecognizerStub(channel)
    request = recognizer_pb2.RecognizeRequest(image=seven, content_type="image/png")
    pending = [stub.Recognize.future(request, timeout=30) for _ in range(calls)]
    assert [call.result().digit for call in pending] == [7] * calls
    return (
        metric("digits_recognizer_batch_size_count", model_version=version) - count,
        metric("digits_recognizer_batch_size_sum", model_version=version) - total,
    )


def test_a_lone_small_image_on_an_idle_server_is_decoded_inline_and_the_rest_on_threads(recognizer):
    seven = (DATA / "seven.png").read_bytes()
    decoded = lambda: (metric("digits_recognizer_decoded_images_total", where="inline"),  # noqa: E731
                       metric("digits_recognizer_decoded_images_total", where="threads"))  # fmt: skip
    before = decoded()
    assert recognize(recognizer, seven).digit == 7
    assert decoded() == (before[0] + 1, before[1])
    stub = recognizer_pb2_grpc.RecognizerStub(recognizer)
    reply = stub.RecognizeBatch(recognizer_pb2.RecognizeBatchRequest(images=[seven, seven]))
    assert [r.recognition.digit for r in reply.results] == [7, 7]
    assert decoded() == (before[0] + 1, before[1] + 2)
    # Past RECOGNIZER_INLINE_MAX_BYTES (64 KiB), or past 512×512 pixels however few its bytes
    # (a plain background compresses to nothing): never decoded on the event loop.
    seven_image = Image.open(DATA / "seven.png").convert("L")
    sheet = Image.new("L", (1200, 1200), int(seven_image.getpixel((0, 0))))
    sheet.paste(seven_image.resize((600, 600)), (300, 300))
    for image, level in ((seven_image.resize((600, 600)), 0), (sheet, 9)):
        encoded = io.BytesIO()
        image.save(encoded, "PNG", compress_level=level)
        assert (len(encoded.getvalue()) > 64 * 1024) == (level == 0)
        assert recognize(recognizer, encoded.getvalue()).digit == 7
    assert decoded() == (before[0] + 1, before[1] + 4)


def test_concurrent_calls_share_model_calls_when_batching_is_on():
    # A generous wait makes coalescing certain however slowly this shared machine runs; the
    # batch fills at 8 and then runs at once.
    service, channel = serve(max_batch_size=8, max_batch_wait_seconds=2.0)
    try:
        model_calls, images = batches_for_concurrent_calls(channel, 8)
    finally:
        channel.close()
        service.stop()
    assert images == 8
    assert model_calls < 8


def test_each_call_is_its_own_model_call_when_batching_is_off():
    service, channel = serve(batching=False, max_batch_wait_seconds=2.0)
    try:
        model_calls, images = batches_for_concurrent_calls(channel, 8)
    finally:
        channel.close()
        service.stop()
    assert (model_calls, images) == (8, 8)


def test_a_model_directory_whose_files_do_not_match_its_version_never_serves(tmp_path):
    model_dir = tmp_path / "model"
    shutil.copytree(DEFAULT_MODEL_DIR, model_dir)
    meta = json.loads((model_dir / "model.json").read_text())
    meta["version"] = "0123456789ab"  # as if model.json came from another training run
    (model_dir / "model.json").write_text(json.dumps(meta))
    service, channel = serve(model_dir=str(model_dir))
    try:
        health = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service="digits.v1.Recognizer"), timeout=10
        )
        assert health.status == health_pb2.HealthCheckResponse.NOT_SERVING
        with pytest.raises(grpc.RpcError) as caught:
            recognize(channel, (DATA / "seven.png").read_bytes())
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        channel.close()
        service.stop()


def test_past_its_concurrency_bound_it_answers_resource_exhausted_at_once():
    """With room for one call, simultaneous calls beyond it are refused at once (the gateway's
    503), never queued past their deadline."""
    request = recognizer_pb2.RecognizeRequest(image=enlarged_seven(1500))  # slow enough to overlap
    service, channel = serve(max_concurrent_rpcs=1)
    try:
        stub = recognizer_pb2_grpc.RecognizerStub(channel)

        def call(_: int) -> str:
            try:
                stub.Recognize(request, timeout=30)
                return "OK"
            except grpc.RpcError as exc:
                return exc.code().name

        with ThreadPoolExecutor(8) as pool:
            codes = list(pool.map(call, range(16)))
        assert set(codes) == {"OK", "RESOURCE_EXHAUSTED"}, codes
    finally:
        channel.close()
        service.stop()


def test_a_model_tflite_converted_from_another_model_never_serves(tmp_path):
    model_dir = tmp_path / "model"
    shutil.copytree(DEFAULT_MODEL_DIR, model_dir)
    flatbuffer = bytearray((model_dir / "model.tflite").read_bytes())
    flatbuffer[-1] ^= 0xFF  # any other file: its hash no longer matches model.json's
    (model_dir / "model.tflite").write_bytes(bytes(flatbuffer))
    service, channel = serve(model_dir=str(model_dir))
    try:
        health = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service="digits.v1.Recognizer"), timeout=10
        )
        assert health.status == health_pb2.HealthCheckResponse.NOT_SERVING
    finally:
        channel.close()
        service.stop()


def test_a_number_is_read_digit_by_digit_left_to_right(recognizer):
    from tests import drawn

    for count, gap in ((2, 6), (4, 4), (3, -1)):
        data, expected = drawn.number(count, gap=gap, start=20)
        reply = recognize(recognizer, data)
        assert reply.number == expected, (count, gap)
        assert [d.digit for d in reply.digits] == [int(c) for c in expected]
        xs = [d.box.x for d in reply.digits]
        assert xs == sorted(xs) and all(d.box.width > 0 and d.box.height > 0 for d in reply.digits)
        assert reply.digit == reply.digits[0].digit and reply.confidence == pytest.approx(reply.digits[0].confidence)


def test_a_single_digit_is_its_own_number_with_a_box(recognizer):
    reply = recognize(recognizer, (DATA / "seven.png").read_bytes())
    assert reply.number == "7" and len(reply.digits) == 1
    assert reply.digits[0].box.width > 0 and 0.0 <= reply.not_digit_probability < 0.5


@pytest.mark.parametrize("name", ["A", "H", "#", "star", "heart", "K"])
def test_letters_and_symbols_are_refused_as_not_a_digit(recognizer, name):
    from tests import drawn

    with pytest.raises(grpc.RpcError) as caught:
        recognize(recognizer, drawn.symbol(name, seed=3))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert errors.reason_of(caught.value) == "NOT_A_DIGIT"


def test_the_not_a_digit_threshold_can_be_raised_to_never_refuse():
    from tests import drawn

    service, channel = serve(not_digit_threshold=1.0)
    try:
        with channel:
            reply = recognize(channel, drawn.symbol("A", seed=3))
            assert len(reply.number) == 1 and reply.not_digit_probability > 0.5
    finally:
        service.stop()


def test_the_fields_the_model_read_come_back_only_when_asked(recognizer):
    import io

    from PIL import Image

    from tests import drawn

    data, expected = drawn.number(2, gap=6, start=50)
    stub = recognizer_pb2_grpc.RecognizerStub(recognizer)
    plain = stub.Recognize(recognizer_pb2.RecognizeRequest(image=data), timeout=10)
    assert all(d.field_png == b"" for d in plain.digits)
    asked = stub.Recognize(recognizer_pb2.RecognizeRequest(image=data, include_fields=True), timeout=10)
    assert asked.number == expected
    for d in asked.digits:
        field = Image.open(io.BytesIO(d.field_png))
        assert field.size == (28, 28) and field.mode == "L"
        assert np.asarray(field).max() == 255  # ink scaled to full strength, as the model reads it
    batch = stub.RecognizeBatch(recognizer_pb2.RecognizeBatchRequest(images=[data], include_fields=True), timeout=10)
    assert [d.field_png for d in batch.results[0].recognition.digits] == [d.field_png for d in asked.digits]
