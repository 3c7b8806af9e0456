"""A recognition as the recorder keeps it, the shapes its queries answer with, and its form in
the API (``to_proto``)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import Any, overload

from google.protobuf.timestamp_pb2 import Timestamp

from digits.v1 import recognizer_pb2, recorder_pb2
from services.recorder.paging import Cursor


@dataclass(frozen=True)
class Record:
    """A recognition as stored. ``image`` is None when it was not asked for."""

    id: uuid.UUID
    request_id: uuid.UUID | None
    digit: int
    confidence: float
    probabilities: list[float]
    model_version: str
    user: str
    image: bytes | None
    content_type: str
    filename: str
    image_size: int
    client_address: str
    received_at: datetime
    number: str = ""
    # (digit, confidence, x, y, width, height) of each digit read, left to right.
    readings: tuple[tuple[int, float, int, int, int, int], ...] = ()
    # The owner's label (LabelRecognition): the true digits, and when it was given.
    label_number: str = ""
    labelled_at: datetime | None = None


@dataclass(frozen=True)
class Claim:
    """Who first used an idempotency key: the request id and receipt time its record is made
    of, a fingerprint of what it uploaded, and whether this call was that first one."""

    request_id: uuid.UUID
    received_at: datetime
    fingerprint: bytes
    first: bool


@dataclass(frozen=True)
class Page:
    records: list[Record]
    next_cursor: Cursor | None


def from_row(row: dict[str, Any], image: bytes | None = None) -> Record:
    return Record(
        id=row["id"],
        request_id=row["request_id"],
        digit=row["digit"],
        confidence=row["confidence"],
        probabilities=list(row.get("scores") or row.get("probabilities") or []),
        model_version=row["model_version"] or "",
        user=row["user"] or "",
        image=image,
        content_type=row["content_type"] or "",
        filename=row["filename"] or "",
        image_size=row["image_size"] or 0,
        client_address=row["client_address"] or "",
        received_at=utc(row["received_at"]),
        number=row.get("number") or "",
        readings=tuple(tuple(r) for r in row.get("readings") or ()),
        label_number=row.get("label_number") or "",
        labelled_at=utc(row.get("labelled_at")),
    )


@overload
def utc(moment: datetime) -> datetime: ...


@overload
def utc(moment: None) -> None: ...


def utc(moment: datetime | None) -> datetime | None:
    """The driver returns naive UTC datetimes: made aware, as everything else here is."""
    return moment.replace(tzinfo=timezone.utc) if moment is not None and moment.tzinfo is None else moment


def timestamp(moment: datetime) -> Timestamp:
    out = Timestamp()
    out.FromDatetime(moment)
    return out


def to_proto(record: Record) -> recorder_pb2.Recognition:
    """A record as the API answers it (the image only if it was read)."""
    return recorder_pb2.Recognition(
        id=str(record.id),
        digit=record.digit,
        confidence=record.confidence,
        probabilities=record.probabilities,
        model_version=record.model_version,
        user=record.user,
        image=record.image or b"",
        content_type=record.content_type,
        filename=record.filename,
        image_size=record.image_size,
        client_address=record.client_address,
        received_at=timestamp(record.received_at),
        number=record.number,
        digits=[
            recognizer_pb2.DigitReading(
                digit=d, confidence=c, box=recognizer_pb2.BoundingBox(x=x, y=y, width=w, height=h)
            )
            for d, c, x, y, w, h in record.readings
        ],
        label=recorder_pb2.Label(
            digit=int(record.label_number[0]), number=record.label_number, labelled_at=timestamp(record.labelled_at)
        ) if record.label_number and record.labelled_at else None,
    )


def is_whole(row: dict[str, Any]) -> bool:
    """Whether a row is a record, not only a label written just after its deletion (an UPDATE
    creates the cells it sets): such a remnant has no receipt time and is treated as missing."""
    return row.get("received_at") is not None


def as_date(value: Any) -> date:
    """The driver returns its own Date type for CQL date columns."""
    return value if isinstance(value, date) else value.date()
