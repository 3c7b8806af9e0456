"""make bench: the per-stage arithmetic over scraped Prometheus histograms (benchmarks/http/stages.py)."""

from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest
from grpc_health.v1 import health, health_pb2_grpc

from benchmarks.http import stages


def _exposition(handler_sum: float, handler_count: int, parse: bool = True) -> str:
    lines = [
        "# TYPE digits_gateway_request_seconds histogram",
        f'digits_gateway_request_seconds_count{{route="/v1/recognitions",method="POST",status="201"}} {handler_count}',
        f'digits_gateway_request_seconds_sum{{route="/v1/recognitions",method="POST",status="201"}} {handler_sum}',
        'digits_gateway_request_seconds_count{route="/healthz",method="GET",status="200"} 1000',
        'digits_gateway_request_seconds_sum{route="/healthz",method="GET",status="200"} 9.0',
    ]
    if parse:
        lines += [
            "# TYPE digits_gateway_upload_parse_seconds histogram",
            f"digits_gateway_upload_parse_seconds_count {handler_count}",
            f"digits_gateway_upload_parse_seconds_sum {handler_count * 0.0005}",
        ]
    return "\n".join(lines) + "\n"


def test_delta_and_mean_ignore_what_happened_before_the_run() -> None:
    before = stages.parse(_exposition(10.0, 1000))
    after = stages.parse(_exposition(10.0 + 200 * 0.004, 1200))
    d = stages.delta(before, after)
    assert stages.mean_ms(d, "digits_gateway_request_seconds", route="/v1/recognitions") == pytest.approx(4.0)
    # Health checks did not change: no observations, no mean (not a division by zero).
    assert stages.mean_ms(d, "digits_gateway_request_seconds", route="/healthz") is None
    assert stages.mean_ms(d, "digits_gateway_no_such_seconds") is None


def test_a_series_that_appears_during_the_run_counts_from_zero() -> None:
    before = stages.parse(_exposition(0.0, 0, parse=False))
    after = stages.parse(_exposition(0.4, 100))
    d = stages.delta(before, after)
    assert stages.mean_ms(d, "digits_gateway_upload_parse_seconds") == pytest.approx(0.5)


def test_label_predicates_select_series() -> None:
    d = stages.parse(
        'x_count{status="201"} 3\nx_sum{status="201"} 0.3\nx_count{status="503"} 1\nx_sum{status="503"} 0.001\n'
    )
    assert stages.histogram(d, "x") == (4.0, pytest.approx(0.301))
    assert stages.mean_ms(d, "x", status=lambda s: s.startswith("2")) == pytest.approx(100.0)


def _samples(**means_ms: float) -> stages.Samples:
    """One observation per histogram with the given mean, named by keyword (label filters apply)."""
    out: stages.Samples = {}
    for key, ms in means_ms.items():
        family, _, labels = key.partition("__")
        pairs = tuple(sorted(dict(p.split("=") for p in labels.split("__") if p).items())) if labels else ()
        out[(f"{family}_count", pairs)] = 1.0
        out[(f"{family}_sum", pairs)] = ms / 1000
    return out


def test_breakdown_rows_of_one_level_add_up_to_their_parent() -> None:
    gateway = _samples(**{
        "digits_gateway_request_seconds__route=/v1/recognitions__method=POST__status=201": 10.0,
        "digits_gateway_upload_parse_seconds": 1.0,
        "digits_gateway_backend_seconds__dependency=recognizer__method=Recognize": 3.0,
        "digits_gateway_backend_seconds__dependency=recorder__method=Record": 4.0,
    })  # fmt: skip
    recognizer = _samples(**{
        "digits_grpc_server_handling_seconds__method=/digits.v1.Recognizer/Recognize__code=OK": 2.5,
        "digits_recognizer_preprocess_seconds": 1.0,
        "digits_recognizer_queue_seconds": 0.25,
        "digits_recognizer_inference_seconds": 1.0,
        "digits_recognizer_batch_size": 1000.0,  # one call of one image: count 1, sum 1
    })  # fmt: skip
    recorder = _samples(**{
        "digits_grpc_server_handling_seconds__method=/digits.v1.Recorder/Record__code=OK": 3.0,
        "digits_recorder_cassandra_seconds__operation=record": 2.0,
    })  # fmt: skip
    result = stages.breakdown(12.0, gateway, recognizer, recorder)
    rows = {s.name: s.mean_ms for s in result}
    assert rows["outside the handler: TCP, uvicorn's HTTP parsing, event loop"] == pytest.approx(2.0)
    # Recognizer first, then recorder: client time minus the server's handling.
    overheads = [s.mean_ms for s in result if s.name.startswith("gRPC overhead")]
    assert overheads == [pytest.approx(0.5), pytest.approx(1.0)]
    assert rows["rest of the gateway (routing, validation, JSON, logging)"] == pytest.approx(
        10.0 - 1.0 - 3.0 - 4.0
    )
    assert rows["rest of the handler (threads, serialisation)"] == pytest.approx(2.5 - 1.0 - 0.25 - 1.0)
    assert rows["rest of the handler"] == pytest.approx(1.0)
    assert "inference (one model call, 1.0 images)" in rows
    assert not any(s.name.startswith("a bare gRPC round trip") for s in result)  # floors not measured


def test_the_grpc_floor_splits_each_overhead_in_two() -> None:
    gateway = _samples(**{
        "digits_gateway_request_seconds__route=/v1/recognitions__method=POST__status=201": 10.0,
        "digits_gateway_backend_seconds__dependency=recognizer__method=Recognize": 3.0,
        "digits_gateway_backend_seconds__dependency=recorder__method=Record": 4.0,
    })  # fmt: skip
    recognizer = _samples(**{"digits_grpc_server_handling_seconds__method=/digits.v1.Recognizer/Recognize__code=OK": 2.0})
    recorder = _samples(**{"digits_grpc_server_handling_seconds__method=/digits.v1.Recorder/Record__code=OK": 2.5})
    result = stages.breakdown(10.5, gateway, recognizer, recorder, {"recognizer": 0.6, "recorder": 0.7})
    floors = [s.mean_ms for s in result if s.name.startswith("a bare gRPC round trip")]
    rests = [s.mean_ms for s in result if s.name.startswith("the rest (the message")]
    assert floors == [pytest.approx(0.6), pytest.approx(0.7)]
    assert rests == [pytest.approx(1.0 - 0.6), pytest.approx(1.5 - 0.7)]


def test_breakdown_without_the_gateways_backend_histograms_says_so() -> None:
    gateway = _samples(
        **{"digits_gateway_request_seconds__route=/v1/recognitions__method=POST__status=201": 10.0}
    )
    names = [s.name for s in stages.breakdown(11.0, gateway, {}, {})]
    assert "rest of the gateway, gRPC overhead included (no backend histogram)" in names
    assert not any("client side" in n for n in names)


def test_grpc_floor_is_measured_against_a_real_server() -> None:
    # A real gRPC server on loopback with the standard health service (no fake).
    server = grpc.server(ThreadPoolExecutor(2))
    health_pb2_grpc.add_HealthServicer_to_server(health.HealthServicer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        assert 0.0 < stages.grpc_floor_ms(f"127.0.0.1:{port}", calls=50) < 1000.0
    finally:
        server.stop(0)
