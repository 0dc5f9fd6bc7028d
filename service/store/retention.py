"""Queries of the retention policy: which preparations to remove, removing them in small batches, reclaiming space."""

from __future__ import annotations

import time
from dataclasses import dataclass

import peewee

from serverprep.service.store import rows
from serverprep.service.store.database import Session, write_transaction, writes_alone
from serverprep.service.store.models import LogRow, PreparationRow, ServerRow, StepRow


@dataclass(frozen=True)
class Policy:
    """Keep each server's last ``keep_last`` preparations (0: no count limit) and those younger than
    ``keep_days`` days (0: no age limit). The latest and any active preparation are always kept."""

    keep_last: int = 0
    keep_days: float = 0.0

    @property
    def active(self) -> bool:
        return bool(self.keep_last or self.keep_days)


@dataclass(frozen=True)
class Removable:
    id: str
    server: str
    state: str
    created_at: float
    log_lines: int


def candidates(s: Session, policy: Policy, limit: int, now: float | None = None) -> list[Removable]:
    """Preparations the policy removes, oldest first, at most ``limit``."""
    if not policy.active:
        return []
    now = time.time() if now is None else now
    rank = peewee.fn.ROW_NUMBER().over(partition_by=[PreparationRow.server], order_by=[PreparationRow.created_at.desc()])
    ranked = PreparationRow.select(PreparationRow.id, PreparationRow.state, PreparationRow.created_at,
                                   PreparationRow.server, rank.alias("rank")).alias("ranked")
    beyond = []
    if policy.keep_last:
        beyond.append(ranked.c.rank > policy.keep_last)
    if policy.keep_days:
        beyond.append(ranked.c.created_at < now - policy.keep_days * 86400)
    condition = beyond[0] if len(beyond) == 1 else beyond[0] | beyond[1]
    lines = LogRow.select(peewee.fn.COUNT(LogRow.seq)).where(LogRow.preparation == ranked.c.id)
    query = (
        peewee.Select([ranked], [ranked.c.id, ServerRow.name, ranked.c.state, ranked.c.created_at, lines.alias("lines")])
        .join(ServerRow, on=(ServerRow.id == ranked.c.server_id))
        .where(condition, ranked.c.rank > 1, ranked.c.state.not_in(rows.ACTIVE_STATES))
        .order_by(ranked.c.created_at)
        .limit(limit)
        .bind(s.database)
    )
    return [Removable(r[0], r[1], r[2], r[3], r[4]) for r in query.tuples()]


@writes_alone
def remove(s: Session, prep_ids: list[str], chunk: int = 5000) -> int:
    """Delete preparations with their steps and logs (the logs in chunks, so no transaction is long).
    Returns the log lines removed. An active preparation is never removed."""
    removed = 0
    for prep_id in prep_ids:
        while True:
            with s.database.atomic():
                seqs = LogRow.select(LogRow.seq).where(LogRow.preparation == prep_id).limit(chunk)
                n = LogRow.delete().where(LogRow.preparation == prep_id, LogRow.seq.in_(seqs)).execute()
            removed += n
            if n < chunk:
                break
        with write_transaction(s.database):
            row = PreparationRow.get_or_none(PreparationRow.id == prep_id)
            if row is None or row.state in rows.ACTIVE_STATES:
                continue
            StepRow.delete().where(StepRow.preparation == prep_id).execute()
            PreparationRow.delete().where(PreparationRow.id == prep_id).execute()
    return removed


@writes_alone
def reclaim(s: Session, pages: int = 2000) -> None:
    """Give free pages back to the file system (SQLite in incremental auto-vacuum mode)."""
    if isinstance(s.database, peewee.SqliteDatabase):
        # executescript steps the pragma to its end; execute() would free one page per call.
        s.database.connection().executescript(f"PRAGMA incremental_vacuum({int(pages)});")


def size(s: Session) -> int:
    """Bytes the database occupies (SQLite: the main file; PostgreSQL: the database)."""
    if isinstance(s.database, peewee.SqliteDatabase):
        page_size = s.database.execute_sql("PRAGMA page_size").fetchone()[0]
        pages = s.database.execute_sql("PRAGMA page_count").fetchone()[0]
        return int(page_size * pages)
    return int(s.database.execute_sql("SELECT pg_database_size(current_database())").fetchone()[0])
