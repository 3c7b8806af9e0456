"""Export every correction (a labelled record) as a training set: 28×28 PNGs and a CSV.

    python -m services.recorder.export_corrections --out data/corrections      # make export-corrections

Each digit of a labelled record becomes ``<record id>-<i>.png``: the 28×28 field the model read
(white ink on black, like MNIST), made from the stored image by the recognizer's own
segmentation (services/recognizer/segment.py), so training sees exactly what serving sees. The
field of each digit is the piece whose box is the one the record stored for it. ``labels.csv``
has ``file,digit,record_id,model_version,labelled_at`` per PNG; ``train --corrections DIR``
reads it.

It reads Cassandra directly with the recorder's own configuration (``RECORDER_*``: hosts,
keyspace, login), as the schema migration does: an operator's batch job that needs every
correction of every user, not an API that would have to serve all images in bulk to one token.
It pages ``corrections_by_day`` one UTC day at a time (no scan), newest day first, back to
``--since`` (default: the image retention period, beyond which no image is left). Corrections
whose image expired or whose record was deleted are skipped and counted.
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from services.recorder.config import Config
from services.recorder.session import connect

HEADER = ("file", "digit", "record_id", "model_version", "labelled_at")
_PAGE = 500


@dataclass
class Summary:
    corrections: int = 0
    digits: int = 0
    skipped: int = 0


def fields_of(image: bytes, boxes: list[tuple[int, int, int, int]], digits: int) -> list[np.ndarray] | None:
    """The 28×28 field of each digit the record read, as the recognizer made it; None if the
    image no longer splits into the record's digits (then the correction is skipped)."""
    from services.recognizer import segment
    from services.recognizer.decoding import ImageError

    try:
        groups = segment.read(image)
    except ImageError:
        return None
    pieces = [piece for group in groups for piece in group.pieces.values()]
    if boxes:
        by_box = {piece.box: piece.field for piece in pieces}
        found = [by_box.get(box) for box in boxes]
        return None if any(f is None for f in found) or len(found) != digits else found  # type: ignore[return-value]
    # A record made before numbers were read: one digit, the whole of a single mark.
    return [groups[0].whole.field] if digits == 1 and len(groups) == 1 else None


def png(field: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(np.round(np.clip(field, 0, 1) * 255).astype(np.uint8)).save(out, "PNG")
    return out.getvalue()


def export(session: Any, keyspace: str, out: Path, since: date, until: date) -> Summary:
    """Write every correction labelled on a day in [since, until] into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    by_day = session.prepare(f"SELECT id, number, model_version, labelled_at FROM {keyspace}.corrections_by_day WHERE day = ?")
    by_day.fetch_size = _PAGE  # the driver pages a large day
    record = session.prepare(f"SELECT readings, received_at FROM {keyspace}.recognitions WHERE id = ?")
    chunks = session.prepare(f"SELECT chunk, data FROM {keyspace}.images WHERE id = ?")
    summary = Summary()
    with (out / "labels.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        day = until
        while day >= since:
            for row in session.execute(by_day, [day]):
                summary.corrections += 1
                written = _export_one(session, record, chunks, row, out, writer)
                summary.digits += written
                summary.skipped += written == 0
            day -= timedelta(days=1)
    return summary


def _export_one(session: Any, record: Any, chunks: Any, row: dict[str, Any], out: Path, writer: Any) -> int:
    found = session.execute(record, [row["id"]]).one()
    parts = sorted(session.execute(chunks, [row["id"]]), key=lambda c: c["chunk"])
    if found is None or found["received_at"] is None or not parts:  # deleted, or its image expired
        return 0
    boxes = [(x, y, w, h) for _, _, x, y, w, h in found["readings"] or ()]
    fields = fields_of(b"".join(p["data"] for p in parts), boxes, len(row["number"]))
    if fields is None:
        return 0
    labelled_at = row["labelled_at"].replace(tzinfo=timezone.utc).isoformat().replace("+00:00", "Z")
    for i, (digit, field) in enumerate(zip(row["number"], fields)):
        name = f"{row['id']}-{i}.png"
        (out / name).write_bytes(png(field))
        writer.writerow((name, digit, str(row["id"]), row["model_version"] or "", labelled_at))
    return len(fields)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, type=Path, help="directory for the PNGs and labels.csv")
    p.add_argument("--since", type=date.fromisoformat, help="first UTC day of labelling (default: the image retention)")
    args = p.parse_args(argv)
    config = Config.from_env()
    today = datetime.now(timezone.utc).date()
    since = args.since or today - timedelta(days=config.image_retention_days or 3650)
    cluster, session = connect(config)
    try:
        summary = export(session, config.keyspace, args.out, since, today)
    finally:
        cluster.shutdown()
    print(f"exported {summary.digits} digits from {summary.corrections} corrections labelled {since} to {today} "
          f"into {args.out} ({summary.skipped} skipped: record deleted, image expired, or not segmentable)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
