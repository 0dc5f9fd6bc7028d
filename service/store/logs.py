"""Queries on log entries, which carry the state changes they announce."""

from __future__ import annotations

import itertools
import json
import operator
import sqlite3
from collections.abc import Sequence
from typing import Any

import peewee

from serverprep.service.domain import LogEntry, PrepChange, PrepState, StepChange, StepState, Stream
from serverprep.service.store import preparations
from serverprep.service.store.compiled import Compiled
from serverprep.service.store.database import Session, bare, urgent, writes
from serverprep.service.store.models import LogRow, PreparationRow

INSERT_CHUNK = 200
_LAST_SEQ = Compiled(lambda v: PreparationRow.update(last_seq=v.seq).where(PreparationRow.id == v.id))

_INSERT = "INSERT INTO log_line (preparation_id, seq, time, step, stream, text, step_state, prep_state) "

#: Rows per INSERT on SQLite at most (fewer as smaller powers of two, so that at most nine
#: statements are ever prepared). sqlite3 lets go of the GIL for every statement it runs, and a
#: writer thread takes it back only when the event loop yields it: one statement per row
#: (``executemany``) stored 1,340 rows/s beside a busy Python thread, 256 rows a statement
#: 25,000 (and 395,000 against 254,000 with nothing else running).
SQLITE_ROWS = 256
_SQLITE_ROWS = {n: _INSERT + "VALUES " + ", ".join(["(?, ?, ?, ?, ?, ?, ?, ?)"] * n)
                for n in (1 << i for i in range(SQLITE_ROWS.bit_length()))}
#: Runs of output lines per INSERT at most (powers of two, as rows). A run is consecutive entries
#: with one time, step and stream and no state, as the lines of one read are; its texts go as one
#: JSON array that SQLite takes apart itself, and its time is bound as it is (a float through
#: JSON might not come back bit for bit).
SQLITE_RUNS = 64
_SQLITE_RUNS = {n: _INSERT + " UNION ALL ".join(["SELECT ?, ? + key, ?, ?, ?, value, NULL, NULL FROM json_each(?)"] * n)
                for n in (1 << i for i in range(SQLITE_RUNS.bit_length()))}
#: Lines a run needs to go as a run; shorter ones go as rows.
RUN_MIN = 32
_RUN_KEY = operator.attrgetter("time", "step", "stream", "step_state", "prep_state")
_TEXT = operator.attrgetter("text")
#: Whether this process's SQLite has json_each (built in since 3.38, often before): None until asked.
_json_each: bool | None = None


@bare
@writes
def append(s: Session, prep_id: str, entries: Sequence[LogEntry], changes: Sequence[StepChange | PrepChange] = ()) -> None:
    """Store log entries and the steps' or the preparation's changes they announce, in order, in
    one transaction (the group commit's)."""
    if entries:
        if isinstance(s.database, peewee.SqliteDatabase):
            _sqlite_append(s.database.cursor(), prep_id, entries)  # the log's hot path
        else:
            values = _rows(prep_id, entries)
            for start in range(0, len(values), INSERT_CHUNK):
                LogRow.insert_many(values[start : start + INSERT_CHUNK], fields=_FIELDS).execute()
        _LAST_SEQ.run(id=prep_id, seq=entries[-1].seq)
    for change in changes:
        if isinstance(change, StepChange):
            preparations.apply_step(prep_id, change)
        else:
            preparations.apply_end(prep_id, change)


@urgent
@bare
@writes
def append_ending(s: Session, prep_id: str, entries: Sequence[LogEntry], changes: Sequence[StepChange | PrepChange]) -> None:
    """``append`` for the write that ends a preparation, in the urgent lane. Live readers see the end
    as soon as it is numbered, before it is stored, and a client may act on it at once: its
    ``Prepare``, ``Retry`` or ``DeleteServer`` (urgent writes) must not overtake the end and find
    the preparation still running."""
    append(s, prep_id, entries, changes)


def _rows(prep_id: str, entries: Sequence[LogEntry]) -> list[tuple[Any, ...]]:
    # ``_value_``, Enum's own field: ``value`` is a property, and this runs once per line.
    return [(prep_id, e.seq, e.time, e.step, e.stream._value_, e.text,
             e.step_state._value_ if e.step_state else None, e.prep_state._value_ if e.prep_state else None) for e in entries]


def _sqlite_append(cursor: sqlite3.Cursor, prep_id: str, entries: Sequence[LogEntry]) -> None:
    """Runs of RUN_MIN output lines or more up to SQLITE_RUNS to a statement, the other entries
    SQLITE_ROWS to a statement.

    The statements are few because each one gives the GIL away: sqlite3 lets go of it while SQLite
    works, and the writer thread gets it back only when the event loop yields it (up to 5 ms, the
    switch interval, while the loop is busy). Beside a busy Python thread, 100,000 rows in batches
    of 2,000 were stored at 31,000 rows/s in 256-row INSERTs and 220,000 as runs of 2,000 lines,
    one statement each (460,000 and 760,000 alone); runs of 100 lines, one statement each, only
    18,000. And a run's work per line is C (json.dumps, SQLite), not a Python tuple per row.
    """
    runs: list[tuple[Any, ...]] = []
    rest: list[LogEntry] = []
    for (time, step, stream, step_state, prep_state), group in itertools.groupby(entries, _RUN_KEY):
        run = list(group)
        if (len(run) >= RUN_MIN and step_state is None and prep_state is None and run[-1].seq - run[0].seq == len(run) - 1
                and _has_json_each(cursor)):
            texts = json.dumps(list(map(_TEXT, run)), ensure_ascii=False)
            # A NUL (JSON \u0000) comes back from SQLite's JSON cut off there: such a run goes as rows
            # (so does one with a line that says \u0000 in so many characters).
            if "\\u0000" not in texts:
                runs.append((prep_id, run[0].seq, time, step, stream._value_, texts))
                if len(runs) == SQLITE_RUNS:  # one statement's worth: stored now, not held as JSON with the rest
                    _sqlite_insert(cursor, runs, _SQLITE_RUNS)
                    runs = []
                continue
        rest += run
    if runs:
        _sqlite_insert(cursor, runs, _SQLITE_RUNS)
    if rest:
        _sqlite_insert(cursor, _rows(prep_id, rest))


def _has_json_each(cursor: sqlite3.Cursor) -> bool:
    global _json_each
    if _json_each is None:
        try:
            cursor.connection.execute("SELECT count(*) FROM json_each('[]')").fetchone()
            _json_each = True
        except sqlite3.OperationalError:
            _json_each = False
    return _json_each


def _sqlite_insert(cursor: sqlite3.Cursor, values: list[tuple[Any, ...]], statements: dict[int, str] = _SQLITE_ROWS) -> None:
    """Insert ``values`` (rows, or runs) as many at a time as the largest of ``statements`` takes,
    fewer where this SQLite allows fewer parameters (999 before 3.32) or compound SELECT terms,
    the rest by halves."""
    if not values:
        return
    connection, size, at = cursor.connection, max(statements), 0
    while size > 1 and (size * len(values[0]) > connection.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
                        or size > connection.getlimit(sqlite3.SQLITE_LIMIT_COMPOUND_SELECT)):
        size //= 2
    while at < len(values):
        while size > len(values) - at:
            size //= 2
        cursor.execute(statements[size], list(itertools.chain.from_iterable(values[at : at + size])))
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
