"""From the model's outputs for an image's pieces to its answer: which reading of each mark wins,
whether the image is "not a digit", and the RecognizeResponse.

The model scores every piece segment.read offers. A mark is read whole unless the model is
unsure of it whole; then the best path of spans through it (dynamic programming over its cut
points, each span scored by the chance that it is a digit and read right) may read it as
several touching digits: a "4" and a "2" the model knows, where "42" whole is nothing it knows.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image

from digits.v1 import recognizer_pb2
from services.recognizer.calibration import split
from services.recognizer.decoding import ImageError
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
    return [piece.field for piece in _pieces(groups)]


def answer(groups: list[Group], probabilities: list[np.ndarray], threshold: float, version: str,
           include_fields: bool = False) -> recognizer_pb2.RecognizeResponse:
    """The response for one image, given the model's output for each of ``fields(groups)``;
    raises ImageError NOT_A_DIGIT when a digit read is more likely not a digit than ``threshold``."""
    digits, not_digit = split(np.stack(probabilities))
    scored = iter(Scored(p, d, float(n)) for p, d, n in zip(_pieces(groups), digits, not_digit))
    chosen: list[Scored] = []
    for group in groups:
        spans = {span: next(scored) for span in group.pieces}
        chosen.extend(_best(group.points, spans, threshold))
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
                field_png=_png(s.piece.field) if include_fields else b"",
            )
            for s in chosen
        ],
        number="".join(str(s.digit) for s in chosen),
        not_digit_probability=worst,
    )  # fmt: skip


def _png(field: np.ndarray) -> bytes:
    """The field as the model read it, for people to see: 8-bit grayscale PNG (~0.3 KB)."""
    buffer = io.BytesIO()
    Image.fromarray(np.round(field * 255).astype(np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


def _pieces(groups: list[Group]) -> list[Piece]:
    return [piece for group in groups for piece in group.pieces.values()]


def _best(points: int, spans: dict[tuple[int, int], Scored], threshold: float) -> list[Scored]:
    """The whole mark when it is read with confidence. Otherwise the likeliest path of spans
    through its cut points, if every span on it is a digit, read surely, and (where the whole
    was read as a digit at all) more surely than the whole. Pieces of a letter or a scribble
    are often digit-like, but seldom all surely so."""
    whole = spans[(0, points - 1)]
    refused = whole.not_digit >= threshold
    if points == 2 or (not refused and whole.confidence >= SURE):
        return [whole]
    path = _likeliest(points, spans)
    if len(path) < 2 or any(s.not_digit >= threshold for s in path):
        return [whole]
    if refused and all(s.digit == 1 for s in path):
        # Strokes of a W, an M, a row of bars: each slice reads as a 1, the whole as nothing.
        # People leave gaps between 1s (then they are separate marks), so this is no number.
        return [whole]
    # The chance that every digit is right, per digit: longer paths are not favoured for
    # having more factors.
    score = float(np.prod([s.confidence for s in path])) ** (1 / len(path))
    if score >= SURE and (refused or score > whole.confidence):
        return path
    return [whole]


def _likeliest(points: int, spans: dict[tuple[int, int], Scored]) -> list[Scored]:
    """The path from point 0 to the last that maximises the summed log of each span's chance of
    being a digit read right (Viterbi over the cut points)."""
    best = [0.0] + [-np.inf] * (points - 1)
    back = [-1] * points
    for (i, j), s in sorted(spans.items(), key=lambda item: item[0][1]):
        if (i, j) == (0, points - 1) or best[i] == -np.inf:
            continue  # the whole is judged apart
        gain = best[i] + np.log(max(s.confidence * (1.0 - s.not_digit), 1e-12))
        if gain > best[j]:
            best[j], back[j] = gain, i
    if back[points - 1] < 0:
        return []
    path, j = [], points - 1
    while j > 0:
        path.append(spans[(back[j], j)])
        j = back[j]
    return path[::-1]
