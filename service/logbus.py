"""Log entries of running preparations: their journals, and readers that follow them live or from the database."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

from serverprep.service import metrics
from serverprep.service.budgets import Backlog, OutputBudget
from serverprep.service.domain import LogEntry
from serverprep.service.errors import PreparationNotFound, ServerprepError, ServiceUnavailable
from serverprep.service.journal import Journal
from serverprep.service.store import Store

#: Entries read (from memory or the database) per batch for a reader.
READ_BATCH = 2000


def _stopping(last: int) -> ServerprepError:
    return ServiceUnavailable(
        f"serverprep is shutting down; reconnect and resume with after_seq={last}",
        metadata={"resume_after_seq": str(last)},
    )


class LogBus:
    def __init__(self, store: Store, keep: int, max_lines: int, max_bytes: int, keep_bytes: int, backlog_bytes: int = 64 << 20):
        self.store = store
        #: Entries waiting to be stored, of every journal: past ``backlog_bytes``, output readers wait.
        self.backlog = Backlog(backlog_bytes)
        metrics.LOG_BACKLOG.set_function(lambda: self.backlog.size)
        #: Entries and characters each running preparation keeps in memory for live readers (a reader
        #: further behind reads the database).
        self.keep = keep
        self.keep_bytes = keep_bytes
        self.max_lines = max_lines
        self.max_bytes = max_bytes
        self.journals: dict[str, Journal] = {}
        self.closing = False

    def open(self, prep_id: str, last_seq: int, redact: Callable[[str], str], stored: tuple[int, int] = (0, 0)) -> Journal:
        """The journal of a preparation that runs here; ``stored`` is the output (lines, bytes) it has stored."""
        journal = self.journals.get(prep_id)
        if journal is None or journal.closed:
            budget = OutputBudget(self.max_lines, self.max_bytes, lines=stored[0], bytes=stored[1])
            journal = Journal(prep_id, self.store, last_seq, redact, budget, self.keep, self.keep_bytes, self.backlog)
            self.journals[prep_id] = journal
        return journal

    async def close(self, prep_id: str, *, ended: bool = True) -> None:
        journal = self.journals.pop(prep_id, None)
        if journal is not None:
            await journal.close(ended=ended)

    def shutdown(self) -> None:
        """End every live stream with a status that says where to resume."""
        self.closing = True
        for journal in self.journals.values():
            journal.wake_readers()

    async def follow(
        self, prep_id: str, after_seq: int, *, follow: bool = True, poll_interval: float = 0.5
    ) -> AsyncIterator[list[LogEntry]]:
        """Entries after ``after_seq``: stored ones first, then live ones until the end.

        A reader takes what it has not seen from the journal's window in memory, or from the
        database when it is further behind than the window: it never misses or repeats an entry,
        is never cut off for being slow, and costs no memory while it does not read. The window
        keeps stored entries only while some reader follows the preparation.
        """
        journal = self.journals.get(prep_id) if follow else None
        last = after_seq
        metrics.LOG_READERS.inc()
        try:
            if journal is None:
                while rows := await self.store.read_logs(prep_id, last, READ_BATCH):
                    last = rows[-1].seq
                    yield rows
                if follow:
                    async for batch in self._poll(prep_id, last, poll_interval):
                        last = batch[-1].seq
                        yield batch
                return
            journal.reader_came()  # from now on the window keeps stored entries for this reader too
            try:
                while True:
                    batch = journal.since(last, READ_BATCH)
                    if batch is None:
                        batch = await self.store.read_logs(prep_id, last, READ_BATCH)
                    if batch:
                        last = batch[-1].seq
                        yield batch
                        continue
                    if journal.closed:
                        if journal.ended:
                            return
                        raise _stopping(last)  # closed for a shutdown before the preparation ended
                    if self.closing:
                        raise _stopping(last)
                    await asyncio.shield(journal.changed())  # shielded: one reader leaving must not cancel it for all
            finally:
                journal.reader_left()
        finally:
            metrics.LOG_READERS.dec()

    async def _poll(self, prep_id: str, last: int, interval: float) -> AsyncIterator[list[LogEntry]]:
        """Follow a preparation this process does not run (another replica, or already over)."""
        while True:
            try:
                prep = await self.store.get_preparation(prep_id)
            except PreparationNotFound:
                return
            while True:
                rows = await self.store.read_logs(prep_id, last, 1000)
                if not rows:
                    break
                last = rows[-1].seq
                yield rows
            if not prep.state.active:
                return
            if self.closing:
                raise _stopping(last)
            journal = self.journals.get(prep_id)
            if journal is not None:
                # It started here meanwhile (e.g. a Retry): switch to live entries.
                async for batch in self.follow(prep_id, last):
                    yield batch
                return
            await asyncio.sleep(interval)
