"""What the log may hold: one preparation's output budget, and the entries waiting to be stored
across all of them."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import dataclass

from serverprep.service import metrics


class Backlog:
    """Log entries waiting to be stored, across every running preparation, within a budget in bytes.

    Past the budget, readers of command output wait (``hold``) until the database has caught up
    to half of it: the commands then wait on a full SSH channel instead of the service's memory
    growing with everything they print while the database is slow or away. serverprep's own
    events are never held (they are few, and one is written with every step transition).
    """

    def __init__(self, limit: int):
        self.limit = limit
        self.size = 0
        self._below: asyncio.Future[None] | None = None

    def add(self, n: int) -> None:
        self.size += n

    def room(self) -> int:
        """Bytes that may still be added before a reader is held (0 while readers are held)."""
        return 0 if self._below is not None else self.limit - self.size

    def remove(self, n: int) -> None:
        self.size -= n
        if self._below is not None and self.size <= self.limit // 2:
            self._below.set_result(None)
            self._below = None

    def hold(self) -> Awaitable[None] | None:
        """None under the budget; else (and until the database has caught up to half of it, so that
        readers held first are not overtaken) what to await."""
        if self._below is None and self.size < self.limit:
            return None
        if self._below is None:
            self._below = asyncio.get_running_loop().create_future()
            metrics.LOG_HOLDS.inc()
        # Shielded: a reader cancelled while it waits must not cancel the wait of the others.
        return asyncio.shield(self._below)


@dataclass
class OutputBudget:
    """What one preparation may store of its commands' output, and what it has stored."""

    max_lines: int
    max_bytes: int
    lines: int = 0
    bytes: int = 0
    dropped_lines: int = 0
    dropped_bytes: int = 0

    def admit(self, text: str) -> bool:
        size = len(text) if text.isascii() else len(text.encode())
        if self.lines < self.max_lines and self.bytes + size <= self.max_bytes:
            self.lines += 1
            self.bytes += size
            return True
        self.dropped_lines += 1
        self.dropped_bytes += size
        metrics.LOG_LINES_DROPPED.inc()
        return False

    def admit_all(self, block: str, n: int) -> bool:
        """Admit ``n`` lines joined by newlines in ``block`` if all of them fit (else admit none)."""
        size = (len(block) if block.isascii() else len(block.encode())) - (n - 1)
        if self.lines + n <= self.max_lines and self.bytes + size <= self.max_bytes:
            self.lines += n
            self.bytes += size
            return True
        return False
