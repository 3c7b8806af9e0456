"""Faults under a steady load of uploads: Cassandra nodes killed, services killed, restarted and
stopped with calls in flight. In every case nothing acknowledged is lost, no upload is stored
twice, and no client ever sees anything but an answer, a clean 503 or (gateway down) a refused
connection."""

from __future__ import annotations

import functools
import io
import json
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable

import grpc
from PIL import Image

from digits.v1 import recognizer_pb2, recognizer_pb2_grpc, recorder_pb2, recorder_pb2_grpc

from scripts.waiting import http_ok, wait_until
from tests.faults.conftest import ROWS, SECONDS, Row
from tests.faults.load import SEVEN, Load, Tally, stored_by_key
from tests.helpers import with_token

WARM_UP = 2.0
CLEAN = {"201", "200", "503", "timeout", "connection"}


def settle(tally: Tally, case: str, stack, user: str) -> Row:  # type: ignore[no-untyped-def]
    """Check and record what became of the uploads: every acknowledged one stored once."""
    stored = stored_by_key(stack.config.gateway_url, stack.admin_token, user)
    lost = {key: rid for key, rid in tally.acknowledged.items() if rid not in stored.get(key, [])}
    duplicates = {key: ids for key, ids in stored.items() if len(ids) > 1}
    failed = tally.failed_attempts()
    row = Row(
        case, tally.uploads, len(tally.acknowledged), len(tally.failed),
        ", ".join(f"{kind}: {n}" for kind, n in sorted(failed.items())),
        len(tally.acknowledged) - len(lost), len(duplicates),
    )  # fmt: skip
    ROWS.append(row)
    print(row)
    assert tally.acknowledged, "the load acknowledged nothing"
    assert not lost, f"acknowledged but not stored: {lost}"
    assert not duplicates, f"stored twice: {duplicates}"
    unclean = [a for a in tally.attempts if a.outcome not in CLEAN]
    assert not unclean, f"answers that are not clean: {unclean[:5]}"
    assert all(a.retry_after for a in tally.attempts if a.outcome == "503"), "a 503 without Retry-After"
    return row


def _first_success_after(tally: Tally, moment: float, timeout: float) -> float | None:
    """When the first upload that started after ``moment`` was acknowledged (None: none in time)."""
    give_up = time.monotonic() + timeout
    while time.monotonic() < give_up:
        with tally.lock:
            done = [a.ended for a in tally.attempts if a.started > moment and a.outcome in ("201", "200")]
        if done:
            return min(done)
        time.sleep(0.2)
    return None


def pids(stack) -> dict[str, int]:  # type: ignore[no-untyped-def]
    return {name: process.popen.pid for name, process in stack.processes.items()}


def test_one_cassandra_node_killed(stack, ring, user_token):
    user, token = user_token
    before = pids(stack)
    with Load(stack.config.gateway_url, token) as load:
        time.sleep(WARM_UP)
        ring.stop_node(2, kill=True)
        time.sleep(SECONDS)
        tally = load.stop()
    ring.start_node(2)
    settle(tally, "kill -9 one Cassandra node", stack, user)
    assert not tally.failed, f"uploads failed with one node of three down: {tally.failed}"
    assert pids(stack) == before


def test_two_cassandra_nodes_down_then_back(stack, ring, user_token):
    user, token = user_token
    before = pids(stack)
    deadline = 10.0 + 2.0  # the gateway's record deadline, and some slack for the recognizer
    with Load(stack.config.gateway_url, token, retry_budget=5) as load:
        time.sleep(WARM_UP)
        ring.stop_node(1, kill=True)
        ring.stop_node(2, kill=True)
        down = time.monotonic()
        time.sleep(SECONDS)
        ring.start_node(1)
        ring.start_node(2)
        back = time.monotonic()
        # The nodes answer CQL; the ring's gossip and the driver's reconnection take a moment
        # more. Recovered is the first upload acknowledged after that; the window starts then.
        recovered = _first_success_after(load.tally, back, timeout=60)
        time.sleep(WARM_UP * 2)
        tally = load.stop()
    # Until Cassandra convicts the dead nodes (10-20 s) writes time out rather than fail fast,
    # so a 503 may take up to the deadline; never longer.
    refused = [a for a in tally.attempts if a.outcome == "503" and down < a.ended]
    slowest = max((a.ended - a.started for a in refused), default=0.0)
    settle(tally, f"kill -9 two Cassandra nodes, restart (slowest 503 {slowest:.1f} s)", stack, user)
    assert refused, "no 503 while two of three replicas were down"
    assert all(a.ended - a.started < deadline for a in refused), "a 503 came after the deadline"
    # Recovery without restarting anything: the last uploads are acknowledged again.
    assert recovered is not None, "no upload succeeded within a minute of the nodes' return"
    after = [a for a in tally.attempts if a.started > recovered + 1]
    assert after and all(a.outcome in ("201", "200") for a in after), [a.outcome for a in after]
    assert pids(stack) == before


def test_recognizer_killed_then_started_again(stack, user_token):
    user, token = user_token
    gateway = stack.processes["gateway"].popen.pid
    with Load(stack.config.gateway_url, token) as load:
        time.sleep(WARM_UP)
        stack.processes["recognizer"].popen.kill()
        killed = time.monotonic()
        stack.processes["recognizer"].stop()  # reaps it and closes its log
        time.sleep(SECONDS / 2)
        stack.start_service("recognizer")
        stack.wait_service("recognizer")
        ready = time.monotonic()
        time.sleep(WARM_UP)
        tally = load.stop()
    settle(tally, "kill -9 the recognizer, start it", stack, user)
    for attempt in tally.attempts:
        if attempt.outcome == "503":  # only while it was down (and the channel reconnecting)
            assert killed - 0.5 < attempt.ended < ready + 3, attempt
    assert stack.processes["gateway"].popen.pid == gateway
    assert not tally.failed, f"uploads that failed within their retry budget: {tally.failed}"


def test_recorder_restarted_mid_load(stack, user_token):
    user, token = user_token
    with Load(stack.config.gateway_url, token) as load:
        time.sleep(WARM_UP)
        stack.processes["recorder"].stop()
        stack.start_service("recorder")
        stack.wait_service("recorder")
        time.sleep(SECONDS)
        tally = load.stop()
    settle(tally, "restart the recorder", stack, user)
    assert not tally.failed, f"uploads that failed within their retry budget: {tally.failed}"


def _drained(log_text: str) -> tuple[int, dict[str, int]]:
    """From a gRPC service's JSON log: calls in flight when it began stopping, how they ended."""
    in_flight, drained = -1, {}
    for line in log_text.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if entry.get("msg") == "stopping":
            in_flight = int(entry.get("in_flight", -1))
        elif entry.get("msg") == "stopped":
            drained = entry.get("drained", {})
    return in_flight, drained


def _sigterm_under_load(stack, token: str, name: str, workers: int) -> tuple[Tally, float, int]:  # type: ignore[no-untyped-def]
    process = stack.processes[name]
    with Load(stack.config.gateway_url, token, workers=workers) as load:
        time.sleep(WARM_UP)
        process.popen.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        code = process.popen.wait(timeout=30)
        process.stop()  # closes its log
        stack.start_service(name)
        stack.wait_service(name)
        time.sleep(WARM_UP)
        tally = load.stop()
    return tally, signalled, code


def test_sigterm_to_the_gateway_finishes_requests_in_flight(stack, user_token):
    user, token = user_token
    tally, signalled, code = _sigterm_under_load(stack, token, "gateway", workers=8)
    # In flight: sent well before the signal (a request sent at the very moment uvicorn closes an
    # idle keep-alive connection meets a closed connection, which is a refusal, not a cut-off).
    in_flight = [a for a in tally.attempts if a.started < signalled - 0.02 and signalled < a.ended]
    settle(tally, f"SIGTERM the gateway ({len(in_flight)} in flight)", stack, user)
    # uvicorn shuts down gracefully, then re-raises the signal it caught, as a shell expects.
    assert code in (0, -signal.SIGTERM)
    assert in_flight, "no request was in flight at SIGTERM; the case proved nothing"
    assert all(a.outcome in ("201", "200") for a in in_flight), [a.outcome for a in in_flight]
    # Once it stopped listening, new requests were refused, not left hanging.
    assert all(a.outcome in ("201", "200", "connection") for a in tally.attempts)
    assert not tally.failed


def _large_seven() -> bytes:
    """A 1,500² upscaled seven: long enough to decode and preprocess that the recognizer
    surely has calls in flight when it is told to stop (the 28² upload takes a millisecond)."""
    image = Image.open(io.BytesIO(SEVEN)).convert("L").resize((1500, 1500))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


class _DirectCalls:
    """Calls straight to a gRPC service, 8 at a time, beside the HTTP load: slow ones, so that
    the service surely has calls in flight when it is told to stop (an upload's own Record or
    Recognize takes a millisecond or two, and the HTTP load alone sometimes leaves none)."""

    def __init__(self, address: str, call: Callable[[grpc.Channel], Callable[[], object]]) -> None:
        self.codes: Counter[str] = Counter()
        self._stop = threading.Event()
        self._address, self._call = address, call
        self._threads = [threading.Thread(target=self._work, daemon=True) for _ in range(8)]

    def __enter__(self) -> _DirectCalls:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)

    def _work(self) -> None:
        while not self._stop.is_set():
            with grpc.insecure_channel(self._address) as channel:  # a new one after a restart
                call = self._call(channel)
                while not self._stop.is_set():
                    try:
                        call()
                        self.codes["OK"] += 1
                    except grpc.RpcError as exc:
                        self.codes[exc.code().name] += 1
                        time.sleep(0.2)
                        break


def _recognize_large(channel: grpc.Channel) -> Callable[[], object]:
    request = recognizer_pb2.RecognizeRequest(image=_large_seven(), content_type="image/png")
    return functools.partial(recognizer_pb2_grpc.RecognizerStub(channel).Recognize, request, timeout=10)


def _list_a_day(admin_token: str) -> Callable[[grpc.Channel], Callable[[], object]]:
    """The last day's time log, 1,000 a page, as the admin: a read across every shard."""
    request = recorder_pb2.ListRecognitionsRequest(window=recorder_pb2.TimeWindow(), page_size=1000)

    def make(channel: grpc.Channel) -> Callable[[], object]:
        stub = recorder_pb2_grpc.RecorderStub(with_token(channel, admin_token))
        return functools.partial(stub.ListRecognitions, request, timeout=10)

    return make


def test_sigterm_to_the_grpc_services_drains_calls_in_flight(stack, user_token):
    user, token = user_token
    c = stack.config
    for name in ("recognizer", "recorder"):
        log = c.run_dir / "logs" / f"{name}.log"
        start = log.stat().st_size  # bytes
        if name == "recognizer":
            direct = _DirectCalls(f"{c.bind}:{c.recognizer_port}", _recognize_large)
        else:
            direct = _DirectCalls(f"{c.bind}:{c.recorder_port}", _list_a_day(stack.admin_token))
        with direct:
            tally, _, code = _sigterm_under_load(stack, token, name, workers=8)
        in_flight, drained = _drained(log.read_bytes()[start:].decode(errors="replace"))
        settle(tally, f"SIGTERM the {name} ({in_flight} in flight)", stack, user)
        assert code == 0
        assert in_flight >= 0, "the service logged no graceful stop"
        assert in_flight > 0, "no call was in flight at SIGTERM; the case proved nothing"
        # Refused cleanly while it was down (or, received but not started, turned away), never cut off.
        assert set(direct.codes) <= {"OK", "UNAVAILABLE", "CANCELLED"}, direct.codes
        # Every call in flight ended OK: none was cut off. (A call the server had received but not
        # started is turned away as CANCELLED, which the gateway answers as a 503: a refusal.)
        assert sum(drained.values()) >= in_flight and set(drained) <= {"OK"}, drained
        assert not tally.failed
    wait_until(http_ok(f"{stack.config.gateway_url}/readyz"), 30, "gateway")
