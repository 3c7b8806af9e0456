"""The answers of the digits service as typed, immutable values.

Parsing is tolerant on purpose: fields a newer gateway adds are ignored, and fields an older
one lacks take their defaults, so this client keeps working across versions of the API
(``number`` and ``digits`` — the digits read left to right with their boxes — are optional).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class Box:
    """Where a digit is in the uploaded image, in pixels."""

    x: int
    y: int
    width: int
    height: int

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Box:
        return cls(*(int(data.get(name, 0)) for name in ("x", "y", "width", "height")))


@dataclass(frozen=True)
class DigitRead:
    """One digit of a multi-digit answer."""

    digit: int
    confidence: float
    box: Box | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DigitRead:
        box = data.get("box")
        return cls(
            int(data["digit"]), float(data.get("confidence", 0.0)), Box.from_json(box) if box else None
        )


@dataclass(frozen=True)
class Recognition:
    """What the model answered about one image; a stored one also has an id and metadata.

    From the recognizer over gRPC only ``digit``, ``confidence``, ``probabilities`` and
    ``model_version`` (and ``number``/``digits`` where the server sends them) are set.
    """

    digit: int
    confidence: float
    probabilities: tuple[float, ...] = ()
    model_version: str = ""
    id: str | None = None
    user: str = ""
    content_type: str = ""
    filename: str = ""
    image_size: int | None = None
    received_at: datetime | None = None
    image_url: str | None = None
    # The digits read left to right, as text, and each digit with its box (newer servers).
    number: str | None = None
    digits: tuple[DigitRead, ...] = ()
    # The answer as the server sent it, every field included (for --json and new fields).
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def text(self) -> str:
        """The number read if the server reads several digits, else the one digit."""
        return self.number if self.number else str(self.digit)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Recognition:
        received = data.get("received_at")
        return cls(
            digit=int(data["digit"]),
            confidence=float(data["confidence"]),
            probabilities=tuple(float(p) for p in data.get("probabilities") or ()),
            model_version=str(data.get("model_version", "")),
            id=data.get("id"),
            user=str(data.get("user") or ""),
            content_type=str(data.get("content_type") or ""),
            filename=str(data.get("filename") or ""),
            image_size=data.get("image_size"),
            # fromisoformat takes the trailing Z from Python 3.11 on.
            received_at=datetime.fromisoformat(received) if received else None,
            image_url=data.get("image_url"),
            number=data.get("number") or None,
            digits=tuple(DigitRead.from_json(d) for d in data.get("digits") or ()),
            raw=dict(data),
        )


@dataclass(frozen=True)
class Page:
    """One page of a listing, newest first; ``next_page_token`` is None on the last page."""

    items: tuple[Recognition, ...]
    next_page_token: str | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Page:
        return cls(
            items=tuple(Recognition.from_json(item) for item in data.get("items") or ()),
            next_page_token=data.get("next_page_token") or None,
        )
