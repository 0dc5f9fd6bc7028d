"""Log rows go to SQLite (the writer thread's hot path): runs of lines in one statement each, their
texts a JSON array, the rest in multi-row INSERTs; every row once, exactly, whatever the count,
with few distinct statements, and within an older SQLite's limit of 999 parameters. Real SQLite,
the store's own columns."""

from __future__ import annotations

import sqlite3

import pytest

from serverprep.service.domain import LogEntry, PrepState, StepState, Stream
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


def append(entries: list[LogEntry], json_each: bool | None = None, compound_limit: int | None = None) -> tuple[list[tuple], list[str]]:
    """``logs._sqlite_append`` into a new table: what it stores, and the statements it ran."""
    db = sqlite3.connect(":memory:")
    if compound_limit is not None:
        db.setlimit(sqlite3.SQLITE_LIMIT_COMPOUND_SELECT, compound_limit)
    db.execute(f"CREATE TABLE log_line ({COLUMNS}, PRIMARY KEY (preparation_id, seq))")
    statements: list[str] = []
    db.set_trace_callback(statements.append)
    saved = logs._json_each
    logs._json_each = json_each
    try:
        logs._sqlite_append(db.cursor(), "p1", entries)
    finally:
        logs._json_each = saved
    db.set_trace_callback(None)
    return db.execute(f"SELECT {COLUMNS} FROM log_line ORDER BY seq").fetchall(), [s for s in statements if s.startswith("INSERT")]


def rows_of(entries: list[LogEntry]) -> list[tuple]:
    return [("p1", e.seq, e.time, e.step, e.stream.value, e.text, e.step_state and e.step_state.value,
             e.prep_state and e.prep_state.value) for e in entries]


def run(first: int, n: int, text: str = "Get:1 http://deb.debian.org bookworm ✓ \"q\" \\ \x1b[0m", at: float = 1795674243.25,
        stream: Stream = Stream.STDOUT) -> list[LogEntry]:
    return [LogEntry(seq, at, "install_docker", stream, f"{text} {seq}") for seq in range(first, first + n)]


def test_a_run_of_lines_goes_in_one_statement_and_shorter_ones_with_the_rows():
    long, short = run(1, logs.RUN_MIN), run(logs.RUN_MIN + 1, logs.RUN_MIN - 1, at=1795674244.5)
    event = LogEntry(2 * logs.RUN_MIN + 1, 1795674244.5, "install_docker", Stream.EVENT, "done", step_state=StepState.SUCCEEDED)
    entries = [*long, *short, event]
    stored, statements = append(entries)
    assert stored == rows_of(entries)
    assert [("json_each" in s) for s in statements] == [True, False]  # the run; then 31 lines and the event, one INSERT of 32 rows
    # Without json_each (SQLite before 3.38 may lack it): the same rows, all as rows.
    stored, statements = append(entries, json_each=False)
    assert stored == rows_of(entries) and not any("json_each" in s for s in statements)


def test_a_run_with_a_nul_goes_as_rows_and_keeps_its_nul():
    """SQLite's JSON gives a text back cut off at a NUL: such a run is stored as rows (a line that
    says \\u0000 in six characters too)."""
    for text in ("before\x00after", "says \\u0000"):
        entries = run(1, 100, text)
        stored, statements = append(entries)
        assert stored == rows_of(entries) and not any("json_each" in s for s in statements), text


def test_lines_that_do_not_follow_on_or_carry_a_state_go_as_rows():
    gap = run(1, 40) + run(42, 40)  # one time, step and stream, but not consecutive (41 is missing)
    stored, statements = append(gap)
    assert stored == rows_of(gap) and not any("json_each" in s for s in statements)
    states = [LogEntry(seq, 5.0, "s", Stream.EVENT, "e", prep_state=PrepState.RUNNING) for seq in range(1, 50)]
    stored, statements = append(states)
    assert stored == rows_of(states) and not any("json_each" in s for s in statements)


def test_every_text_of_a_run_comes_back_as_it_was():
    texts = ["", "déjà ✓ 日本語 \U0001F600", "\ufffd", "\u2028\u2029\x7f\x01\x1f", "x" * 20000, '["not", "json"]', "\\", '"']
    entries = [LogEntry(seq, 7.5, "s", Stream.STDERR, texts[seq % len(texts)]) for seq in range(1, 801)]
    stored, statements = append(entries)
    assert stored == rows_of(entries) and len(statements) == 1


def test_runs_go_up_to_sixty_four_to_a_statement_within_sqlites_limit_of_compound_terms():
    """The lines of 100 reads (40 each, each read its own time): three statements, 64 + 32 + 4 runs;
    with SQLite's limit of compound SELECT terms set to 10, at most 8 runs to a statement."""
    entries = [e for i in range(100) for e in run(1 + 40 * i, 40, at=1795674243.0 + i / 3)]
    stored, statements = append(entries)
    assert stored == rows_of(entries)
    assert [s.count("json_each") for s in statements] == [64, 32, 4]
    stored, statements = append(entries, compound_limit=10)
    assert stored == rows_of(entries)
    assert max(s.count("json_each") for s in statements) == 8 and sum(s.count("json_each") for s in statements) == 100
