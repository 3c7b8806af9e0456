"""The gateway's coalescing of records into RecordBatch calls, against a small fake recorder
stub (in-process, no gRPC, no Cassandra): who gets which record, which calls are shared, and
that one caller's records never ride in another caller's call (the recorder checks a call's
token once for all its records). The real RecordBatch is tested against Cassandra in
tests/integration/test_record_batch.py."""

from __future__ import annotations

import asyncio

from digits.trailers import REPLAYED
from digits.v1 import recorder_pb2
from services.gateway.coalescing import RecordCoalescer
from services.gateway.problems import Problem


class _Pending:
    """What a grpc.aio unary call returns: awaitable, with trailers."""

    def __init__(self, answer, trailers):  # type: ignore[no-untyped-def]
        self._answer, self._trailers = answer, trailers

    def __await__(self):  # type: ignore[no-untyped-def]
        return self._answer.__await__()

    async def trailing_metadata(self):  # type: ignore[no-untyped-def]
        return self._trailers


class FakeRecorder:
    """Record / RecordBatch. The record's filename says what happens to it: "replay" is
    answered as replayed, "forbidden" is refused; its id is the filename."""

    def __init__(self, delay: float = 0.01) -> None:
        self.delay = delay
        self.calls: list[tuple[tuple[tuple[str, str], ...], int]] = []  # (metadata, records) per call
        self.users: list[set[str]] = []  # the records' users, per batch call

    @staticmethod
    def _result(request: recorder_pb2.RecordRequest) -> recorder_pb2.RecordBatchResult:
        name = request.recognition.filename
        if name == "forbidden":
            return recorder_pb2.RecordBatchResult(error=recorder_pb2.RecordError(reason="FORBIDDEN", message="not yours"))
        stored = recorder_pb2.Recognition(id=name, digit=request.recognition.digit)
        return recorder_pb2.RecordBatchResult(recognition=stored, replayed=name == "replay")

    def Record(self, request, timeout, metadata):  # type: ignore[no-untyped-def]
        result = self._result(request)
        assert result.HasField("recognition"), "the fake refuses single records only in batches"

        async def answer():  # type: ignore[no-untyped-def]
            self.calls.append((tuple(metadata or ()), 1))
            await asyncio.sleep(self.delay)
            return result.recognition

        return _Pending(answer(), ((REPLAYED, "true"),) if result.replayed else ())

    def RecordBatch(self, request, timeout, metadata):  # type: ignore[no-untyped-def]
        async def answer():  # type: ignore[no-untyped-def]
            self.calls.append((tuple(metadata or ()), len(request.requests)))
            self.users.append({r.recognition.user for r in request.requests})
            await asyncio.sleep(self.delay)
            return recorder_pb2.RecordBatchResponse(results=[self._result(r) for r in request.requests])

        return _Pending(answer(), ())


def _request(name: str, digit: int = 7, user: str = "") -> recorder_pb2.RecordRequest:
    return recorder_pb2.RecordRequest(
        recognition=recorder_pb2.Recognition(filename=name, digit=digit, image=b"png", user=user)
    )


ALICE = (("authorization", "Bearer alice"),)
BOB = (("authorization", "Bearer bob"),)


def test_concurrent_records_share_calls_and_each_gets_its_own_record():
    async def scenario():  # type: ignore[no-untyped-def]
        fake = FakeRecorder()
        coalescer = RecordCoalescer(fake, timeout=5, max_calls=1)
        names = ["replay" if i in (0, 7) else f"r{i}" for i in range(20)]
        first = asyncio.ensure_future(coalescer.record(_request(names[0], 0), ()))
        await asyncio.sleep(0.002)  # it left alone; the others arrive together while it is in flight
        rest = await asyncio.gather(*(coalescer.record(_request(n, i % 10), ()) for i, n in enumerate(names) if i))
        return fake, names, [await first, *rest]

    fake, names, answers = asyncio.run(scenario())
    for i, (name, (stored, replayed)) in enumerate(zip(names, answers)):
        assert stored.id == name and stored.digit == i % 10
        assert replayed == (name == "replay")  # the first alone (a trailer), the other in a batch (a field)
    assert [n for _, n in fake.calls][0] == 1 and sum(n for _, n in fake.calls) == 20
    assert max(n for _, n in fake.calls) > 1


def test_records_of_different_callers_never_share_a_call():
    async def scenario():  # type: ignore[no-untyped-def]
        fake = FakeRecorder()
        coalescer = RecordCoalescer(fake, timeout=5, max_calls=1)
        callers = [ALICE if i % 3 else BOB for i in range(30)]
        answers = await asyncio.gather(
            *(coalescer.record(_request(f"r{i}", user=c[0][1].split()[1]), c) for i, c in enumerate(callers))
        )
        return fake, answers

    fake, answers = asyncio.run(scenario())
    assert [stored.id for stored, _ in answers] == [f"r{i}" for i in range(30)]
    assert sum(n for _, n in fake.calls) == 30
    assert {metadata for metadata, _ in fake.calls} == {ALICE, BOB}
    # Each call is one caller's: 10 of Bob's and 20 of Alice's records, in calls of their own.
    assert sum(n for m, n in fake.calls if m == BOB) == 10 and max(n for _, n in fake.calls) > 1
    batches = [(m, users) for (m, n), users in zip([c for c in fake.calls if c[1] > 1], fake.users)]
    assert batches and all(users == {m[0][1].split()[1]} for m, users in batches)


def test_a_refused_record_fails_alone_as_its_problem():
    async def scenario():  # type: ignore[no-untyped-def]
        coalescer = RecordCoalescer(FakeRecorder(), timeout=5, max_calls=1)
        names = ["r0", "r1", "forbidden", "r3"]
        return await asyncio.gather(*(coalescer.record(_request(n), ALICE) for n in names), return_exceptions=True)

    answers = asyncio.run(scenario())
    refused = answers[2]
    assert isinstance(refused, Problem) and refused.slug == "forbidden"
    assert [a[0].id for i, a in enumerate(answers) if i != 2] == ["r0", "r1", "r3"]  # type: ignore[index]


def test_a_recorder_without_record_batch_gets_single_records_instead():
    """A recorder from before RecordBatch (a rolling upgrade) answers it UNIMPLEMENTED: every
    record is still stored, as single Records, and no RecordBatch is tried for a while."""
    import grpc

    class Older(FakeRecorder):
        batch_calls = 0

        def RecordBatch(self, request, timeout, metadata):  # type: ignore[no-untyped-def]
            async def fail():  # type: ignore[no-untyped-def]
                Older.batch_calls += 1
                raise grpc.aio.AioRpcError(grpc.StatusCode.UNIMPLEMENTED, grpc.aio.Metadata(), grpc.aio.Metadata())

            return _Pending(fail(), ())

    async def scenario():  # type: ignore[no-untyped-def]
        fake = Older()
        coalescer = RecordCoalescer(fake, timeout=5, max_calls=1)
        answers = []
        for wave in range(3):
            answers += await asyncio.gather(*(coalescer.record(_request(f"w{wave}r{i}"), ()) for i in range(8)))
        return fake, answers

    fake, answers = asyncio.run(scenario())
    assert [stored.id for stored, _ in answers] == [f"w{w}r{i}" for w in range(3) for i in range(8)]
    assert Older.batch_calls == 1 and all(n == 1 for _, n in fake.calls)
