"""Labels: the true digits of a record, as its owner said (``LabelRecognition``).

A label is written in one logged batch, at the time of labelling (a later write timestamp than
the record's own rows, so a retried upload never erases it, and earlier than any later
deletion, which shadows it):

- ``label_number`` and ``labelled_at`` on the record's rows in ``recognitions``,
  ``recognitions_by_hour`` and ``recognitions_by_user_day``, so GET and every listing show it;
- a row in ``corrections_by_day`` under the UTC day of labelling, what the export pages through
  (``export_corrections.py``); a relabel on another day deletes the previous day's row.

Relabelling overwrites: the last label wins. A record deleted between the read that found it
and the label's write leaves label-only cells behind the deletion; reads ignore such rows
(``records.is_whole``) and the export skips a correction whose record is gone.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from cassandra.query import BatchStatement, BatchType, PreparedStatement

from services.recorder import schema
from services.recorder.paging import day_of, hour_of
from services.recorder.records import Record

MAX_DIGITS = 12  # as many as the recognizer reads in one image


def invalid_label(number: str, record: Record) -> str | None:
    """Why ``number`` cannot label ``record`` (None: it can)."""
    if not number or not number.isascii() or not number.isdigit():
        return "the label must be the digits 0-9 the image shows, e.g. \"4\" or \"42\""
    predicted = record.number or str(record.digit)
    if len(number) > MAX_DIGITS:
        return f"a label has at most {MAX_DIGITS} digits"
    if len(number) != len(predicted):
        return (f"the record holds {len(predicted)} digit(s) ({predicted!r}); the label must have as many, "
                f"not {len(number)}")  # fmt: skip
    return None


class Corrections:
    """The prepared statements of labelling, on the store's session."""

    def __init__(self, prepare: Callable[[str, int], PreparedStatement], ks: str, write_cl: int) -> None:
        self._write_cl = write_cl
        stamped = "USING TIMESTAMP ? SET label_number = ?, labelled_at = ?"
        self._label = {
            "recognitions": prepare(f"UPDATE {ks}.recognitions {stamped} WHERE id = ?", write_cl),
            "recognitions_by_hour": prepare(
                f"UPDATE {ks}.recognitions_by_hour {stamped} WHERE hour = ? AND shard = ? AND id = ?", write_cl
            ),
            "recognitions_by_user_day": prepare(
                f"UPDATE {ks}.recognitions_by_user_day {stamped} WHERE user = ? AND day = ? AND id = ?", write_cl
            ),
        }
        self._insert = prepare(
            f"INSERT INTO {ks}.corrections_by_day (day, id, number, predicted, model_version, user, labelled_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?) USING TIMESTAMP ?",
            write_cl,
        )
        # Also used by the store's deletion of a labelled record.
        self.delete = prepare(f"DELETE FROM {ks}.corrections_by_day USING TIMESTAMP ? WHERE day = ? AND id = ?", write_cl)

    def batch(self, record: Record, number: str, labelled_at: datetime, stamp: int) -> BatchStatement:
        """The label's rows, all or none; ``stamp`` (microseconds) is later than the record's."""
        rid, received = record.id, record.received_at
        batch = BatchStatement(batch_type=BatchType.LOGGED, consistency_level=self._write_cl)
        batch.is_idempotent = True  # fixed values and timestamp: a retry rewrites the same cells
        label = [stamp, number, labelled_at]
        batch.add(self._label["recognitions"], [*label, rid])
        batch.add(self._label["recognitions_by_hour"], [*label, hour_of(received), schema.shard_of(rid), rid])
        if record.user:
            batch.add(self._label["recognitions_by_user_day"], [*label, record.user, day_of(received), rid])
        if record.labelled_at is not None and day_of(record.labelled_at) != day_of(labelled_at):
            batch.add(self.delete, [stamp, day_of(record.labelled_at), rid])  # moved to today's partition
        predicted = record.number or str(record.digit)
        batch.add(self._insert, [day_of(labelled_at), rid, number, predicted, record.model_version, record.user,
                                 labelled_at, stamp])  # fmt: skip
        return batch
