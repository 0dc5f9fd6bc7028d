"""Opening the database, the marks on query functions that write, and what every query receives."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import peewee
from playhouse import db_url

from serverprep.service.errors import StorageError
from serverprep.service.secretbox import SecretBox
from serverprep.service.store import checkpoint

P = ParamSpec("P")
T = TypeVar("T")

#: Set on every connection. WAL is not among them: it is the database file's own mode, set once
#: when the database is opened (``_use_wal``).
SQLITE_PRAGMAS = {
    "synchronous": "normal",
    "foreign_keys": 1,
    "busy_timeout": 10_000,
    "wal_autocheckpoint": checkpoint.WAL_PAGES,
    "journal_size_limit": 4 * 1024 * 1024,  # the WAL file's size once it starts over
}


def default_url(data_dir: str | os.PathLike[str]) -> str:
    return f"sqlite:///{Path(data_dir).resolve() / 'serverprep.db'}"


def open_database(url: str) -> peewee.Database:
    """Open the database at a peewee URL; SQLite gets WAL, a busy timeout and foreign keys."""
    if url.startswith("sqlite:"):
        path = db_url.parse(url)["database"]  # as peewee reads it: "sqlite://" is ":memory:"
        if path != ":memory:":
            directory = Path(path).parent
            try:
                directory.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise StorageError(f"cannot create the data directory {directory}: {e.strerror}") from e
            # SQLite in WAL mode writes beside the database (-wal, -shm): the directory must be writable.
            for target in (directory, Path(path)):
                if target.exists() and not os.access(target, os.W_OK):
                    raise StorageError(f"{target} is read-only: serverprep must write its SQLite database there")
            _use_wal(path)
        return db_url.connect(url, pragmas=SQLITE_PRAGMAS, timeout=10)
    return db_url.connect(url)


def _use_wal(path: str, timeout: float = 10.0) -> None:
    """Put the SQLite database at ``path`` (created if new) in WAL mode, which then holds for every
    connection of every process.

    Several processes opening one new database at once all try to switch it: each reads the file
    (a shared lock) and then wants it alone, and SQLite refuses one of two such connections at
    once, without its busy timeout, since each would wait for the other ("database is locked";
    seen with 4 replicas starting together). Refused, it tries again until ``timeout``.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            with contextlib.closing(sqlite3.connect(path, timeout=timeout)) as conn:
                mode = conn.execute("PRAGMA journal_mode = wal").fetchone()[0]
            if mode.lower() != "wal":
                raise StorageError(f"SQLite cannot use WAL mode for {path} (it stays in {mode!r} mode); serverprep needs WAL")
            return
        except sqlite3.DatabaseError as e:  # "locked", "unable to open", "file is not a database", ...
            if not isinstance(e, sqlite3.OperationalError) or "locked" not in str(e) or time.monotonic() >= deadline:
                raise StorageError(f"cannot open the SQLite database {path}: {e}") from e
            time.sleep(0.01)


def write_transaction(database: peewee.Database) -> Any:
    """A transaction that writes. On SQLite it takes the write lock at BEGIN (IMMEDIATE), where the
    busy timeout waits for it: a deferred transaction that has read and then writes after another
    process committed fails at once with "database is locked" (its snapshot is stale), whatever the
    timeout."""
    if isinstance(database, peewee.SqliteDatabase):
        return database.atomic(lock_type="IMMEDIATE")
    return database.atomic()


def writes(fn: Callable[P, T]) -> Callable[P, T]:
    """Marks a query function that writes: it joins the next group commit."""
    fn.writes = True  # type: ignore[attr-defined]
    return fn


def bare(fn: Callable[P, T]) -> Callable[P, T]:
    """Marks a hot write that refuses nothing (it fails only when the database does): in a group
    commit it runs without a savepoint of its own. Should it raise all the same, its group is
    rolled back and runs again, so it may run twice, the first time undone: it must touch nothing
    but the database and leave its arguments as they were."""
    fn.bare = True  # type: ignore[attr-defined]
    return fn


def urgent(fn: Callable[P, T]) -> Callable[P, T]:
    """Marks a write that a client's call waits for (a new preparation, a cancel, a server's
    record): it commits ahead of the background writes (steps' changes, output), and a group
    of those stops early for it (see ``Worker``)."""
    fn.urgent = True  # type: ignore[attr-defined]
    return fn


def writes_alone(fn: Callable[P, T]) -> Callable[P, T]:
    """Marks a write that must run outside any transaction (VACUUM, migrations): it runs by itself."""
    fn.writes = "alone"  # type: ignore[attr-defined]
    return fn


@dataclass(frozen=True)
class Session:
    """What every query function receives: the database and the box that seals secrets."""

    database: peewee.Database
    box: SecretBox


#: Errors that mean the transaction itself is broken (disk full, database gone): every write of
#: the group fails. The log's hot path runs sqlite3 directly, whose errors peewee has not wrapped.
BROKEN = (peewee.OperationalError, peewee.InterfaceError, sqlite3.OperationalError, sqlite3.InterfaceError)
