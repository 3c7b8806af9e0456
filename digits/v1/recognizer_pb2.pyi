from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RecognizeRequest(_message.Message):
    __slots__ = ("image", "content_type", "include_fields")
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    CONTENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_FIELDS_FIELD_NUMBER: _ClassVar[int]
    image: bytes
    content_type: str
    include_fields: bool
    def __init__(self, image: _Optional[bytes] = ..., content_type: _Optional[str] = ..., include_fields: _Optional[bool] = ...) -> None: ...

class RecognizeResponse(_message.Message):
    __slots__ = ("digit", "confidence", "probabilities", "model_version", "digits", "number", "not_digit_probability")
    DIGIT_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    PROBABILITIES_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    DIGITS_FIELD_NUMBER: _ClassVar[int]
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    NOT_DIGIT_PROBABILITY_FIELD_NUMBER: _ClassVar[int]
    digit: int
    confidence: float
    probabilities: _containers.RepeatedScalarFieldContainer[float]
    model_version: str
    digits: _containers.RepeatedCompositeFieldContainer[DigitReading]
    number: str
    not_digit_probability: float
    def __init__(self, digit: _Optional[int] = ..., confidence: _Optional[float] = ..., probabilities: _Optional[_Iterable[float]] = ..., model_version: _Optional[str] = ..., digits: _Optional[_Iterable[_Union[DigitReading, _Mapping]]] = ..., number: _Optional[str] = ..., not_digit_probability: _Optional[float] = ...) -> None: ...

class DigitReading(_message.Message):
    __slots__ = ("digit", "confidence", "box", "field_png")
    DIGIT_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    BOX_FIELD_NUMBER: _ClassVar[int]
    FIELD_PNG_FIELD_NUMBER: _ClassVar[int]
    digit: int
    confidence: float
    box: BoundingBox
    field_png: bytes
    def __init__(self, digit: _Optional[int] = ..., confidence: _Optional[float] = ..., box: _Optional[_Union[BoundingBox, _Mapping]] = ..., field_png: _Optional[bytes] = ...) -> None: ...

class BoundingBox(_message.Message):
    __slots__ = ("x", "y", "width", "height")
    X_FIELD_NUMBER: _ClassVar[int]
    Y_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    x: int
    y: int
    width: int
    height: int
    def __init__(self, x: _Optional[int] = ..., y: _Optional[int] = ..., width: _Optional[int] = ..., height: _Optional[int] = ...) -> None: ...

class RecognizeBatchRequest(_message.Message):
    __slots__ = ("images", "include_fields")
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_FIELDS_FIELD_NUMBER: _ClassVar[int]
    images: _containers.RepeatedScalarFieldContainer[bytes]
    include_fields: bool
    def __init__(self, images: _Optional[_Iterable[bytes]] = ..., include_fields: _Optional[bool] = ...) -> None: ...

class RecognizeBatchResponse(_message.Message):
    __slots__ = ("results", "model_version")
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[RecognizeBatchResult]
    model_version: str
    def __init__(self, results: _Optional[_Iterable[_Union[RecognizeBatchResult, _Mapping]]] = ..., model_version: _Optional[str] = ...) -> None: ...

class RecognizeBatchResult(_message.Message):
    __slots__ = ("recognition", "error")
    RECOGNITION_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    recognition: RecognizeResponse
    error: ImageError
    def __init__(self, recognition: _Optional[_Union[RecognizeResponse, _Mapping]] = ..., error: _Optional[_Union[ImageError, _Mapping]] = ...) -> None: ...

class ImageError(_message.Message):
    __slots__ = ("reason", "message")
    REASON_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    reason: str
    message: str
    def __init__(self, reason: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...
