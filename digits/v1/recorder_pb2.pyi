import datetime

from digits.v1 import recognizer_pb2 as _recognizer_pb2
from google.protobuf import empty_pb2 as _empty_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Recognition(_message.Message):
    __slots__ = ("id", "digit", "confidence", "probabilities", "model_version", "user", "image", "content_type", "filename", "image_size", "client_address", "received_at", "number", "digits", "label")
    ID_FIELD_NUMBER: _ClassVar[int]
    DIGIT_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    PROBABILITIES_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    CONTENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    FILENAME_FIELD_NUMBER: _ClassVar[int]
    IMAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    RECEIVED_AT_FIELD_NUMBER: _ClassVar[int]
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    DIGITS_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    id: str
    digit: int
    confidence: float
    probabilities: _containers.RepeatedScalarFieldContainer[float]
    model_version: str
    user: str
    image: bytes
    content_type: str
    filename: str
    image_size: int
    client_address: str
    received_at: _timestamp_pb2.Timestamp
    number: str
    digits: _containers.RepeatedCompositeFieldContainer[_recognizer_pb2.DigitReading]
    label: Label
    def __init__(self, id: _Optional[str] = ..., digit: _Optional[int] = ..., confidence: _Optional[float] = ..., probabilities: _Optional[_Iterable[float]] = ..., model_version: _Optional[str] = ..., user: _Optional[str] = ..., image: _Optional[bytes] = ..., content_type: _Optional[str] = ..., filename: _Optional[str] = ..., image_size: _Optional[int] = ..., client_address: _Optional[str] = ..., received_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., number: _Optional[str] = ..., digits: _Optional[_Iterable[_Union[_recognizer_pb2.DigitReading, _Mapping]]] = ..., label: _Optional[_Union[Label, _Mapping]] = ...) -> None: ...

class Label(_message.Message):
    __slots__ = ("digit", "number", "labelled_at")
    DIGIT_FIELD_NUMBER: _ClassVar[int]
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    LABELLED_AT_FIELD_NUMBER: _ClassVar[int]
    digit: int
    number: str
    labelled_at: _timestamp_pb2.Timestamp
    def __init__(self, digit: _Optional[int] = ..., number: _Optional[str] = ..., labelled_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class RecordRequest(_message.Message):
    __slots__ = ("request_id", "recognition", "idempotency_key")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    RECOGNITION_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    recognition: Recognition
    idempotency_key: str
    def __init__(self, request_id: _Optional[str] = ..., recognition: _Optional[_Union[Recognition, _Mapping]] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class RecordBatchRequest(_message.Message):
    __slots__ = ("requests",)
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    requests: _containers.RepeatedCompositeFieldContainer[RecordRequest]
    def __init__(self, requests: _Optional[_Iterable[_Union[RecordRequest, _Mapping]]] = ...) -> None: ...

class RecordBatchResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[RecordBatchResult]
    def __init__(self, results: _Optional[_Iterable[_Union[RecordBatchResult, _Mapping]]] = ...) -> None: ...

class RecordBatchResult(_message.Message):
    __slots__ = ("recognition", "error", "replayed")
    RECOGNITION_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    REPLAYED_FIELD_NUMBER: _ClassVar[int]
    recognition: Recognition
    error: RecordError
    replayed: bool
    def __init__(self, recognition: _Optional[_Union[Recognition, _Mapping]] = ..., error: _Optional[_Union[RecordError, _Mapping]] = ..., replayed: _Optional[bool] = ...) -> None: ...

class RecordError(_message.Message):
    __slots__ = ("reason", "message")
    REASON_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    reason: str
    message: str
    def __init__(self, reason: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class GetRecognitionRequest(_message.Message):
    __slots__ = ("id", "include_image")
    ID_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_IMAGE_FIELD_NUMBER: _ClassVar[int]
    id: str
    include_image: bool
    def __init__(self, id: _Optional[str] = ..., include_image: _Optional[bool] = ...) -> None: ...

class TimeWindow(_message.Message):
    __slots__ = ("since", "until")
    SINCE_FIELD_NUMBER: _ClassVar[int]
    UNTIL_FIELD_NUMBER: _ClassVar[int]
    since: _timestamp_pb2.Timestamp
    until: _timestamp_pb2.Timestamp
    def __init__(self, since: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListRecognitionsRequest(_message.Message):
    __slots__ = ("user", "window", "page_size", "page_token")
    USER_FIELD_NUMBER: _ClassVar[int]
    WINDOW_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    user: str
    window: TimeWindow
    page_size: int
    page_token: str
    def __init__(self, user: _Optional[str] = ..., window: _Optional[_Union[TimeWindow, _Mapping]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListRecognitionsResponse(_message.Message):
    __slots__ = ("recognitions", "next_page_token")
    RECOGNITIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    recognitions: _containers.RepeatedCompositeFieldContainer[Recognition]
    next_page_token: str
    def __init__(self, recognitions: _Optional[_Iterable[_Union[Recognition, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class DeleteRecognitionRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class CreateTokenRequest(_message.Message):
    __slots__ = ("user",)
    USER_FIELD_NUMBER: _ClassVar[int]
    user: str
    def __init__(self, user: _Optional[str] = ...) -> None: ...

class Token(_message.Message):
    __slots__ = ("token", "id", "user", "created_at")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    token: str
    id: str
    user: str
    created_at: _timestamp_pb2.Timestamp
    def __init__(self, token: _Optional[str] = ..., id: _Optional[str] = ..., user: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class RevokeTokenRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class GetImageRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class Image(_message.Message):
    __slots__ = ("data", "content_type", "filename")
    DATA_FIELD_NUMBER: _ClassVar[int]
    CONTENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    FILENAME_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    content_type: str
    filename: str
    def __init__(self, data: _Optional[bytes] = ..., content_type: _Optional[str] = ..., filename: _Optional[str] = ...) -> None: ...

class LabelRecognitionRequest(_message.Message):
    __slots__ = ("id", "number")
    ID_FIELD_NUMBER: _ClassVar[int]
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    id: str
    number: str
    def __init__(self, id: _Optional[str] = ..., number: _Optional[str] = ...) -> None: ...

class LabelRecognitionResponse(_message.Message):
    __slots__ = ("recognition",)
    RECOGNITION_FIELD_NUMBER: _ClassVar[int]
    recognition: Recognition
    def __init__(self, recognition: _Optional[_Union[Recognition, _Mapping]] = ...) -> None: ...

class CountUploadOutcomesRequest(_message.Message):
    __slots__ = ("counts",)
    class CountsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    COUNTS_FIELD_NUMBER: _ClassVar[int]
    counts: _containers.ScalarMap[str, int]
    def __init__(self, counts: _Optional[_Mapping[str, int]] = ...) -> None: ...

class CountUploadOutcomesResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetStatsRequest(_message.Message):
    __slots__ = ("days",)
    DAYS_FIELD_NUMBER: _ClassVar[int]
    days: int
    def __init__(self, days: _Optional[int] = ...) -> None: ...

class GetStatsResponse(_message.Message):
    __slots__ = ("since", "until", "counts")
    SINCE_FIELD_NUMBER: _ClassVar[int]
    UNTIL_FIELD_NUMBER: _ClassVar[int]
    COUNTS_FIELD_NUMBER: _ClassVar[int]
    since: _timestamp_pb2.Timestamp
    until: _timestamp_pb2.Timestamp
    counts: _containers.RepeatedCompositeFieldContainer[StatsCount]
    def __init__(self, since: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., counts: _Optional[_Iterable[_Union[StatsCount, _Mapping]]] = ...) -> None: ...

class StatsCount(_message.Message):
    __slots__ = ("hour", "metric", "key", "value")
    HOUR_FIELD_NUMBER: _ClassVar[int]
    METRIC_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    hour: _timestamp_pb2.Timestamp
    metric: str
    key: str
    value: int
    def __init__(self, hour: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., metric: _Optional[str] = ..., key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
