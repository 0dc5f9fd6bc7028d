"""Queries on log entries, which carry the state changes they announce."""

from __future__ import annotations

from collections.abc import Sequence

import peewee

from serverprep.service.domain import LogEntry, PrepChange, PrepState, StepChange, StepState, Stream
from serverprep.service.store import preparations
from serverprep.service.store.database import Session, writes
from serverprep.service.store.models import LogRow, PreparationRow

INSERT_CHUNK = 200


_INSERT = "INSERT INTO log_line (preparation_id, seq, time, step, stream, text, step_state, prep_state) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"


@writes
def append(s: Session, prep_id: str, entries: Sequence[LogEntry], changes: Sequence[StepChange | PrepChange] = ()) -> None:
    """Store log entries and the steps' or the preparation's changes they announce, in order, in
    one transaction (the group commit's savepoint)."""
    if entries:
        values = [(prep_id, e.seq, e.time, e.step, e.stream.value, e.text,
                   e.step_state.value if e.step_state else None, e.prep_state.value if e.prep_state else None) for e in entries]
        if isinstance(s.database, peewee.SqliteDatabase):
            # sqlite3's executemany runs the one prepared statement in C: the log's hot path.
            s.database.cursor().executemany(_INSERT, values)
        else:
            for start in range(0, len(values), INSERT_CHUNK):
                LogRow.insert_many(values[start : start + INSERT_CHUNK], fields=_FIELDS).execute()
        PreparationRow.update(last_seq=entries[-1].seq).where(PreparationRow.id == prep_id).execute()
    for change in changes:
        if isinstance(change, StepChange):
            preparations.apply_step(prep_id, change)
        else:
            preparations.apply_end(prep_id, change)


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
