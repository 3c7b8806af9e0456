"""POST /v1/recognitions/{id}/label: the true answer of a recognition, as its owner says.

Labels are corrections that teach: the recorder keeps them beside the record and in a table by
day that ``make export-corrections`` turns into training data (see the README).
"""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field, model_validator

from digits.v1 import recorder_pb2
from services.gateway import auth, problems
from services.gateway.backends import call
from services.gateway.config import Config
from services.gateway.models import Recognition


class NewLabel(BaseModel):
    digit: int | None = Field(None, ge=0, le=9, description="The true digit, for a single-digit recognition.")
    number: str | None = Field(
        None, pattern=r"^[0-9]{1,12}$",
        description="The true digits, left to right, as many as the recognition's `number` (\"42\").",
    )  # fmt: skip

    @model_validator(mode="after")
    def _one_of(self) -> "NewLabel":
        if (self.digit is None) == (self.number is None):
            raise ValueError("send either `digit` or `number`")
        return self

    def as_number(self) -> str:
        return self.number if self.number is not None else str(self.digit)


def router(config: Config) -> APIRouter:
    routes = APIRouter(prefix="/v1/recognitions", tags=["recognitions"])

    @routes.post(
        "/{recognition_id}/label",
        response_model=Recognition,
        responses=problems.responses(400, 401, 404, 422, 502, 503),
        dependencies=[auth.REQUIRED],
        summary="Say what the image really shows (its owner's token, or the admin's)",
        description="`{\"digit\": 4}`, or for a number `{\"number\": \"42\"}` with as many digits as the "
        "recognition's `number`. Labelling again overwrites the label. The answer is the recognition with "
        "its `label`; labels are exported as training data (`make export-corrections`).",
    )
    async def label_recognition(recognition_id: uuid.UUID, body: NewLabel, request: Request) -> Recognition:
        reply = await call(
            "recorder",
            request.app.state.backends.recorder.LabelRecognition,
            recorder_pb2.LabelRecognitionRequest(id=str(recognition_id), number=body.as_number()),
            config.record_timeout_seconds,
            auth.credentials(request),
        )
        return Recognition.from_proto(reply.recognition)

    return routes
