"""A typed client for the gRPC services: the Recognizer (no token) and the Recorder (a token).

The generated stubs are ``digits.v1`` (shipped in this package, made from protos/); use
``recognizer_stub`` / ``recorder_stub`` for anything this wrapper does not cover.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Self

import grpc
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2

from digits.v1 import recognizer_pb2, recognizer_pb2_grpc, recorder_pb2, recorder_pb2_grpc

from .errors import ProblemError, UnreachableError
from .models import Page, Recognition

DOMAIN = "digits.v1"
_DETAILS_KEY = "grpc-status-details-bin"
# The services accept images up to 10 MiB (RECOGNIZER_MAX_IMAGE_BYTES); gRPC's default is 4.
_OPTIONS = [
    ("grpc.max_send_message_length", 16 * 1024 * 1024),
    ("grpc.max_receive_message_length", 16 * 1024 * 1024),
]


class GrpcClient:
    """``with GrpcClient(recognizer="127.0.0.1:50051") as client: client.recognize(data)``.

    Either address may be omitted when that service is not needed. The channels are
    plaintext, as inside the cluster; ``token`` goes to the Recorder as ``authorization``.
    """

    def __init__(
        self,
        *,
        recognizer: str | None = None,
        recorder: str | None = None,
        token: str | None = None,
        timeout: float = 30.0,
    ) -> None:
        self._timeout = timeout
        self._metadata = (("authorization", f"Bearer {token}"),) if token else ()
        self._channels: list[grpc.Channel] = []
        self.recognizer_stub = (
            recognizer_pb2_grpc.RecognizerStub(self._channel(recognizer)) if recognizer else None
        )
        self.recorder_stub = recorder_pb2_grpc.RecorderStub(self._channel(recorder)) if recorder else None

    def _channel(self, address: str) -> grpc.Channel:
        channel = grpc.insecure_channel(address, options=_OPTIONS)
        self._channels.append(channel)
        return channel

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for channel in self._channels:
            channel.close()

    def _recognizer(self) -> recognizer_pb2_grpc.RecognizerStub:
        if self.recognizer_stub is None:
            raise ValueError("no recognizer address was given")
        return self.recognizer_stub

    def _recorder(self) -> recorder_pb2_grpc.RecorderStub:
        if self.recorder_stub is None:
            raise ValueError("no recorder address was given")
        return self.recorder_stub

    def _call(self, method: Any, request: Message, *, with_token: bool = False) -> Any:
        try:
            return method(request, timeout=self._timeout, metadata=self._metadata if with_token else ())
        except grpc.RpcError as error:
            raise _problem(error) from error

    def recognize(self, image: bytes, content_type: str = "") -> Recognition:
        """The model's answer for one encoded image; nothing is stored."""
        request = recognizer_pb2.RecognizeRequest(image=image, content_type=content_type)
        return recognition_of(self._call(self._recognizer().Recognize, request))

    def recognize_batch(self, images: Sequence[bytes]) -> list[Recognition | ProblemError]:
        """Many images in one call; an image that cannot be read fails alone, in its place."""
        reply = self._call(
            self._recognizer().RecognizeBatch, recognizer_pb2.RecognizeBatchRequest(images=images)
        )
        results: list[Recognition | ProblemError] = []
        for result in reply.results:
            if result.WhichOneof("result") == "recognition":
                results.append(recognition_of(result.recognition, model_version=reply.model_version))
            else:
                results.append(
                    ProblemError.from_grpc_reason(
                        "INVALID_ARGUMENT", result.error.reason, result.error.message
                    )
                )
        return results

    def get(self, recognition_id: str) -> Recognition:
        request = recorder_pb2.GetRecognitionRequest(id=recognition_id)
        return recognition_of(self._call(self._recorder().GetRecognition, request, with_token=True))

    def image(self, recognition_id: str) -> bytes:
        request = recorder_pb2.GetImageRequest(id=recognition_id)
        return bytes(self._call(self._recorder().GetImage, request, with_token=True).data)

    def delete(self, recognition_id: str) -> None:
        request = recorder_pb2.DeleteRecognitionRequest(id=recognition_id)
        self._call(self._recorder().DeleteRecognition, request, with_token=True)

    def history(self, *, user: str | None = None, page_size: int = 0, page_token: str = "") -> Page:
        """One page of a user's history (or, without ``user``, the token's own), newest first."""
        request = recorder_pb2.ListRecognitionsRequest(page_size=page_size, page_token=page_token)
        if user:
            request.user = user
        reply = self._call(self._recorder().ListRecognitions, request, with_token=True)
        return Page(tuple(recognition_of(r) for r in reply.recognitions), reply.next_page_token or None)


def recognition_of(message: Message, model_version: str = "") -> Recognition:
    """A Recognizer or Recorder message as a ``Recognition``: every field the message has,
    so fields added to the contract later (``number``, ``digits``) come through by name."""
    data = MessageToDict(message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)
    data.pop("image", None)  # bytes, base64 in JSON: never part of the answer
    if "image_size" in data:
        data["image_size"] = int(data["image_size"])  # int64 is a string in proto JSON
    data["id"] = data.get("id") or None
    data["model_version"] = data.get("model_version") or model_version
    return Recognition.from_json(data)


def _problem(error: grpc.RpcError) -> Exception:
    code = error.code() if hasattr(error, "code") else grpc.StatusCode.UNKNOWN
    message = error.details() if hasattr(error, "details") else str(error)
    reason = _reason(error)
    if code is grpc.StatusCode.UNAVAILABLE and not reason:
        return UnreachableError(f"the service is unavailable: {message}")
    if code is grpc.StatusCode.DEADLINE_EXCEEDED:
        return UnreachableError(f"the service did not answer in time: {message}")
    return ProblemError.from_grpc_reason(code.name, reason or code.name, message or "")


def _reason(error: grpc.RpcError) -> str:
    """The ErrorInfo reason a digits service put in the status details ("" if none)."""
    trailers = error.trailing_metadata() if hasattr(error, "trailing_metadata") else None
    for key, value in trailers or ():
        if key == _DETAILS_KEY:
            for detail in status_pb2.Status.FromString(value).details:
                info = error_details_pb2.ErrorInfo()
                if detail.Unpack(info) and info.domain == DOMAIN:
                    return str(info.reason)
    return ""
