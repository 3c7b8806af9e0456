"""The Recognizer over real gRPC on an ephemeral port, through the generated stubs."""

from __future__ import annotations

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from digits.v1 import recognizer_pb2, recognizer_pb2_grpc
from services.recognizer.config import Config
from services.recognizer.server import build
from tests.helpers import DATA, ServiceThread, encode, mnist_test


@pytest.fixture(scope="module")
def recognizer():
    service = ServiceThread(build(Config(host="127.0.0.1", port=0, max_image_bytes=2_000_000))).start()
    service.wait_ready()
    with grpc.insecure_channel(service.address) as channel:
        yield channel
    service.stop()


def recognize(channel, data: bytes, timeout: float = 10) -> recognizer_pb2.RecognizeResponse:
    return recognizer_pb2_grpc.RecognizerStub(channel).Recognize(
        recognizer_pb2.RecognizeRequest(image=data, content_type="image/png"), timeout=timeout
    )


def test_health_is_serving_once_the_model_is_loaded(recognizer):
    reply = health_pb2_grpc.HealthStub(recognizer).Check(health_pb2.HealthCheckRequest(service="digits.v1.Recognizer"))
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


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
    ],
    ids=["empty", "text", "blank", "over-limit"],
)
def test_bad_images_are_invalid_argument_and_the_service_keeps_serving(recognizer, data, reason):
    with pytest.raises(grpc.RpcError) as caught:
        recognize(recognizer, data)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.details().startswith(reason)
    assert recognize(recognizer, (DATA / "seven.png").read_bytes()).digit == 7


def test_a_message_far_over_the_limit_is_stopped_by_the_transport(recognizer):
    # gRPC refuses it before it is read into memory; the service is unaffected.
    with pytest.raises(grpc.RpcError) as caught:
        recognize(recognizer, b"\0" * 3_000_000)
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert recognize(recognizer, (DATA / "seven.png").read_bytes()).digit == 7


def test_inference_latency_is_exported(recognizer):
    from prometheus_client import REGISTRY

    before = REGISTRY.get_sample_value("digits_recognizer_inference_seconds_count") or 0
    ok = {"method": "/digits.v1.Recognizer/Recognize", "code": "OK"}
    handled = REGISTRY.get_sample_value("digits_grpc_server_handled_total", ok) or 0
    recognize(recognizer, (DATA / "seven.png").read_bytes())
    assert REGISTRY.get_sample_value("digits_recognizer_inference_seconds_count") == before + 1
    assert REGISTRY.get_sample_value("digits_grpc_server_handled_total", ok) == handled + 1
