"""``python -m services.recognizer``: run the Recognizer gRPC service."""

from digits.grpc_server import main
from services.recognizer.config import Config
from services.recognizer.server import build

if __name__ == "__main__":
    main("recognizer", Config.from_env(), build)
