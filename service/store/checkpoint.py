"""The SQLite WAL copied back into the database file beside the writer, not in its commits."""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
import time
from pathlib import Path

from serverprep.service import metrics

log = logging.getLogger("serverprep.store")

#: Pages the WAL may grow to before a commit copies it back into the database itself. SQLite's
#: default, 1000 (4 MiB), made every ~165th commit of a busy service wait 15-45 ms for that copy
#: and its two fsyncs, and every write queued behind it too (bench/README.md, eleventh round). The
#: Checkpointer does the copying beside the writer; this is the bound for when it falls behind.
WAL_PAGES = 16384
#: Seconds between the Checkpointer's passes.
CHECKPOINT_INTERVAL = 0.5


class Checkpointer:
    """Copies the WAL of the SQLite database at ``path`` back into it every ``interval`` s, on a
    thread and a connection of its own, so that the writer's commits do not.

    A passive checkpoint takes no lock that a reader or the writer waits for, and waits for none:
    the writer goes on appending to the WAL meanwhile (its fsyncs do slow the commits beside them a
    little). The WAL starts over from its beginning at the first commit after a pass that copied
    all of it; should the passes never catch up, the WAL grows to WAL_PAGES, where a commit
    checkpoints what is left, as SQLite would. A pass that fails (a full disk) is logged, once
    until one works again. It opens the file only for reading and writing, never creating it, and
    not when another file took its place (the writer refuses to go on then, and says why).
    """

    def __init__(self, path: Path, interval: float):
        self._path = path.resolve()
        self._file = file_identity(self._path)
        self._interval = interval
        self._connection: sqlite3.Connection | None = None
        self._stop = threading.Event()
        self._failing = False
        self._thread = threading.Thread(target=self._run, name="serverprep-db-checkpoint", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stop.wait(self._interval):
                self.checkpoint()
        finally:
            self._close()

    def checkpoint(self) -> None:
        started = time.perf_counter()
        try:
            if self._connection is None:
                if file_identity(self._path) != self._file:
                    return  # removed or replaced: not ours to write into
                self._connection = _connect(self._path)
            self._connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except (sqlite3.Error, OSError) as e:
            if not self._failing:
                log.warning("copying the SQLite WAL back into the database failed (tried again every %g s): %s", self._interval, e)
            self._failing = True
            self._close()
            return
        finally:
            metrics.DB_TRANSACTIONS.labels("checkpoint").inc()
            metrics.DB_SECONDS.labels("checkpoint").observe(time.perf_counter() - started)
        if self._failing:
            log.info("copying the SQLite WAL back into the database works again")
        self._failing = False

    def _close(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(sqlite3.Error):
                self._connection.close()
            self._connection = None

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def _connect(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"{path.as_uri()}?mode=rw", uri=True, check_same_thread=False)  # rw: never creates it


def file_identity(path: Path) -> tuple[int, int] | None:
    """(device, inode) of the file at ``path``, None when there is none: a file replaced there has another."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_dev, st.st_ino
