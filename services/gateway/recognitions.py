"""/v1/recognitions: upload an image and get the digit; read, list and delete stored ones."""

from __future__ import annotations

import base64
import time
import uuid
from datetime import datetime, timezone

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from digits.v1 import recorder_pb2
from services.gateway import auth, problems
from services.gateway.backends import call
from services.gateway.config import Config
from services.gateway.http_metrics import UPLOAD_PARSE_SECONDS
from services.gateway.images import SAFE_HEADERS, sniff_image_type
from services.gateway.models import Recognition, RecognitionPage
from services.gateway.problems import Problem
from services.gateway.request_log import annotate
from services.gateway.requests import MAX_USER, idempotency_key, list_request, read_upload, timestamp


_UPLOAD_SCHEMA = {
    "parameters": [
        {
            "name": "Idempotency-Key",
            "in": "header",
            "required": False,
            "description": "Any string of 1-128 printable ASCII characters that you choose per upload (a UUID "
            "is a good choice). Retrying with the same key, user and image returns the first attempt's record "
            "(status 200, header `Idempotent-Replayed: true`) instead of storing a second one, even when the "
            "first attempt timed out after its write; the same key with another image or user is refused "
            "(422 idempotency-key-reused). Keys are remembered for a day.",
            "schema": {"type": "string", "minLength": 1, "maxLength": 128},
        }
    ],
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["image"],
                    "additionalProperties": False,
                    "properties": {
                        "image": {"type": "string", "format": "binary", "description": "The image file."},
                        "user": {
                            "type": "string",
                            "maxLength": MAX_USER,
                            "description": "Whose record it is: needs that user's token (or the admin token). "
                            "With a user token it may be left out.",
                        },
                    },
                }
            }
        },
    },
}

def router(config: Config) -> APIRouter:
    routes = APIRouter(prefix="/v1/recognitions", tags=["recognitions"])

    @routes.post(
        "",
        status_code=201,
        response_model=Recognition,
        responses=problems.responses(400, 401, 403, 413, 415, 422, 502, 503),
        openapi_extra={**_UPLOAD_SCHEMA, **auth.OPTIONAL_SECURITY},
        summary="Recognise the digit (or the number) in an image and record it",
        description="Anonymous without a token; with a user token, recorded under that user. An image may hold "
        "one digit or up to 12 side by side (`number`, `digits`). An image that shows no digit is refused "
        "(422 `not-a-digit`, `no-digit-found`) and not recorded.",
    )
    async def create_recognition(
        request: Request,
        response: Response,
        fields: bool = Query(False, description="Also return, per digit, the 28×28 field the model read (`field_png`)."),
    ) -> Recognition:
        credentials = auth.credentials(request)
        key = idempotency_key(request)
        # The moment of receipt is part of the record's identity (with request_id): it must
        # not change between attempts of the same Record call.
        received_at = datetime.now(timezone.utc)
        started = time.perf_counter()
        upload, user = await read_upload(request)
        if user and not credentials:  # refused before spending a recognition on it
            raise Problem(
                "authentication-required", "recording under a `user` needs that user's bearer token"
            )
        image = await upload.read()
        UPLOAD_PARSE_SECONDS.observe(time.perf_counter() - started)
        answer = await request.app.state.recognizer.recognize(image, upload.content_type or "", fields)
        seen = [reading.field_png for reading in answer.digits]
        for reading in answer.digits:  # what the model saw is shown, not stored
            reading.ClearField("field_png")
        stored, replayed = await request.app.state.recorder.record(
            recorder_pb2.RecordRequest(
                # One id per upload, so that a retried Record call cannot store it twice.
                request_id=str(uuid.uuid4()),
                recognition=recorder_pb2.Recognition(
                    digit=answer.digit,
                    confidence=answer.confidence,
                    probabilities=answer.probabilities,
                    number=answer.number,
                    digits=answer.digits,
                    model_version=answer.model_version,
                    user=user,
                    image=image,
                    content_type=(upload.content_type or "")[:127],
                    filename=(upload.filename or "")[:255],
                    client_address=request.client.host if request.client else "",
                    received_at=timestamp(received_at),
                ),
                idempotency_key=key,
            ),
            credentials,
        )
        if replayed:
            # The same Idempotency-Key, user and image as an earlier upload: its record.
            response.status_code = 200
            response.headers["Idempotent-Replayed"] = "true"
        annotate(request, id=stored.id, digit=stored.digit, number=stored.number, replayed=response.status_code == 200)
        recognition = Recognition.from_proto(stored)
        if fields:
            for digit, png in zip(recognition.digits, seen):
                digit.field_png = base64.b64encode(png).decode()
        return recognition

    @routes.get(
        "",
        response_model=RecognitionPage,
        responses=problems.responses(400, 401, 403, 502, 503),
        dependencies=[auth.REQUIRED],
        summary="Stored recognitions, newest first: a user's history, or a time window",
        description="Without parameters: the token's own history (for the admin token, the last 24 hours). "
        "With `user`: that user's history (their token, or the admin's). With `since`/`until` (admin only): "
        "everything received in [`since`, `until`) (default: the 24 hours before `until`; at most 31 days). "
        "Follow `next_page_token` for more; items carry no image bytes (see `image_url`).",
    )
    async def list_recognitions(
        request: Request,
        user: str | None = Query(None, max_length=MAX_USER, description="Whose history; anonymous uploads have none."),
        since: str | None = Query(None, max_length=64, json_schema_extra={"format": "date-time"},
                                  description="ISO 8601, inclusive; default `until` minus 24 hours."),
        until: str | None = Query(None, max_length=64, json_schema_extra={"format": "date-time"},
                                  description="ISO 8601, exclusive; default now."),
        limit: str | None = Query(None, pattern=r"^[0-9]{1,4}$", description=f"Items per page, 1 to {config.max_page_size}."),
        page_token: str | None = Query(None, max_length=512, description="`next_page_token` of the previous page."),
    ) -> RecognitionPage:  # fmt: skip
        reply = await call(
            "recorder",
            request.app.state.backends.recorder.ListRecognitions,
            list_request(config, user, since, until, limit, page_token),
            config.read_timeout_seconds,
            auth.credentials(request),
        )
        return RecognitionPage.from_proto(reply)

    @routes.get(
        "/{recognition_id}",
        response_model=Recognition,
        responses=problems.responses(400, 401, 404, 502, 503),
        dependencies=[auth.REQUIRED],
        summary="A stored recognition (its owner's token, or the admin's)",
    )
    async def get_recognition(recognition_id: uuid.UUID, request: Request) -> Recognition:
        stored = await call(
            "recorder",
            request.app.state.backends.recorder.GetRecognition,
            recorder_pb2.GetRecognitionRequest(id=str(recognition_id)),
            config.read_timeout_seconds,
            auth.credentials(request),
        )
        return Recognition.from_proto(stored)

    @routes.get(
        "/{recognition_id}/image",
        responses={200: {"content": {"image/*": {}}}, **problems.responses(400, 401, 404, 410, 502, 503)},
        response_class=Response,
        dependencies=[auth.REQUIRED],
        summary="The stored image, byte for byte (its owner's token, or the admin's)",
    )
    async def get_image(recognition_id: uuid.UUID, request: Request) -> Response:
        image = await call(
            "recorder",
            request.app.state.backends.recorder.GetImage,
            recorder_pb2.GetImageRequest(id=str(recognition_id)),
            config.read_timeout_seconds,
            auth.credentials(request),
        )
        return Response(image.data, media_type=sniff_image_type(image.data), headers=SAFE_HEADERS)

    @routes.delete(
        "/{recognition_id}",
        status_code=204,
        response_class=Response,
        dependencies=[auth.REQUIRED],
        responses=problems.responses(400, 401, 404, 502, 503),
        summary="Delete a recognition and its image from every table (its owner's token, or the admin's)",
    )
    async def delete_recognition(recognition_id: uuid.UUID, request: Request) -> Response:
        await call(
            "recorder",
            request.app.state.backends.recorder.DeleteRecognition,
            recorder_pb2.DeleteRecognitionRequest(id=str(recognition_id)),
            config.record_timeout_seconds,
            auth.credentials(request),
        )
        annotate(request, id=str(recognition_id))
        return Response(status_code=204)

    return routes
