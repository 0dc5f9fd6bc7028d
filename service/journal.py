"""The log of one running preparation: entries numbered, redacted, stored in batches, kept for live readers."""

from __future__ import annotations

import asyncio
import bisect
import itertools
import logging
import time
from collections.abc import Awaitable, Callable

from serverprep.service import metrics
from serverprep.service.aio import run_to_end
from serverprep.service.budgets import Backlog, OutputBudget
from serverprep.service.domain import MAX_LINE, LogEntry, PrepChange, PrepState, StepChange, StepState, Stream
from serverprep.service.errors import ServerprepError
from serverprep.service.store import Store

log = logging.getLogger(__name__)

FLUSH_INTERVAL = 0.2
#: Pending entries that are stored at once, without waiting for the rest of FLUSH_INTERVAL: a
#: command that prints fast fills a batch long before the interval ends. (Half the window's
#: text budget pending does the same, so that long lines cannot pile up unstored.)
FLUSH_EARLY = 2000
#: What an entry waiting to be stored costs beyond its text (its LogEntry, the str, its row), roughly.
ENTRY_BYTES = 200


def _storable(redact: Callable[[str], str]) -> Callable[[str], str]:
    """``redact``, then a NUL character shown as U+FFFD (as invalid UTF-8 already is): PostgreSQL
    cannot store NUL in text, and one such line must not stop a preparation's log from being stored."""

    def clean(text: str) -> str:
        text = redact(text)
        return text.replace("\x00", "\ufffd") if "\x00" in text else text

    return clean


class Journal:
    """The log of one active preparation."""

    def __init__(self, prep_id: str, store: Store, last_seq: int, redact: Callable[[str], str], budget: OutputBudget, keep: int,
                 keep_bytes: int, backlog: Backlog | None = None):
        self.prep_id = prep_id
        #: Shared by the journals of a LogBus; a journal on its own has one without a limit.
        self.backlog = backlog or Backlog(1 << 62)
        self.store = store
        self.seq = last_seq
        self.redact = _storable(redact)
        self.budget = budget
        self._reported = 0
        self.pending: list[LogEntry] = []
        #: Changes whose write failed: stored with the next batch, where their events still are.
        self.unstored: list[StepChange | PrepChange] = []
        self.pending_chars = 0
        #: The newest entries (up to ``keep`` of them and ``keep_bytes`` characters of text, and every
        #: one not stored yet), for live readers: one list for all of them, so a reader that does not
        #: read costs no memory, and one whose entries left the window reads them from the database.
        #: With no live reader it holds only what is not stored yet (see ``reader_left``).
        self.window: list[LogEntry] = []
        #: Live readers following this journal (``LogBus.follow``).
        self.readers = 0
        self.window_first = last_seq + 1
        self.window_chars = 0
        self.keep = keep
        self.keep_bytes = keep_bytes
        self._trim_at = 2 * keep
        self._trim_chars_at = 2 * keep_bytes
        self.stored = last_seq
        #: Resolved when entries arrive or the journal ends; made anew when a reader waits again.
        self._changed: asyncio.Future[None] | None = None
        self.closed = False
        #: True when the preparation ended (not when the service stops with it still to run).
        self.ended = False
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._full = asyncio.Event()
        self._flusher = asyncio.create_task(self._flush_loop(), name=f"flush-{prep_id}")

    def emit(
        self,
        step: str,
        stream: Stream,
        text: str,
        *,
        step_state: StepState | None = None,
        prep_state: PrepState | None = None,
    ) -> LogEntry | None:
        """Number, store (in the next flush) and send an entry; command output past the
        preparation's budget is counted instead (serverprep's own events always pass)."""
        return self._emit(step, stream, self.redact(text[:MAX_LINE]), step_state, prep_state)

    def _emit(self, step: str, stream: Stream, text: str, step_state: StepState | None = None,
              prep_state: PrepState | None = None) -> LogEntry | None:
        if stream is not Stream.EVENT and not self.budget.admit(text):
            if self.budget.dropped_lines == 1:
                b = self.budget
                self.emit(step, Stream.EVENT, f"output limit reached: this preparation stored {b.lines} lines and {b.bytes} "
                          f"bytes of output (limits {b.max_lines} lines, {b.max_bytes} bytes); further output is not stored")
            return None
        self.seq += 1
        entry = LogEntry(
            seq=self.seq,
            time=time.time(),
            step=step,
            stream=stream,
            text=text,
            step_state=step_state,
            prep_state=prep_state,
        )
        self.pending.append(entry)
        self.window.append(entry)
        self._added(1, len(text))
        return entry

    def emit_lines(self, step: str, stream: Stream, texts: list[str]) -> int:
        """Emit lines of command output in order, as :meth:`emit` would one by one, and stop after
        the one that fills the backlog (as a reader would, awaiting :meth:`hold` after each line):
        how many were taken. The log's hot path: the lines of one read go in together, their
        redaction, budget and numbering done for all at once when none needs a line of its own."""
        if not texts:
            return 0
        block = "\n".join(texts)
        if max(map(len, texts)) > MAX_LINE or self.redact(block) != block:
            texts = [self.redact(t[:MAX_LINE]) for t in texts]  # a secret or a NUL is in there: line by line
            block = "\n".join(texts)
        room = self.backlog.room()
        n = len(texts)
        if room < len(block) + n * ENTRY_BYTES:  # only then count line by line where the budget fills
            n = min(n, bisect.bisect_left(list(itertools.accumulate(len(t) + ENTRY_BYTES for t in texts)), room) + 1)
            texts = texts[:n]
            block = "\n".join(texts)
        if not self.budget.admit_all(block, n):
            for text in texts:  # at the preparation's output limit: which lines still pass, one by one
                self._emit(step, stream, text)
            return n
        now, first = time.time(), self.seq + 1
        self.seq += n
        entries = [LogEntry(seq, now, step, stream, text) for seq, text in zip(range(first, first + n), texts, strict=True)]
        self.pending.extend(entries)
        self.window.extend(entries)
        self._added(n, len(block) - n + 1)
        return n

    def _added(self, n: int, chars: int) -> None:
        """``n`` entries with ``chars`` characters of text were appended to pending and the window."""
        self.window_chars += chars
        if len(self.window) > self._trim_at or self.window_chars > self._trim_chars_at:
            self._trim()
        self.wake_readers()
        self.pending_chars += chars
        self.backlog.add(chars + ENTRY_BYTES * n)
        if len(self.pending) == n:
            self._wake.set()  # the flusher stores everything that arrives within FLUSH_INTERVAL
        if len(self.pending) >= FLUSH_EARLY or self.pending_chars >= self.keep_bytes // 2:
            self._full.set()  # ... or as soon as a batch is full (in entries, or in text: long lines)

    def _trim(self) -> None:
        """Forget the oldest entries beyond ``keep`` entries and ``keep_bytes`` characters, but never
        one that is not stored yet."""
        stored = self.stored - self.window_first + 1  # the window's first entries that are stored
        cut = max(0, min(len(self.window) - self.keep, stored))
        freed = sum(len(e.text) for e in self.window[:cut])
        while cut < stored and self.window_chars - freed > self.keep_bytes:
            freed += len(self.window[cut].text)
            cut += 1
        if cut > 0:
            del self.window[:cut]
            self.window_first += cut
            self.window_chars -= freed
        # Next time when half a window more has come (not at every entry while the database catches up).
        self._trim_at = len(self.window) + max(self.keep // 2, 1)
        self._trim_chars_at = self.window_chars + max(self.keep_bytes // 2, 1)

    def hold(self) -> Awaitable[None] | None:
        """What a reader of command output awaits before it reads on (None: read on)."""
        return self.backlog.hold()

    def reader_came(self) -> None:
        self.readers += 1

    def reader_left(self) -> None:
        self.readers -= 1
        if not self.readers:
            self._forget_stored()

    def _forget_stored(self) -> None:
        """Without a live reader, stored entries leave the window at once: a reader that comes later
        reads them from the database. (Kept until a trim, they cost a running preparation up to
        ``keep_bytes`` of memory each, whether anybody reads them or not.)"""
        cut = self.stored - self.window_first + 1
        if cut <= 0:
            return
        self.window_chars -= sum(len(e.text) for e in self.window[:cut])
        del self.window[:cut]
        self.window_first += cut

    def since(self, after: int, limit: int) -> list[LogEntry] | None:
        """Entries after ``after`` held in memory (at most ``limit``); None when they are older than
        the window (stored: read them from the database)."""
        if after + 1 < self.window_first:
            return None
        start = after + 1 - self.window_first
        return self.window[start : start + limit]

    def changed(self) -> asyncio.Future[None]:
        """A future that is done when the journal next changes (one for all its live readers)."""
        if self._changed is None:
            self._changed = asyncio.get_running_loop().create_future()
        return self._changed

    def wake_readers(self) -> None:
        if self._changed is not None:
            self._changed.set_result(None)
            self._changed = None

    async def flush(self) -> None:
        """Store pending entries in one transaction.

        A cancellation that arrives meanwhile waits for the write: entries are stored once or kept
        for the next flush, never both.
        """
        await run_to_end(self._flush())

    async def announce(self, text: str, change: StepChange | PrepChange) -> None:
        """Emit the event that announces ``change`` and store the two in one transaction.

        The event is numbered only once the journal's lock is held, so the flusher cannot store it
        ahead of its change: whoever reads a preparation whose last_seq covers the event also reads
        the change (the web gateway, which follows the stream and asks Status, relies on it).
        """
        await run_to_end(self._announce(text, change))

    async def _announce(self, text: str, change: StepChange | PrepChange) -> None:
        async with self._lock:
            if isinstance(change, StepChange):
                self.emit(change.name, Stream.EVENT, text, step_state=change.state)
            else:
                self.emit("", Stream.EVENT, text, prep_state=change.state)
            await self._store([change])

    async def _flush(self) -> None:
        async with self._lock:
            await self._store([])

    async def _store(self, changes: list[StepChange | PrepChange]) -> None:
        """Store the pending entries with the changes they announce; the caller holds the lock."""
        batch, self.pending = self.pending, []
        chars, self.pending_chars = self.pending_chars, 0
        changes, self.unstored = [*self.unstored, *changes], []
        try:
            ends = any(isinstance(change, PrepChange) for change in changes)  # readers have seen it: urgent
            await (self.store.append_logs_ending if ends else self.store.append_logs)(self.prep_id, batch, changes)
            metrics.LOG_LINES.inc(len(batch))
        except BaseException:
            # Nothing is dropped because a write failed, and an event stays with its change: the
            # next write stores both.
            self.pending[:0] = batch
            self.pending_chars += chars
            self.unstored[:0] = changes
            raise
        self.backlog.remove(chars + ENTRY_BYTES * len(batch))
        if batch:
            self.stored = batch[-1].seq
            if not self.readers:
                self._forget_stored()

    def report_dropped(self, step: str) -> None:
        """Say how much output was not stored since the last report (at the end of a step)."""
        b = self.budget
        if b.dropped_lines > self._reported:
            self.emit(step, Stream.EVENT, f"{b.dropped_lines - self._reported} lines of output were not stored (output limit)")
            self._reported = b.dropped_lines

    async def _flush_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            if len(self.pending) < FLUSH_EARLY:
                try:
                    async with asyncio.timeout(FLUSH_INTERVAL):
                        await self._full.wait()
                except TimeoutError:
                    pass
            self._full.clear()
            if self.pending:
                try:
                    await self.flush()
                except Exception as e:  # a flusher that died would leave its entries unstored
                    if isinstance(e, ServerprepError):
                        log.error("cannot store log lines of %s: %s (will retry)", self.prep_id, e)
                    else:
                        log.exception("cannot store log lines of %s (will retry)", self.prep_id)
                    await asyncio.sleep(FLUSH_INTERVAL)  # not at once, however much is pending
                    self._wake.set()

    async def close(self, *, ended: bool = True) -> None:
        """Store what is pending; tell live readers the preparation ended, or (``ended=False``)
        that they should come back later."""
        self._flusher.cancel()
        try:
            try:
                await self._flusher
            except asyncio.CancelledError:
                pass
            if self.pending:
                await self.flush()
        finally:
            # What could not be stored leaves with the journal (it must not hold the others' output),
            # and its live readers are told it ended, whatever happened.
            self.backlog.remove(self.pending_chars + ENTRY_BYTES * len(self.pending))
            self.pending, self.pending_chars = [], 0
            self.closed, self.ended = True, ended
            self.wake_readers()
