"""The worker threads every query runs on: reads beside, writes in group commits with an urgent lane."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

import peewee

from serverprep.service import metrics
from serverprep.service.aio import run_to_end
from serverprep.service.errors import StorageError
from serverprep.service.store import checkpoint
from serverprep.service.store.database import BROKEN, Session, write_transaction
from serverprep.service.store.models import db

P = ParamSpec("P")
T = TypeVar("T")

log = logging.getLogger("serverprep.store")


class Worker:
    """Runs blocking queries off the event loop: reads on a reader thread, writes in group commits.

    Writes queue up while the writer thread commits; each commit then takes every write waiting in
    its lane (from every preparation at once) into one transaction, each write in a savepoint of its own so
    that one refusal (a unique index) does not undo the others (hot writes marked ``bare`` go
    without; see ``_group``). A write is reported done only when its transaction has committed.
    The writer thread takes the next group as soon as one has committed, without waiting for the
    event loop to come round, and hands the outcomes to the callers' loops. Writes that must run
    outside a transaction (``writes_alone``: VACUUM, migrations) run there too, one at a time,
    ahead of the background writes. Reads run on their own connection beside (SQLite in WAL mode
    lets them), so a Status does not wait behind the writes. A call always runs to its end: if
    the awaiting task is cancelled meanwhile, the cancellation waits for it, so that what the task
    believes was stored is what was stored.

    The writes in groups wait in two queues: those marked ``urgent`` (a client's call awaits them
    or, for the end of a preparation, may act on it at once) and the background writes (steps'
    changes, output, heartbeats). Waiting urgent writes commit first, in a group of their own.
    A group of background writes that is running when an urgent write arrives stops once it has
    run for ``CUT_AFTER`` and finished its current write; what ran commits, and the rest go back
    to the head of their queue, in order, after the urgent group. So a ``Prepare`` waits for a
    few milliseconds of writes, not for a group of hundreds from a thousand running
    preparations. After an urgent group, the other lanes go first if they wait, so that a stream
    of urgent writes still leaves the background writes a share of the thread.
    """

    def __init__(self, session: Session):
        self.session = session
        db.initialize(session.database)
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="serverprep-db-write")
        self._reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="serverprep-db-read")
        self._lock = threading.Lock()  # the three queues and the drain's state, shared by loops and the writer thread
        self._urgent: list[Waiting] = []  # writes a client's call awaits: committed first
        self._alone: list[Waiting] = []  # writes that run outside any transaction (VACUUM, migrations), one at a time
        self._waiting: list[Waiting] = []  # background writes, in the order they came
        self._draining = False  # a drain is submitted to the writer thread, or runs there
        self._due: asyncio.AbstractEventLoop | None = None  # the loop whose next pass will start a drain
        self._after_urgent = False  # the last group was urgent: background or alone writes waiting go next
        path = getattr(session.database, "database", "")
        # SQLite: the file this process opened, to notice when it is deleted or replaced under it.
        self._file = Path(path) if isinstance(session.database, peewee.SqliteDatabase) and path != ":memory:" else None
        self._file_id: tuple[int, int] | None = None
        self._checkpointer = checkpoint.Checkpointer(self._file, checkpoint.CHECKPOINT_INTERVAL) if self._file is not None else None

    async def call(self, fn: Callable[Concatenate[Session, P], T], *args: P.args, **kwargs: P.kwargs) -> T:
        loop = asyncio.get_running_loop()
        kind = getattr(fn, "writes", False)
        if not kind:
            return await run_to_end(loop.run_in_executor(self._reader, functools.partial(self.guarded, fn, *args, **kwargs)))
        future: asyncio.Future[T] = loop.create_future()
        background = kind is True and not getattr(fn, "urgent", False)
        lane = self._waiting if background else self._urgent if kind is True else self._alone
        with self._lock:
            lane.append((fn, args, kwargs, future))
            if self._draining or (background and self._due is loop):
                start = None  # the drain running takes it, or the start due in this loop's next pass
            elif background and self._due is None:
                # In the loop's next pass: the background writes asked for in this one (a gather's) make
                # one group. A write a client waits for starts the drain at once.
                start, self._due = loop.call_soon, loop
            else:
                start = _now
        if start is not None:
            start(self._start_drain)
        return await run_to_end(future)

    def _start_drain(self) -> None:
        with self._lock:
            self._due = None
            if self._draining:
                return
            self._draining = True
        try:
            self._writer.submit(self._drain)
        except RuntimeError as e:  # closed: nothing will run them
            self._fail_waiting(StorageError(f"the database is closed: {e}"))

    def _drain(self) -> None:
        """On the writer thread: commit until nothing waits, each write answered as its group commits.

        The next group starts at once, without waiting for the event loop to come round (under load a
        pass of it takes tens of milliseconds); the answers reach each caller's loop thread-safely.
        """
        try:
            while self._commit_next():
                pass
        except BaseException as e:  # a fault of this code: no later write may wait for good
            log.exception("the database writer failed; the writes waiting fail with it")
            self._fail_waiting(StorageError(f"the database writer failed: {e!r}"))

    def _commit_next(self) -> bool:
        """Commit what comes next: the urgent writes, else one write that runs alone, else the background
        writes; after an urgent group, what else waits goes first, so that each lane gets its turn."""
        with self._lock:
            urgent = bool(self._urgent) and not (self._after_urgent and (self._alone or self._waiting))
            if urgent:
                batch, self._urgent, cut = self._urgent, [], None
            elif self._alone:
                batch, cut = [self._alone.pop(0)], None
            elif self._waiting:
                batch, self._waiting, cut = self._waiting, [], self._urgent_waits
            else:
                self._draining = False
                return False
            self._after_urgent = urgent
        outcomes: list[tuple[bool, Any]] = []
        try:
            fn, args, kwargs, _ = batch[0]
            if getattr(fn, "writes", False) == "alone":
                outcomes = [(True, self.guarded(fn, *args, **kwargs))]
            else:
                outcomes = self.guarded(_group, [(f, a, k) for f, a, k, _ in batch], cut)
        except BaseException as e:  # the transaction failed as a whole (disk full, database gone), or the alone write
            outcomes = [(False, e)] * len(batch)
        finally:
            if len(outcomes) < len(batch):
                with self._lock:
                    self._waiting[:0] = batch[len(outcomes):]  # cut short for an urgent write: next after it
            _answer(batch[: len(outcomes)], outcomes)
        return True

    def _fail_waiting(self, error: BaseException) -> None:
        with self._lock:
            batch = [*self._urgent, *self._alone, *self._waiting]
            self._urgent, self._alone, self._waiting, self._draining = [], [], [], False
        _answer(batch, [(False, error)] * len(batch))

    def _urgent_waits(self) -> bool:
        """Asked by the writer thread between two writes of a group (a list's length: no lock needed)."""
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

        if self._due is not None:
            self._start_drain()  # writes asked for in this pass of the loop are committed before it closes
        if self._checkpointer is not None:
            self._checkpointer.stop()
        for executor in (self._reader, self._writer):
            with contextlib.suppress(RuntimeError):  # already shut down
                executor.submit(_close, self.session).result()
            executor.shutdown(wait=True)


def _now(start: Callable[[], None]) -> None:
    start()


def _answer(batch: list[Waiting], outcomes: list[tuple[bool, Any]]) -> None:
    """Hand each write's outcome to its caller's event loop (from any thread), once per loop."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], tuple[bool, Any]]]] = {}
    for (_, _, _, future), outcome in zip(batch, outcomes, strict=True):
        by_loop.setdefault(future.get_loop(), []).append((future, outcome))
    for loop, settled in by_loop.items():
        with contextlib.suppress(RuntimeError):  # its loop is closed: nobody waits for these any more
            loop.call_soon_threadsafe(_settle, settled)


def _settle(settled: list[tuple[asyncio.Future[Any], tuple[bool, Any]]]) -> None:
    for future, (ok, value) in settled:
        if future.done():
            continue
        if ok:
            future.set_result(value)
        elif isinstance(value, StopIteration):  # a future refuses it
            future.set_exception(RuntimeError(f"a database query raised {value!r}"))
        else:
            future.set_exception(value)


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
