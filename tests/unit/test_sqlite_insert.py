"""Log rows go to SQLite in multi-row INSERTs (the writer thread's hot path): every row once, in
order, whatever the count, with few distinct statements, and within an older SQLite's limit of
999 parameters. Real SQLite, the store's own table."""

from __future__ import annotations

import sqlite3

import pytest

from serverprep.service.store import logs

COLUMNS = "preparation_id, seq, time, step, stream, text, step_state, prep_state"


def insert(count: int, variable_limit: int | None = None) -> tuple[list[tuple], set[int], list[tuple]]:
    db = sqlite3.connect(":memory:")
    if variable_limit is not None:
        db.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, variable_limit)
    db.execute(f"CREATE TABLE log_line ({COLUMNS}, PRIMARY KEY (preparation_id, seq))")
    statements: set[int] = set()
    db.set_trace_callback(lambda sql: statements.add(sql.split(" VALUES ")[1].count("(")))
    rows = [("p1", seq, 1795674243.5 + seq, "install_docker", "STDOUT", f"line {seq} ✓", None, None) for seq in range(1, count + 1)]
    logs._sqlite_insert(db.cursor(), rows)
    db.set_trace_callback(None)
    return db.execute(f"SELECT {COLUMNS} FROM log_line ORDER BY rowid").fetchall(), statements, rows


@pytest.mark.parametrize("count", [1, 2, 255, 256, 257, 1999, 2000, 5000])
def test_every_row_is_stored_once_in_order(count):
    stored, sizes, rows = insert(count)
    assert stored == rows
    assert sizes <= {1 << i for i in range(logs.SQLITE_ROWS.bit_length())}  # at most nine statements, ever
    assert max(sizes) == min(logs.SQLITE_ROWS, 1 << (count.bit_length() - 1))


def test_an_older_sqlites_limit_of_999_parameters_is_kept():
    stored, sizes, rows = insert(2000, variable_limit=999)
    assert stored == rows
    assert max(sizes) * 8 <= 999
