"""Where one request's time goes, from the services' own Prometheus histograms.

The services' /metrics are scraped before and after a run at concurrency 1; for each histogram
the mean over the run is Δsum / Δcount. Nested stages (a gRPC call contains the server's
handling, which contains preprocessing, queueing and inference) are shown with their
remainders, so the rows of one level add up to their parent. gRPC overhead is the client's
time for a call (the gateway's ``digits_gateway_backend_seconds``) minus the server's handling
time; the gateway's upload-parse and backend histograms are used when the gateway exports them
and skipped otherwise. Part of that overhead is the floor of any gRPC call on the machine,
measured apart (``grpc_floor_ms``: a health check's round trip to the same server).
"""

from __future__ import annotations

import asyncio
import statistics
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families

# A sample: (name, sorted label pairs) -> value.
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]
LabelMatch = str | Callable[[str], bool]

RECOGNIZE = "/digits.v1.Recognizer/Recognize"
RECORD = "/digits.v1.Recorder/Record"


def parse(text: str) -> Samples:
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def scrape(url: str) -> Samples:
    with urllib.request.urlopen(url, timeout=10) as reply:
        return parse(reply.read().decode())


def delta(before: Samples, after: Samples) -> Samples:
    """What happened between two scrapes (series that appeared in between start from 0)."""
    return {key: value - before.get(key, 0.0) for key, value in after.items()}


def _matches(labels: tuple[tuple[str, str], ...], wanted: dict[str, LabelMatch]) -> bool:
    have = dict(labels)
    for name, match in wanted.items():
        value = have.get(name)
        if value is None or not (match(value) if callable(match) else value == match):
            return False
    return True


def histogram(samples: Samples, family: str, **labels: LabelMatch) -> tuple[float, float]:
    """(count, sum) of a histogram over every series whose labels match ``labels``."""
    count = total = 0.0
    for (name, series), value in samples.items():
        if _matches(series, labels):
            if name == f"{family}_count":
                count += value
            elif name == f"{family}_sum":
                total += value
    return count, total


def mean_ms(samples: Samples, family: str, **labels: LabelMatch) -> float | None:
    """Mean of a histogram in milliseconds, or None if it has no observations (or is absent)."""
    count, total = histogram(samples, family, **labels)
    return 1000.0 * total / count if count > 0 else None


@dataclass(frozen=True)
class Stage:
    name: str
    mean_ms: float | None
    depth: int = 0  # nesting level, for indentation
    source: str = ""  # the metric(s) it comes from


def _minus(total: float | None, *parts: float | None) -> float | None:
    if total is None or any(p is None for p in parts):
        return None
    return total - sum(p for p in parts if p is not None)


def _is_2xx(status: str) -> bool:
    return status.startswith("2")


def grpc_floor_ms(address: str, calls: int = 1000) -> float:
    """Median round trip of a ``grpc.health.v1`` Check to ``address``, from a ``grpc.aio`` client
    as the gateway's: what any call to that server costs before its own work."""

    async def measure() -> float:
        async with grpc.aio.insecure_channel(address) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            times = []
            for n in range(calls + calls // 10):  # the first tenth warms the channel up
                start = time.perf_counter()
                await stub.Check(health_pb2.HealthCheckRequest(), timeout=10)
                if n >= calls // 10:
                    times.append(time.perf_counter() - start)
            return 1000.0 * statistics.median(times)

    return asyncio.run(measure())


def breakdown(client_mean_ms: float, gateway: Samples, recognizer: Samples, recorder: Samples,
              floors: dict[str, float] | None = None) -> list[Stage]:  # fmt: skip
    """The stages of ``POST /v1/recognitions`` at concurrency 1, from the three services' deltas;
    ``floors``: ``grpc_floor_ms`` of the recognizer and the recorder, if measured."""
    handler = mean_ms(gateway, "digits_gateway_request_seconds", route="/v1/recognitions", method="POST",
                      status=_is_2xx)  # fmt: skip
    parse_ = mean_ms(gateway, "digits_gateway_upload_parse_seconds")
    rec_client = mean_ms(
        gateway, "digits_gateway_backend_seconds", dependency="recognizer", method="Recognize"
    )
    rcd_client = mean_ms(gateway, "digits_gateway_backend_seconds", dependency="recorder", method="Record")
    rec_server = mean_ms(recognizer, "digits_grpc_server_handling_seconds", method=RECOGNIZE, code="OK")
    rcd_server = mean_ms(recorder, "digits_grpc_server_handling_seconds", method=RECORD, code="OK")
    preprocess = mean_ms(recognizer, "digits_recognizer_preprocess_seconds")
    queue = mean_ms(recognizer, "digits_recognizer_queue_seconds")
    inference = mean_ms(recognizer, "digits_recognizer_inference_seconds")
    calls, images = histogram(recognizer, "digits_recognizer_batch_size")
    cassandra = mean_ms(recorder, "digits_recorder_cassandra_seconds", operation="record")

    stages = [
        Stage("request as the client sees it (wrk mean)", client_mean_ms, 0, "wrk"),
        Stage("outside the handler: TCP, uvicorn's HTTP parsing, event loop", _minus(client_mean_ms, handler), 1,
              "client − handler"),
        Stage("gateway handler, POST /v1/recognitions", handler, 1, "digits_gateway_request_seconds"),
    ]  # fmt: skip
    if parse_ is not None:
        stages.append(
            Stage(
                "upload: read and parse the multipart body", parse_, 2, "digits_gateway_upload_parse_seconds"
            )
        )
    # Inside each server's handling; their depth depends on whether the client side is known.
    rec_rows = [
        Stage("preprocessing (decode, normalise)", preprocess, source="digits_recognizer_preprocess_seconds"),
        Stage("queue wait (batching)", queue, source="digits_recognizer_queue_seconds"),
        Stage(f"inference (one model call, {images / calls if calls else float('nan'):.1f} images)", inference,
              source="digits_recognizer_inference_seconds"),
        Stage("rest of the handler (threads, serialisation)", _minus(rec_server, preprocess, queue, inference),
              source="remainder"),
    ]  # fmt: skip
    rcd_rows = [
        Stage(
            "Cassandra write (all queries of a record)", cassandra, source="digits_recorder_cassandra_seconds"
        ),
        Stage("rest of the handler", _minus(rcd_server, cassandra), source="remainder"),
    ]
    for label, client, server, rows in (
        ("recognizer", rec_client, rec_server, rec_rows),
        ("recorder", rcd_client, rcd_server, rcd_rows),
    ):
        method = RECOGNIZE if label == "recognizer" else RECORD
        depth = 3 if client is not None else 2
        if client is not None:
            stages.append(Stage(f"{label} call, client side", client, 2, "digits_gateway_backend_seconds"))
            overhead = _minus(client, server)
            stages.append(Stage("gRPC overhead (client − server handling)", overhead, 3, "remainder"))
            floor = (floors or {}).get(label)
            if floor is not None:
                stages.append(Stage("a bare gRPC round trip to it (health Check, median)", floor, 4,
                                    "grpc_floor_ms"))  # fmt: skip
                stages.append(Stage("the rest (the message's bytes, interceptors, dispatch)",
                                    _minus(overhead, floor), 4, "remainder"))  # fmt: skip
        stages.append(Stage(f"{label} handling, server side ({method.rsplit('/', 1)[1]})", server, depth,
                            "digits_grpc_server_handling_seconds"))  # fmt: skip
        stages += [Stage(s.name, s.mean_ms, depth + 1, s.source) for s in rows]
    if rec_client is not None and rcd_client is not None:
        rest = _minus(handler, parse_ or 0.0, rec_client, rcd_client)
        stages.append(Stage("rest of the gateway (routing, validation, JSON, logging)", rest, 2, "remainder"))
    else:
        rest = _minus(handler, parse_ or 0.0, rec_server, rcd_server)
        stages.append(Stage("rest of the gateway, gRPC overhead included (no backend histogram)", rest, 2,
                            "remainder"))  # fmt: skip
    return stages
