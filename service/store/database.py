"""Opening the database, and the worker thread every query runs on."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

import peewee
from playhouse import db_url

from serverprep.service import metrics
from serverprep.service.aio import run_to_end
from serverprep.service.errors import StorageError
from serverprep.service.secretbox import SecretBox
from serverprep.service.store import checkpoint
from serverprep.service.store.models import db

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


class Worker:
    """Runs blocking queries off the event loop: reads on a reader thread, writes in group commits.

    Writes queue up while the writer thread commits; each commit then takes every write waiting
    (from every preparation at once) into one transaction, each write in a savepoint of its own so
    that one refusal (a unique index) does not undo the others (hot writes marked ``bare`` go
    without; see ``_group``). A write is reported done only when
    its transaction has committed. Reads run on their own connection beside (SQLite in WAL mode
    lets them), so a Status does not wait behind the writes. A call always runs to its end: if
    the awaiting task is cancelled meanwhile, the cancellation waits for it, so that what the task
    believes was stored is what was stored.

    Writes wait in two queues: those marked ``urgent`` (a client's call awaits them or, for the
    end of a preparation, may act on it at once) and the background writes (steps' changes,
    output, heartbeats). Waiting urgent writes commit first, in a group of their own. A group of
    background writes that is running when an urgent write arrives stops once it has run for
    ``CUT_AFTER`` and finished its current write; what ran commits, and the rest go back to the
    head of their queue, in order, after the urgent group. So a ``Prepare`` waits for a few
    milliseconds of writes, not for a group of hundreds from a thousand running preparations,
    and a stream of urgent writes still leaves the background writes a share of the thread.
    """

    def __init__(self, session: Session):
        self.session = session
        db.initialize(session.database)
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="serverprep-db-write")
        self._reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="serverprep-db-read")
        self._waiting: list[Waiting] = []  # background writes, in the order they came
        self._urgent: list[Waiting] = []  # writes a client's call awaits: committed first
        self._committer: asyncio.Task[None] | None = None
        path = getattr(session.database, "database", "")
        # SQLite: the file this process opened, to notice when it is deleted or replaced under it.
        self._file = Path(path) if isinstance(session.database, peewee.SqliteDatabase) and path != ":memory:" else None
        self._file_id: tuple[int, int] | None = None
        self._checkpointer = checkpoint.Checkpointer(self._file, checkpoint.CHECKPOINT_INTERVAL) if self._file is not None else None

    async def call(self, fn: Callable[Concatenate[Session, P], T], *args: P.args, **kwargs: P.kwargs) -> T:
        loop = asyncio.get_running_loop()
        kind = getattr(fn, "writes", False)
        if kind is True:
            future: asyncio.Future[T] = loop.create_future()
            (self._urgent if getattr(fn, "urgent", False) else self._waiting).append((fn, args, kwargs, future))
            if self._committer is None or self._committer.done():
                self._committer = loop.create_task(self._commit_waiting(), name="serverprep-db-commit")
            return await run_to_end(future)
        executor = self._writer if kind == "alone" else self._reader
        return await run_to_end(loop.run_in_executor(executor, functools.partial(self.guarded, fn, *args, **kwargs)))

    async def _commit_waiting(self) -> None:
        loop = asyncio.get_running_loop()
        while self._urgent or self._waiting:
            if self._urgent:
                batch, self._urgent, cut = self._urgent, [], None
            else:
                batch, self._waiting, cut = self._waiting, [], self._urgent_waits
            try:
                outcomes = await loop.run_in_executor(self._writer, self.guarded, _group, [(f, a, k) for f, a, k, _ in batch], cut)
            except BaseException as e:  # the transaction failed as a whole (disk full, database gone)
                outcomes = [(False, e)] * len(batch)
            self._waiting[:0] = batch[len(outcomes):]  # cut short for an urgent write: next after it
            for (_, _, _, future), (ok, value) in zip(batch[: len(outcomes)], outcomes, strict=True):
                if future.done():
                    continue
                if ok:
                    future.set_result(value)
                else:
                    future.set_exception(value)

    def _urgent_waits(self) -> bool:
        """Read by the writer thread between two writes of a group (a list's length: no lock needed)."""
        return bool(self._urgent)

    def _timed(self, kind: str, fn: Callable[..., T], *args: object, **kwargs: object) -> T:
        started = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            metrics.DB_TRANSACTIONS.labels(kind).inc()
            metrics.DB_SECONDS.labels(kind).observe(time.perf_counter() - started)

    def guarded(self, fn: Callable[Concatenate[Session, P], T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run a query on this thread's connection, with database errors told plainly."""
        database = self.session.database
        try:
            database.connect(reuse_if_open=True)  # each thread keeps its connection between calls
            self._check_file()
            return self._timed("write" if getattr(fn, "writes", False) else "read", fn, self.session, *args, **kwargs)
        except BROKEN as e:
            # Disk full, read-only file, locked past the busy timeout: say so, with the first
            # error (a failed rollback after "disk is full" is only its echo).
            root: BaseException = e
            while root.__context__ is not None:
                root = root.__context__
            self._reset_connection()
            raise StorageError(f"database error: {root}") from e

    def _check_file(self) -> None:
        """Refuse to go on when the SQLite file was removed or replaced: what is written would be lost."""
        if self._file is None:
            return
        now = checkpoint.file_identity(self._file)
        if self._file_id is None and now is not None:
            self._file_id = now
        if now is None or now != self._file_id:
            raise StorageError(
                f"the database file {self._file} was removed or replaced while serverprep ran: nothing written "
                "now would be kept; restore it from a backup and restart serverprep"
            )

    def _reset_connection(self) -> None:
        """Start over with a fresh connection: the failed one may hold a broken transaction."""
        try:
            self.session.database.close()
        except peewee.PeeweeException:
            self.session.database._state.reset()  # peewee's way out of a half-closed transaction

    def close(self) -> None:
        def _close(session: Session) -> None:
            if not session.database.is_closed():
                session.database.close()

        if self._checkpointer is not None:
            self._checkpointer.stop()
        for executor in (self._reader, self._writer):
            with contextlib.suppress(RuntimeError):  # already shut down
                executor.submit(_close, self.session).result()
            executor.shutdown(wait=True)


#: Errors that mean the transaction itself is broken (disk full, database gone): every write of
#: the group fails. The log's hot path runs sqlite3 directly, whose errors peewee has not wrapped.
BROKEN = (peewee.OperationalError, peewee.InterfaceError, sqlite3.OperationalError, sqlite3.InterfaceError)

#: Seconds a group of background writes runs before it may stop for an urgent write: an urgent
#: write waits about this long plus one write, and a burst of urgent writes (a thousand
#: ``Prepare`` at once) still leaves the background writes a share of the thread.
CUT_AFTER = 0.005

Batch = list[tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]]
Waiting = tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any], "asyncio.Future[Any]"]


class _BareWriteFailed(Exception):
    """A write marked ``bare`` raised: its group is rolled back and runs again in savepoints."""


def _group(session: Session, batch: Batch, cut: Callable[[], bool] | None = None) -> list[tuple[bool, Any]]:
    """Run writes in one transaction; (ok, result or error) for each, as if each had run alone.

    Each write runs in a savepoint of its own, so that one refusal (a unique index, an active
    preparation) does not undo the others, except those marked ``bare``: they refuse nothing,
    and a savepoint is two statements more, each of which gives the GIL away and waits to get it
    back while the event loop is busy. Should a bare write raise all the same, the transaction is
    rolled back and the group runs again with every write in a savepoint (a lone write is just
    rolled back).

    ``cut``, asked after each write but the last once the group has run for ``CUT_AFTER``, stops
    the group there when it says so: what ran commits, and the outcomes are that many, fewer than
    the writes; the rest did not run. The run again in savepoints is never cut, so that a bare
    write runs at most twice.
    """
    try:
        return _run_group(session, batch, trust_bare=True, cut=cut)
    except _BareWriteFailed as failed:
        if len(batch) == 1:
            return [(False, failed.__cause__)]
    return _run_group(session, batch, trust_bare=False, cut=None)


def _run_group(session: Session, batch: Batch, trust_bare: bool, cut: Callable[[], bool] | None) -> list[tuple[bool, Any]]:
    outcomes: list[tuple[bool, Any]] = []
    cut_from = time.monotonic() + CUT_AFTER
    with write_transaction(session.database):
        for fn, args, kwargs in batch:
            alone = not (trust_bare and getattr(fn, "bare", False))  # in a savepoint of its own
            try:
                with session.database.atomic() if alone else contextlib.nullcontext():
                    outcomes.append((True, fn(session, *args, **kwargs)))
            except BROKEN:
                raise  # the transaction itself is broken: every write of the group fails
            except Exception as e:
                if not alone:
                    raise _BareWriteFailed from e  # leaves the transaction: it rolls back
                outcomes.append((False, e))
            if cut is not None and len(outcomes) < len(batch) and time.monotonic() >= cut_from and cut():
                break  # what ran commits now; the rest waits for the next group
    return outcomes


_group.writes = True  # type: ignore[attr-defined]
