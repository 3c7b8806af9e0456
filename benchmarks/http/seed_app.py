"""A seed-style digits server: the baseline `make bench` measures the stack against. Never shipped.

What the project's seed was, written plainly and without handicaps: one Flask process on Flask's
own threaded server. Per request it reads the multipart field ``image``, writes the upload to a
file, converts it to grayscale and resizes it to 28×28 (inverted to white on black, as MNIST is),
calls the same committed model as the stack once (its ``serve`` function, no batching), inserts
one row (filename, digit, timestamp) in Cassandra with a synchronous prepared statement at
LOCAL_QUORUM, and answers ``{"digit": …, "confidence": …}``. The keyspace (RF 1) and table are
its own, created at start, on the same Cassandra node as the stack.

    python -m benchmarks.http.seed_app --port 8099 --cassandra 127.0.0.1
"""

from __future__ import annotations

import argparse
import os
import tempfile
import uuid
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from flask import Flask, jsonify, request
from PIL import Image
from werkzeug.utils import secure_filename

ROOT = Path(__file__).resolve().parents[2]
MODEL_DIR = ROOT / "services" / "recognizer" / "model" / "saved_model"


def connect(host: str, keyspace: str):  # type: ignore[no-untyped-def]
    """A driver session with the seed's keyspace and table, and its prepared INSERT."""
    from cassandra import ConsistencyLevel
    from cassandra.cluster import Cluster
    from cassandra.policies import DCAwareRoundRobinPolicy

    from scripts.cassandra.common import DATACENTER

    cluster = Cluster(
        [host], protocol_version=5, load_balancing_policy=DCAwareRoundRobinPolicy(local_dc=DATACENTER)
    )
    session = cluster.connect()
    session.execute(
        f"CREATE KEYSPACE IF NOT EXISTS {keyspace} "
        "WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}"
    )
    session.execute(
        f"CREATE TABLE IF NOT EXISTS {keyspace}.recognitions "
        "(id uuid PRIMARY KEY, filename text, digit int, created_at timestamp)"
    )
    insert = session.prepare(
        f"INSERT INTO {keyspace}.recognitions (id, filename, digit, created_at) VALUES (?, ?, ?, ?)"
    )
    insert.consistency_level = ConsistencyLevel.LOCAL_QUORUM
    return session, insert


def create_app(cassandra_host: str, keyspace: str, upload_dir: Path) -> Flask:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    model = tf.saved_model.load(str(MODEL_DIR))  # owns the variables: must outlive every call of serve
    session, insert = connect(cassandra_host, keyspace)
    app = Flask(__name__)

    @app.post("/v1/recognitions")
    def recognize():  # type: ignore[no-untyped-def]
        upload = request.files.get("image")
        if upload is None:
            return jsonify(error="the form has no image"), 400
        filename = f"{uuid.uuid4().hex}-{secure_filename(upload.filename or 'upload')}"
        path = upload_dir / filename
        upload.save(path)
        try:
            image = Image.open(path).convert("L").resize((28, 28))
        except OSError:
            return jsonify(error="not an image"), 415
        x = (255.0 - np.asarray(image, dtype=np.float32)) / 255.0  # white ink on black, like MNIST
        outputs = model.serve(tf.constant(x.reshape(1, 28, 28, 1)))
        if isinstance(outputs, dict):
            outputs = next(iter(outputs.values()))
        probabilities = np.asarray(outputs)[0]
        digit = int(probabilities.argmax())
        session.execute(insert, (uuid.uuid4(), filename, digit, datetime.now(timezone.utc)))
        return jsonify(digit=digit, confidence=float(probabilities[digit]))

    @app.get("/healthz")
    def healthz():  # type: ignore[no-untyped-def]
        return "ok"

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--cassandra", required=True, help="address of a Cassandra node (port 9042)")
    parser.add_argument("--keyspace", default="digits_seed")
    parser.add_argument(
        "--upload-dir", type=Path, default=None, help="where uploads are written (default: a temp dir)"
    )
    args = parser.parse_args()
    upload_dir = args.upload_dir or Path(tempfile.mkdtemp(prefix="seed-uploads-"))
    upload_dir.mkdir(parents=True, exist_ok=True)
    create_app(args.cassandra, args.keyspace, upload_dir).run(args.host, args.port, threaded=True)


if __name__ == "__main__":
    main()
