"""How the recognizer turns a call's images into model inputs, with preprocessing replaced by a
small fake for one image (no server, no model): an unexpected failure fails that image alone."""

from __future__ import annotations

from services.recognizer import decoding, segment, server
from services.recognizer.config import Config
from tests.helpers import DATA


def test_an_unexpected_preprocessing_error_fails_its_image_alone(monkeypatch):
    real = segment.read

    def flaky(data, limits):  # type: ignore[no-untyped-def]
        if data == b"boom":
            raise RuntimeError("a bug")
        return real(data, limits)

    monkeypatch.setattr(segment, "read", flaky)
    servicer = server.RecognizerServicer(Config())
    fields = servicer._groups_of([(DATA / "seven.png").read_bytes(), b"boom", b""])
    (group,) = fields[0]
    assert group.whole.field.shape == (28, 28)
    assert isinstance(fields[1], server.PreprocessingFailed) and fields[1].reason == "PREPROCESSING_FAILED"
    assert isinstance(fields[2], decoding.ImageError) and fields[2].reason == "EMPTY_IMAGE"
