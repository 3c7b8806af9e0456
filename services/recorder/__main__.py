"""``python -m services.recorder``: run the Recorder gRPC service."""

import digits.grpc_engine  # noqa: F401, I001  (first: it must run before grpc loads)
from digits.grpc_server import main
from services.recorder.config import Config
from services.recorder.server import build

if __name__ == "__main__":
    main("recorder", Config.from_env(), build, Config.SECRETS)
