"""Client for the digits service: ``HttpClient`` (the gateway's API) and ``GrpcClient`` (the
Recognizer and Recorder services), typed answers in ``models``, one error type in ``errors``.
The ``digits`` CLI is ``digits_client.cli``."""

from .errors import DigitsError, ProblemError, UnreachableError
from .grpc_client import GrpcClient
from .http_client import DEFAULT_URL, HttpClient
from .models import Box, DigitRead, Page, Recognition

__all__ = [
    "DEFAULT_URL",
    "Box",
    "DigitRead",
    "DigitsError",
    "GrpcClient",
    "HttpClient",
    "Page",
    "ProblemError",
    "Recognition",
    "UnreachableError",
]
__version__ = "0.1.0"
