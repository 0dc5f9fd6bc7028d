"""The SQLite WAL copied back into the database file beside the writer, not in its commits."""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
import time

import peewee

from serverprep.service import metrics

log = logging.getLogger("serverprep.store")

#: Pages the WAL may grow to before a commit copies it back into the database itself. SQLite's
#: default, 1000 (4 MiB), made every ~160th commit of a busy service wait 20-45 ms for that copy
#: and its two fsyncs, and every write queued behind it too (bench/README.md, eleventh round). The
#: Checkpointer does the copying beside the writer; this is the bound for when it falls behind.
WAL_PAGES = 16384
#: Seconds between the Checkpointer's passes.
CHECKPOINT_INTERVAL = 0.5


class Checkpointer:
    """Copies an SQLite database's WAL back into its file every ``interval`` s, on a thread and a
    connection of its own, so that the writer's commits do not.

    A passive checkpoint waits for no reader or writer and makes none wait: the writer goes on
    appending to the WAL meanwhile. The WAL starts over from its beginning at the first commit after
    a pass that copied all of it; under steady writing a pass may never catch up, and the WAL
    grows to WAL_PAGES, where a commit checkpoints it (what is left to copy) as SQLite would.
    A pass that fails (a full disk) is logged, once until one succeeds again; a file removed under
    the service is left alone (the writer refuses to go on, and says why).
    """

    def __init__(self, database: peewee.Database, interval: float):
        self._database = database
        self._interval = interval
        self._stop = threading.Event()
        self._failing = False
        self._thread = threading.Thread(target=self._run, name="serverprep-db-checkpoint", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stop.wait(self._interval):
                self.checkpoint()
        finally:
            with contextlib.suppress(peewee.PeeweeException, sqlite3.Error):
                self._database.close()

    def checkpoint(self) -> None:
        if self._database.is_closed() and not os.path.exists(self._database.database):
            return  # removed under the service (the writer says so): opening it would make a new, empty one
        started = time.perf_counter()
        try:
            self._database.connect(reuse_if_open=True)
            self._database.execute_sql("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except (peewee.PeeweeException, sqlite3.Error) as e:
            if not self._failing:
                log.warning("copying the SQLite WAL back into the database failed (tried again every %g s): %s", self._interval, e)
            self._failing = True
            with contextlib.suppress(peewee.PeeweeException, sqlite3.Error):
                self._database.close()
            return
        if self._failing:
            log.info("copying the SQLite WAL back into the database works again")
        self._failing = False
        metrics.DB_TRANSACTIONS.labels("checkpoint").inc()
        metrics.DB_SECONDS.labels("checkpoint").observe(time.perf_counter() - started)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
