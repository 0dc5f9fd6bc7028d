"""Queries on log entries, which carry the state changes they announce."""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Sequence
from typing import Any

import peewee

from serverprep.service.domain import LogEntry, PrepChange, PrepState, StepChange, StepState, Stream
from serverprep.service.store import preparations
from serverprep.service.store.database import Session, writes
from serverprep.service.store.models import LogRow, PreparationRow

INSERT_CHUNK = 200

#: Rows per INSERT on SQLite at most (fewer as smaller powers of two, so that at most nine
#: statements are ever prepared). sqlite3 lets go of the GIL for every statement it runs, and a
#: writer thread takes it back only when the event loop yields it: one statement per row
#: (``executemany``) stored 1,340 rows/s beside a busy Python thread, 256 rows a statement
#: 25,000 (and 395,000 against 254,000 with nothing else running).
SQLITE_ROWS = 256
_SQLITE_INSERT = {n: "INSERT INTO log_line (preparation_id, seq, time, step, stream, text, step_state, prep_state) VALUES "
                     + ", ".join(["(?, ?, ?, ?, ?, ?, ?, ?)"] * n) for n in (1 << i for i in range(SQLITE_ROWS.bit_length()))}


@writes
def append(s: Session, prep_id: str, entries: Sequence[LogEntry], changes: Sequence[StepChange | PrepChange] = ()) -> None:
    """Store log entries and the steps' or the preparation's changes they announce, in order, in
    one transaction (the group commit's savepoint)."""
    if entries:
        # ``_value_``, Enum's own field: ``value`` is a property, and this runs once per line.
        values = [(prep_id, e.seq, e.time, e.step, e.stream._value_, e.text,
                   e.step_state._value_ if e.step_state else None, e.prep_state._value_ if e.prep_state else None) for e in entries]
        if isinstance(s.database, peewee.SqliteDatabase):
            _sqlite_insert(s.database.cursor(), values)  # the log's hot path
        else:
            for start in range(0, len(values), INSERT_CHUNK):
                LogRow.insert_many(values[start : start + INSERT_CHUNK], fields=_FIELDS).execute()
        PreparationRow.update(last_seq=entries[-1].seq).where(PreparationRow.id == prep_id).execute()
    for change in changes:
        if isinstance(change, StepChange):
            preparations.apply_step(prep_id, change)
        else:
            preparations.apply_end(prep_id, change)


def _sqlite_insert(cursor: sqlite3.Cursor, values: list[tuple[Any, ...]]) -> None:
    """Insert rows SQLITE_ROWS at a time (fewer where SQLite allows fewer parameters: 999 before
    3.32), the rest by halves."""
    size, at = SQLITE_ROWS, 0
    while size * 8 > cursor.connection.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER):
        size //= 2
    while at < len(values):
        while size > len(values) - at:
            size //= 2
        cursor.execute(_SQLITE_INSERT[size], list(itertools.chain.from_iterable(values[at : at + size])))
        at += size


_FIELDS = [LogRow.preparation, LogRow.seq, LogRow.time, LogRow.step, LogRow.stream, LogRow.text, LogRow.step_state, LogRow.prep_state]
_STREAMS = {s.value: s for s in Stream}
_STEP_STATES = {s.value: s for s in StepState}
_PREP_STATES = {s.value: s for s in PrepState}


def read(s: Session, prep_id: str, after_seq: int, limit: int = 1000) -> list[LogEntry]:
    query = (LogRow.select(LogRow.seq, LogRow.time, LogRow.step, LogRow.stream, LogRow.text, LogRow.step_state, LogRow.prep_state)
             .where(LogRow.preparation == prep_id, LogRow.seq > after_seq).order_by(LogRow.seq).limit(limit).tuples())
    return [LogEntry(seq, at, step, _STREAMS[stream], text, _STEP_STATES.get(step_state) if step_state else None,
                     _PREP_STATES.get(prep_state) if prep_state else None)
            for seq, at, step, stream, text, step_state, prep_state in query]


def max_seq(s: Session, prep_id: str) -> int:
    value = LogRow.select(peewee.fn.MAX(LogRow.seq)).where(LogRow.preparation == prep_id).scalar()
    return value or 0


def output_totals(s: Session, prep_id: str) -> tuple[int, int]:
    """Lines and UTF-8 bytes of command output (not serverprep's events) a preparation has stored."""
    size = (peewee.fn.OCTET_LENGTH(LogRow.text) if isinstance(s.database, peewee.PostgresqlDatabase)
            else peewee.fn.LENGTH(LogRow.text.cast("BLOB")))
    lines, total = (LogRow.select(peewee.fn.COUNT(LogRow.seq), peewee.fn.COALESCE(peewee.fn.SUM(size), 0))
                    .where(LogRow.preparation == prep_id, LogRow.stream != "EVENT").scalar(as_tuple=True))
    return int(lines), int(total)
