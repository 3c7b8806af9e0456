"""From the model's outputs for an image's pieces to its answer: which reading of each mark wins,
whether the image is "not a digit", and the RecognizeResponse.

The model scores every piece segment.read offers; a mark is read whole unless the model is
unsure of it whole and sure of every digit of one of its cuts (two "4" and "2" it knows, where
"42" whole is nothing it knows).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from digits.v1 import recognizer_pb2
from services.recognizer.calibration import split
from services.recognizer.preprocess import ImageError
from services.recognizer.segment import Group, Piece

# A mark read whole with at least this confidence is never cut.
SURE = 0.9


@dataclass(frozen=True)
class Scored:
    piece: Piece
    digits: np.ndarray  # probabilities of 0-9 given a digit
    not_digit: float

    @property
    def digit(self) -> int:
        return int(np.argmax(self.digits))

    @property
    def confidence(self) -> float:
        return float(self.digits.max())


def fields(groups: list[Group]) -> list[np.ndarray]:
    """Every field the model must score for these groups, in the order ``answer`` expects."""
    return [piece.field for group in groups for option in group.options for piece in option]


def answer(groups: list[Group], probabilities: list[np.ndarray], threshold: float,
           version: str) -> recognizer_pb2.RecognizeResponse:
    """The response for one image, given the model's output for each of ``fields(groups)``;
    raises ImageError NOT_A_DIGIT when a digit read is more likely not a digit than ``threshold``."""
    digits, not_digit = split(np.stack(probabilities))
    scored = iter(Scored(p, d, float(n)) for p, d, n in zip(_pieces(groups), digits, not_digit))
    chosen: list[Scored] = []
    for group in groups:
        options = [[next(scored) for _ in option] for option in group.options]
        chosen.extend(_best(options, threshold))
    worst = max(s.not_digit for s in chosen)
    if worst >= threshold:
        where = "" if len(chosen) == 1 else f" (in mark {1 + max(range(len(chosen)), key=lambda i: chosen[i].not_digit)} of {len(chosen)})"
        raise ImageError("NOT_A_DIGIT", f"the image does not show a digit{where}: the probability that it is "
                                        f"not a digit is {worst:.3f}, at or above the threshold {threshold:.3f}")
    first = chosen[0]
    return recognizer_pb2.RecognizeResponse(
        digit=first.digit,
        confidence=first.confidence,
        probabilities=[float(p) for p in first.digits],
        model_version=version,
        digits=[
            recognizer_pb2.DigitReading(
                digit=s.digit, confidence=s.confidence,
                box=recognizer_pb2.BoundingBox(x=s.piece.box[0], y=s.piece.box[1], width=s.piece.box[2], height=s.piece.box[3]),
            )
            for s in chosen
        ],
        number="".join(str(s.digit) for s in chosen),
        not_digit_probability=worst,
    )  # fmt: skip


def _pieces(groups: list[Group]) -> list[Piece]:
    return [piece for group in groups for option in group.options for piece in option]


def _best(options: list[list[Scored]], threshold: float) -> list[Scored]:
    """The whole mark when it is read with confidence. Otherwise the cut whose digits are read
    with the most confidence (per digit), if every one of them is a digit and, where the whole
    was read as a digit at all, they are read surely and more surely than the whole."""
    (whole,) = options[0]
    refused = whole.not_digit >= threshold
    if not refused and whole.confidence >= SURE:
        return [whole]
    best, best_score = [whole], 0.0
    for cut in options[1:]:
        if any(s.not_digit >= threshold for s in cut):
            continue
        # The chance that every digit is right, per digit: more pieces are not favoured for
        # having more factors.
        score = float(np.prod([s.confidence for s in cut])) ** (1 / len(cut))
        if score > best_score:
            best, best_score = cut, score
    if refused or (best_score >= SURE and best_score > whole.confidence):
        return best
    return [whole]
