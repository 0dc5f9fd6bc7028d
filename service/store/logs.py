"""Queries on log entries, which carry the state changes they announce."""

from __future__ import annotations

from collections.abc import Sequence

import peewee

from serverprep.service.domain import LogEntry, PrepChange, StepChange
from serverprep.service.store import preparations, rows
from serverprep.service.store.database import Session, writes
from serverprep.service.store.models import LogRow, PreparationRow

INSERT_CHUNK = 200


@writes
def append(
    s: Session, prep_id: str, entries: Sequence[LogEntry], step: StepChange | None = None, end: PrepChange | None = None
) -> None:
    """Store log entries, and optionally a step's or the preparation's change, in one transaction."""
    with s.database.atomic():
        for start in range(0, len(entries), INSERT_CHUNK):
            LogRow.insert_many([rows.log_values(prep_id, e) for e in entries[start : start + INSERT_CHUNK]]).execute()
        if entries:
            PreparationRow.update(last_seq=entries[-1].seq).where(PreparationRow.id == prep_id).execute()
        if step is not None:
            preparations.apply_step(prep_id, step)
        if end is not None:
            preparations.apply_end(prep_id, end)


def read(s: Session, prep_id: str, after_seq: int, limit: int = 1000) -> list[LogEntry]:
    query = LogRow.select().where(LogRow.preparation == prep_id, LogRow.seq > after_seq).order_by(LogRow.seq).limit(limit)
    return [rows.log_entry(r) for r in query]


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
