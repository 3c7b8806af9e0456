"""``python -m services.recorder``: run the Recorder gRPC service."""

from digits.grpc_server import main
from services.recorder.config import Config
from services.recorder.server import build

if __name__ == "__main__":
    main("recorder", Config.from_env(), build, Config.SECRETS)
