"""The JSON shapes of the HTTP API (they also make the OpenAPI document at /docs)."""

from __future__ import annotations

from datetime import datetime, timezone

from pydantic import BaseModel, Field

from digits.v1 import recorder_pb2


class Recognition(BaseModel):
    id: str = Field(description="Unique id of the stored recognition (a time-based UUID).")
    digit: int = Field(ge=0, le=9, description="The most probable digit.")
    confidence: float = Field(ge=0, le=1, description="Probability of `digit`.")
    probabilities: list[float] = Field(description="Probabilities of the digits 0..9.")
    model_version: str = Field(description="Content hash of the model that answered.")
    user: str = Field(description="Who uploaded it, as given; empty when anonymous.")
    content_type: str
    filename: str
    image_size: int = Field(description="Size of the stored image in bytes.")
    received_at: datetime
    image_url: str = Field(description="Where the stored image can be downloaded.")

    @classmethod
    def from_proto(cls, rec: recorder_pb2.Recognition) -> "Recognition":
        return cls(
            id=rec.id,
            digit=rec.digit,
            confidence=rec.confidence,
            probabilities=list(rec.probabilities),
            model_version=rec.model_version,
            user=rec.user,
            content_type=rec.content_type,
            filename=rec.filename,
            image_size=rec.image_size,
            received_at=rec.received_at.ToDatetime(tzinfo=timezone.utc),
            image_url=f"/v1/recognitions/{rec.id}/image",
        )


class RecognitionPage(BaseModel):
    items: list[Recognition] = Field(description="Newest first.")
    next_page_token: str | None = Field(
        description="Pass it as `page_token` (with the same query) for the next page; null on the last page."
    )

    @classmethod
    def from_proto(cls, reply: recorder_pb2.ListRecognitionsResponse) -> "RecognitionPage":
        return cls(
            items=[Recognition.from_proto(r) for r in reply.recognitions],
            next_page_token=reply.next_page_token or None,
        )
