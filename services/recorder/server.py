"""The Recorder gRPC service: stores recognitions in Cassandra and reads them back.

``RecorderServicer`` answers the record RPCs here; labels and statistics come from
``feedback.py``, user tokens from ``tokens.py``, and what they all share (connection, access
checks, failures) from ``base.py``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging

import grpc
from google.protobuf.empty_pb2 import Empty

from digits import trailers
from digits.grpc_server import GrpcService
from digits.v1 import recorder_pb2, recorder_pb2_grpc
from services.recorder import failures, paging
from services.recorder.config import Config
from services.recorder.feedback import FeedbackRPCs
from services.recorder.metrics import ERRORS, RECORDS
from services.recorder.recording import Prepared, Refused, prepare
from services.recorder.records import Page, to_proto
from services.recorder.requests import DEFAULT_PAGE_SIZE, list_query
from services.recorder.tokens import TokenRPCs

log = logging.getLogger(__name__)


class RecorderServicer(FeedbackRPCs, TokenRPCs, recorder_pb2_grpc.RecorderServicer):
    async def Record(self, request, context):  # type: ignore[no-untyped-def]
        store = await self._require_store(context)
        principal = await self._principal(context, "record")
        try:
            prepared = await prepare(request, principal, store, self._config.max_image_bytes, self._deadline(context))
            await store.record([prepared.record], self._deadline(context))
        except Refused as refused:
            await self._fail(context, "record", refused.kind, refused.code, refused.message, refused.reason)
        except failures.UNAVAILABLE as exc:
            await self._cassandra_failed(context, "record", exc, store.write_consistency)
        self._recorded([prepared])
        if prepared.replayed:
            context.set_trailing_metadata(((trailers.REPLAYED, "true"),))
        # The caller sent the image: echoing it back would only copy it twice more.
        return to_proto(dataclasses.replace(prepared.record, image=None))

    async def RecordBatch(self, request, context):  # type: ignore[no-untyped-def]
        if len(request.requests) > self._config.max_records_per_call:
            await self._fail(
                context, "record", "invalid_argument", grpc.StatusCode.INVALID_ARGUMENT,
                f"{len(request.requests)} requests in one call; the limit is {self._config.max_records_per_call}",
                "TOO_MANY_RECORDS",
            )  # fmt: skip
        store = await self._require_store(context)
        principal = await self._principal(context, "record")
        deadline = self._deadline(context)
        outcomes = await asyncio.gather(
            *(prepare(r, principal, store, self._config.max_image_bytes, deadline) for r in request.requests),
            return_exceptions=True,
        )
        for outcome in outcomes:  # Cassandra failed (claiming a key), or a bug: the whole call fails
            if isinstance(outcome, failures.UNAVAILABLE):
                await self._cassandra_failed(context, "record", outcome, store.write_consistency)
            if isinstance(outcome, BaseException) and not isinstance(outcome, Refused):
                raise outcome
        prepared = [o for o in outcomes if isinstance(o, Prepared)]
        if prepared:
            try:
                await store.record([p.record for p in prepared], deadline)
            except failures.UNAVAILABLE as exc:
                await self._cassandra_failed(context, "record", exc, store.write_consistency)
            self._recorded(prepared)
        results = []
        for outcome in outcomes:
            if isinstance(outcome, Refused):
                ERRORS.labels("record", outcome.kind).inc()
                results.append(recorder_pb2.RecordBatchResult(error=outcome.to_proto()))
            else:
                assert isinstance(outcome, Prepared)
                stored = to_proto(dataclasses.replace(outcome.record, image=None))
                results.append(recorder_pb2.RecordBatchResult(recognition=stored, replayed=outcome.replayed))
        return recorder_pb2.RecordBatchResponse(results=results)

    def _recorded(self, stored: list[Prepared]) -> None:
        RECORDS.inc(len(stored))
        for prepared in stored:
            self.count_record(prepared.record, prepared.replayed)  # the dashboard's counters, in the background
        # One line a call: the gateway's request line names each upload's record already.
        log.info("recorded", extra={"ids": [str(p.record.id) for p in stored],
                                    "replayed": [str(p.record.id) for p in stored if p.replayed]})  # fmt: skip

    async def GetRecognition(self, request, context):  # type: ignore[no-untyped-def]
        operation = "get_image" if request.include_image else "get"
        return to_proto(await self._read(context, operation, request.id, request.include_image))

    async def GetImage(self, request, context):  # type: ignore[no-untyped-def]
        record = await self._read(context, "get_image", request.id, include_image=True)
        return recorder_pb2.Image(data=record.image, content_type=record.content_type, filename=record.filename)

    async def DeleteRecognition(self, request, context):  # type: ignore[no-untyped-def]
        record = await self._read(context, "delete", request.id, include_image=False)
        store = await self._require_store(context)
        try:
            await store.delete(record, self._deadline(context))
        except failures.UNAVAILABLE as exc:
            await self._cassandra_failed(context, "delete", exc, store.write_consistency)
        log.info("deleted", extra={"id": str(record.id)})
        return Empty()

    async def ListRecognitions(self, request, context):  # type: ignore[no-untyped-def]
        store = await self._require_store(context)
        principal = await self._principal(context, "list")
        if request.WhichOneof("filter") is None and principal is not None:
            # No filter: a user's own history, or for an admin the last day.
            own = recorder_pb2.ListRecognitionsRequest(
                page_size=request.page_size, page_token=request.page_token
            )
            if principal.admin:
                own.window.SetInParent()
            else:
                own.user = principal.user
            request = own
        filter_kind = request.WhichOneof("filter")
        operation = "list_by_user" if filter_kind == "user" else "list_by_window"
        if filter_kind is None:
            await self._deny(context, operation, None, "listing recognitions")
        if filter_kind == "window" and (principal is None or not principal.admin):
            await self._deny(context, operation, principal, "listing a time window (an admin's)")
        if filter_kind == "user" and (principal is None or not principal.may_read(request.user)):
            await self._deny(context, operation, principal, "listing this user's history")
        try:
            query, cursor = list_query(
                request, self._token_key, self._config.max_page_size, self._config.max_window_days
            )
        except ValueError as exc:
            reason = "INVALID_PAGE_TOKEN" if isinstance(exc, paging.BadToken) else "INVALID_QUERY"
            await self._fail(context, operation, "invalid_argument", grpc.StatusCode.INVALID_ARGUMENT, str(exc), reason)
        size = request.page_size or DEFAULT_PAGE_SIZE
        deadline = self._deadline(context)
        try:
            page: Page
            if isinstance(query, paging.UserQuery):
                page = await store.list_by_user(query, cursor, size, deadline)
            else:
                page = await store.list_by_window(query, cursor, size, deadline)
        except failures.UNAVAILABLE as exc:
            await self._cassandra_failed(context, operation, exc, store.read_consistency)
        return recorder_pb2.ListRecognitionsResponse(
            recognitions=[to_proto(r) for r in page.records],
            next_page_token=paging.encode(query, page.next_cursor, self._token_key) if page.next_cursor else "",
        )


def build(config: Config) -> GrpcService:
    servicer = RecorderServicer(config)
    return GrpcService(
        register=lambda server: recorder_pb2_grpc.add_RecorderServicer_to_server(servicer, server),
        service_names=[recorder_pb2.DESCRIPTOR.services_by_name["Recorder"].full_name],
        startup=servicer.connect,
        shutdown=servicer.close,
        host=config.host,
        port=config.port,
        grace_seconds=config.grace_seconds,
        max_concurrent_rpcs=config.max_concurrent_rpcs,
        max_message_bytes=config.max_image_bytes + 64 * 1024,
    )
