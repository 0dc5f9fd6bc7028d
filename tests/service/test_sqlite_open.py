"""Opening an SQLite database: a new one while another connection writes to it, one that cannot be
opened, one in memory."""

import sqlite3
import threading

import pytest

from serverprep.service.errors import StorageError
from serverprep.service.store import open_database


def test_a_new_database_opens_while_another_connection_holds_its_write_lock(tmp_path):
    """Several replicas opening one new database at once: one has the write lock of the file (still
    in rollback mode) while another opens it. Each connection used to switch the file to WAL itself,
    and SQLite refuses that switch at once, without its busy timeout, while another connection
    holds the write lock ("database is locked"; tests/service/test_store.py's four replicas
    starting at once met it about once in 40 runs). Now the switch is tried again until it passes."""
    path = tmp_path / "new.db"
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("CREATE TABLE t (x)")
    other.execute("BEGIN IMMEDIATE")
    other.execute("INSERT INTO t VALUES (1)")
    release = threading.Timer(0.3, other.execute, ("COMMIT",))
    release.start()
    try:
        database = open_database(f"sqlite:///{path}")
        database.connect()
        assert database.execute_sql("SELECT x FROM t").fetchall() == [(1,)]  # opened after the other committed
        database.close()
    finally:
        release.join()
        other.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_database_that_cannot_be_opened_is_named_in_a_clear_error(tmp_path):
    (tmp_path / "db").mkdir()  # a directory where the database file should be
    with pytest.raises(StorageError, match=rf"cannot open the SQLite database {tmp_path}/db: unable to open database file"):
        open_database(f"sqlite:///{tmp_path}/db")


def test_a_file_that_is_not_a_database_is_named_in_a_clear_error(tmp_path):
    (tmp_path / "notes.db").write_text("not a database, " * 100)
    with pytest.raises(StorageError, match=rf"cannot open the SQLite database {tmp_path}/notes.db: file is not a database"):
        open_database(f"sqlite:///{tmp_path}/notes.db")


@pytest.mark.parametrize("url", ["sqlite:///:memory:", "sqlite://"])
def test_an_in_memory_database_makes_no_file(url, tmp_path, monkeypatch):
    """"sqlite://" is in memory for peewee too: opening it once made a WAL file named "sqlite:"."""
    monkeypatch.chdir(tmp_path)
    database = open_database(url)
    assert database.execute_sql("SELECT 1").fetchone() == (1,)
    assert list(tmp_path.iterdir()) == []
