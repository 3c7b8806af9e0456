"""The JSON shapes of the HTTP API (they also make the OpenAPI document at /docs)."""

from __future__ import annotations

from datetime import datetime, timezone

from pydantic import BaseModel, Field

from digits.v1 import recorder_pb2


class Box(BaseModel):
    x: int = Field(description="Left edge, in pixels of the upright image.")
    y: int = Field(description="Top edge, in pixels of the upright image.")
    width: int
    height: int


class DigitReading(BaseModel):
    digit: int = Field(ge=0, le=9)
    confidence: float = Field(ge=0, le=1, description="Probability that `digit` is right.")
    box: Box = Field(description="Where the digit is in the image.")
    field_png: str | None = Field(
        None, description="The 28×28 field the model read, base64 PNG: in the upload's answer with `?fields=true` only."
    )


class Label(BaseModel):
    digit: int = Field(ge=0, le=9, description="The true first (or only) digit.")
    number: str = Field(description="The true digits, left to right.")
    labelled_at: datetime

    @classmethod
    def from_proto(cls, rec: recorder_pb2.Recognition) -> "Label | None":
        if not rec.HasField("label"):
            return None
        return cls(digit=rec.label.digit, number=rec.label.number,
                   labelled_at=rec.label.labelled_at.ToDatetime(tzinfo=timezone.utc))  # fmt: skip


class Recognition(BaseModel):
    id: str = Field(description="Unique id of the stored recognition (a time-based UUID).")
    digit: int = Field(ge=0, le=9, description="The most probable digit; with several digits, the first (leftmost).")
    confidence: float = Field(ge=0, le=1, description="Probability that `digit` is right (calibrated).")
    probabilities: list[float] = Field(description="Probabilities of the digits 0..9 (of the first digit, given that it is one).")
    number: str = Field(description="Every digit read, left to right (\"42\"); equals `digit` for a single digit.")
    digits: list[DigitReading] = Field(description="Each digit read, left to right, with its confidence and box (empty in records made before numbers were read).")
    model_version: str = Field(description="Content hash of the model that answered.")
    user: str = Field(description="Who uploaded it, as given; empty when anonymous.")
    content_type: str
    filename: str
    image_size: int = Field(description="Size of the stored image in bytes.")
    received_at: datetime
    image_url: str = Field(description="Where the stored image can be downloaded.")
    label: Label | None = Field(None, description="The true answer, as its owner said (`POST .../label`); null if none.")

    @classmethod
    def from_proto(cls, rec: recorder_pb2.Recognition) -> "Recognition":
        return cls(
            id=rec.id,
            digit=rec.digit,
            confidence=rec.confidence,
            probabilities=list(rec.probabilities),
            # Records made before numbers were read hold one digit and no box.
            number=rec.number or str(rec.digit),
            digits=[
                DigitReading(digit=d.digit, confidence=d.confidence,
                             box=Box(x=d.box.x, y=d.box.y, width=d.box.width, height=d.box.height))
                for d in rec.digits
            ],
            model_version=rec.model_version,
            user=rec.user,
            content_type=rec.content_type,
            filename=rec.filename,
            image_size=rec.image_size,
            received_at=rec.received_at.ToDatetime(tzinfo=timezone.utc),
            image_url=f"/v1/recognitions/{rec.id}/image",
            label=Label.from_proto(rec),
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
