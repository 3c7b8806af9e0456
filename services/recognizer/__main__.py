"""``python -m services.recognizer``: run the Recognizer gRPC service."""

import digits.grpc_engine  # noqa: F401, I001  (first: it must run before grpc loads)
from digits.grpc_server import main
from services.recognizer.config import Config
from services.recognizer.server import build

if __name__ == "__main__":
    main("recognizer", Config.from_env(), build)
