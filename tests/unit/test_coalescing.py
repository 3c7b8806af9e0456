"""The gateway's coalescing of uploads into RecognizeBatch calls, against a small fake
recognizer stub (in-process, no gRPC): who gets which answer, and when calls are shared."""

from __future__ import annotations

import asyncio

import pytest

from digits.v1 import recognizer_pb2
from services.gateway.coalescing import RecognizeCoalescer
from services.gateway.problems import Problem


class FakeRecognizer:
    """Recognize / RecognizeBatch that answer the digit written as the image's first byte
    (b"x" is not an image), after ``delay`` seconds."""

    def __init__(self, delay: float = 0.01) -> None:
        self.delay = delay
        self.calls: list[int] = []  # images per call

    @staticmethod
    def _answer(image: bytes) -> recognizer_pb2.RecognizeBatchResult:
        if image == b"x":
            return recognizer_pb2.RecognizeBatchResult(
                error=recognizer_pb2.ImageError(reason="NOT_AN_IMAGE", message="not an image")
            )
        digit = image[0] - ord("0")
        return recognizer_pb2.RecognizeBatchResult(recognition=recognizer_pb2.RecognizeResponse(digit=digit))

    def Recognize(self, request, timeout, metadata):  # type: ignore[no-untyped-def]
        async def answer():  # type: ignore[no-untyped-def]
            self.calls.append(1)
            await asyncio.sleep(self.delay)
            result = self._answer(request.image)
            assert result.HasField("recognition"), "the fake answers single bad images only in batches"
            return result.recognition

        return answer()

    def RecognizeBatch(self, request, timeout, metadata):  # type: ignore[no-untyped-def]
        async def answer():  # type: ignore[no-untyped-def]
            self.calls.append(len(request.images))
            await asyncio.sleep(self.delay)
            return recognizer_pb2.RecognizeBatchResponse(results=[self._answer(i) for i in request.images])

        return answer()


async def _gather(coalescer: RecognizeCoalescer, images: list[bytes]) -> list[object]:
    return await asyncio.gather(*(coalescer.recognize(i, "image/png") for i in images), return_exceptions=True)


def test_a_lone_upload_is_sent_at_once_as_a_plain_recognize():
    async def scenario():  # type: ignore[no-untyped-def]
        fake = FakeRecognizer()
        answer = await RecognizeCoalescer(fake, timeout=5).recognize(b"7", "image/png")
        return fake, answer

    fake, answer = asyncio.run(scenario())
    assert answer.digit == 7 and fake.calls == [1]


def test_concurrent_uploads_share_calls_and_each_gets_its_own_answer():
    async def scenario():  # type: ignore[no-untyped-def]
        fake = FakeRecognizer()
        images = [str(i % 10).encode() for i in range(40)]
        images[5] = b"x"
        return fake, images, await _gather(RecognizeCoalescer(fake, timeout=5, max_calls=2), images)

    fake, images, answers = asyncio.run(scenario())
    for image, answer in zip(images, answers):
        if image == b"x":
            assert isinstance(answer, Problem) and answer.slug == "not-an-image"
        else:
            assert answer.digit == int(image)  # type: ignore[union-attr]
    assert sum(fake.calls) == 40
    assert len(fake.calls) < 40 and max(fake.calls) > 1  # calls were shared
    assert fake.calls[0] == 32  # arriving together, they left together, up to a call's bound
    assert all(n > 1 for n in fake.calls[1:-1])  # none went alone while another call was in flight


def test_an_upload_goes_alone_unless_others_arrive_in_the_same_event_loop_turn():
    async def scenario():  # type: ignore[no-untyped-def]
        fake = FakeRecognizer()
        coalescer = RecognizeCoalescer(fake, timeout=5, max_calls=2)
        first = asyncio.ensure_future(coalescer.recognize(b"1", "image/png"))
        await asyncio.sleep(0.002)  # a few turns later: the first has left, alone
        later = await _gather(coalescer, [b"2", b"3", b"4"])
        return fake, [await first, *later]

    fake, answers = asyncio.run(scenario())
    assert [a.digit for a in answers] == [1, 2, 3, 4]  # type: ignore[union-attr]
    assert fake.calls == [1, 3]  # the later three together, on the second line


@pytest.mark.parametrize("company, calls", [(True, [2]), (False, [1, 1])])
def test_an_upload_waits_a_turn_for_company_only_while_other_requests_are_in_flight(company, calls):
    async def scenario():  # type: ignore[no-untyped-def]
        fake = FakeRecognizer()
        coalescer = RecognizeCoalescer(fake, timeout=5, max_calls=2, company=lambda: company)
        await _gather(coalescer, [b"1", b"2"])
        return fake

    assert asyncio.run(scenario()).calls == calls  # with no one else in flight, the first left at once


def test_an_upload_cancelled_while_it_waits_for_company_does_not_hold_up_the_others():
    async def scenario():  # type: ignore[no-untyped-def]
        fake = FakeRecognizer()
        coalescer = RecognizeCoalescer(fake, timeout=5, max_calls=2)
        first = asyncio.ensure_future(coalescer.recognize(b"1", "image/png"))
        second = asyncio.ensure_future(coalescer.recognize(b"2", "image/png"))
        await asyncio.sleep(0)  # both queued; the first is giving the loop its turn
        first.cancel()
        answer = await asyncio.wait_for(second, 1)
        return fake, first, answer

    fake, first, answer = asyncio.run(scenario())
    assert first.cancelled() and answer.digit == 2 and fake.calls == [1]  # the departed one was not sent


def test_a_batch_is_bounded_by_images_and_bytes():
    async def scenario():  # type: ignore[no-untyped-def]
        fake = FakeRecognizer()
        coalescer = RecognizeCoalescer(fake, timeout=5, max_calls=1, max_items=8, max_bytes=3000)
        images = [b"1" * 1000 for _ in range(12)]
        await _gather(coalescer, images)
        return fake

    fake = asyncio.run(scenario())
    assert max(fake.calls) <= 3 and sum(fake.calls) == 12


def test_an_upload_that_waited_past_its_deadline_is_answered_503_without_being_sent():
    async def scenario():  # type: ignore[no-untyped-def]
        fake = FakeRecognizer(delay=0.3)
        coalescer = RecognizeCoalescer(fake, timeout=0.1, max_calls=1)
        first = asyncio.ensure_future(coalescer.recognize(b"1", "image/png"))
        await asyncio.sleep(0.002)  # the first has left; the others queue behind it
        rest = await _gather(coalescer, [b"2", b"3"])  # past their deadline behind the first
        return fake, [*await asyncio.gather(first, return_exceptions=True), *rest]

    fake, answers = asyncio.run(scenario())
    assert fake.calls == [1]  # only the first was sent
    for late in answers[1:]:
        assert isinstance(late, Problem) and late.slug == "dependency-unavailable" and late.retry_after == 1


def test_a_failed_call_fails_each_of_its_uploads_with_a_problem_of_its_own():
    class Down(FakeRecognizer):
        def RecognizeBatch(self, request, timeout, metadata):  # type: ignore[no-untyped-def]
            import grpc

            async def fail():  # type: ignore[no-untyped-def]
                self.calls.append(len(request.images))
                raise grpc.aio.AioRpcError(grpc.StatusCode.UNAVAILABLE, grpc.aio.Metadata(), grpc.aio.Metadata())

            return fail()

    async def scenario():  # type: ignore[no-untyped-def]
        return await _gather(RecognizeCoalescer(Down(), timeout=5, max_calls=1), [b"1", b"2", b"3", b"4"])

    answers = asyncio.run(scenario())
    problems = [a for a in answers[1:] if isinstance(a, Problem)]
    assert problems and all(p.slug == "dependency-unavailable" for p in problems)
    assert len({id(p) for p in problems}) == len(problems)


@pytest.mark.parametrize("max_calls", [1, 4])
def test_no_upload_is_left_waiting(max_calls: int):
    async def scenario():  # type: ignore[no-untyped-def]
        fake = FakeRecognizer(delay=0.001)
        coalescer = RecognizeCoalescer(fake, timeout=5, max_calls=max_calls)
        answers = []
        for _ in range(5):  # waves: queued uploads must be picked up when calls return
            answers += await asyncio.wait_for(_gather(coalescer, [b"3"] * 17), 5)
        return answers

    assert all(a.digit == 3 for a in asyncio.run(scenario()))  # type: ignore[union-attr]


def test_a_bug_in_the_call_reaches_every_waiter_instead_of_leaving_them_waiting():
    class Broken(FakeRecognizer):
        def RecognizeBatch(self, request, timeout, metadata):  # type: ignore[no-untyped-def]
            raise RuntimeError("a bug")

    async def scenario():  # type: ignore[no-untyped-def]
        coalescer = RecognizeCoalescer(Broken(), timeout=5, max_calls=1)
        first = asyncio.ensure_future(coalescer.recognize(b"1", "image/png"))  # alone: a plain Recognize
        await asyncio.sleep(0)  # its turn for company passes before the others arrive
        others = await asyncio.wait_for(_gather(coalescer, [b"2", b"3"]), 5)
        return [await first, *others]

    answers = asyncio.run(scenario())
    assert answers[0].digit == 1  # type: ignore[union-attr]
    assert all(isinstance(a, RuntimeError) for a in answers[1:])


def test_a_cancelled_call_settles_its_waiters_and_a_departed_client_is_not_sent():
    async def scenario():  # type: ignore[no-untyped-def]
        fake = FakeRecognizer(delay=0.2)
        coalescer = RecognizeCoalescer(fake, timeout=5, max_calls=1)
        first = asyncio.create_task(coalescer.recognize(b"1", "image/png"))  # sent at once, alone
        await asyncio.sleep(0.01)
        gone = asyncio.create_task(coalescer.recognize(b"2", "image/png"))
        waiting = [asyncio.create_task(coalescer.recognize(i, "image/png")) for i in (b"3", b"4")]
        await asyncio.sleep(0.05)
        gone.cancel()  # its client disconnected while it queued
        answer = await asyncio.wait_for(first, 5)  # the queued ones now leave together
        await asyncio.sleep(0.05)
        for task in list(coalescer._tasks):
            task.cancel()  # the call in flight is cancelled (the channel closing)
        outcomes = await asyncio.wait_for(asyncio.gather(*waiting, return_exceptions=True), 5)
        return fake, answer, outcomes

    fake, answer, outcomes = asyncio.run(scenario())
    assert answer.digit == 1
    assert all(isinstance(o, Problem) and o.slug == "dependency-unavailable" for o in outcomes)
    assert fake.calls == [1, 2]  # "2" was never sent


class CancelledByChannel(FakeRecognizer):
    """A Recognize whose call is cancelled under it, as grpc.aio's are when the channel closes."""

    def Recognize(self, request, timeout, metadata):  # type: ignore[no-untyped-def]
        async def answer():  # type: ignore[no-untyped-def]
            raise asyncio.CancelledError()

        return answer()


def test_a_lone_call_cancelled_under_its_upload_is_a_503_but_a_departed_client_is_cancelled():
    async def scenario():  # type: ignore[no-untyped-def]
        closing = await asyncio.gather(
            RecognizeCoalescer(CancelledByChannel(), timeout=5).recognize(b"1", "image/png"), return_exceptions=True
        )
        coalescer = RecognizeCoalescer(FakeRecognizer(delay=1.0), timeout=5)
        departed = asyncio.create_task(coalescer.recognize(b"1", "image/png"))
        await asyncio.sleep(0.05)
        departed.cancel()
        gone = await asyncio.gather(departed, return_exceptions=True)
        return closing[0], gone[0], coalescer._in_flight

    closing, gone, in_flight = asyncio.run(scenario())
    assert isinstance(closing, Problem) and closing.slug == "dependency-unavailable"
    assert isinstance(gone, asyncio.CancelledError)
    assert in_flight == 0  # its call slot is free again
