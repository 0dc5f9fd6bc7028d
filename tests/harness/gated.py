"""Database writes whose order the test decides: one of them blocks in the writer thread until let go.

>>> held = Held("b1")
>>> background, client_write = held.write(), held.write(urgent)
>>> answers = await held.run(store, group=[(background, "b1"), (background, "b2")], after=[(client_write, "u")])
>>> held.ran   # the order the writer thread ran them in
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

from serverprep.service.store import Store
from serverprep.service.store.database import writes

#: Seconds: only reached when the code under test is broken.
WAIT = 30

Write = Callable[..., Any]


class Held:
    """Writes that record their names in :attr:`ran`; the one named ``name`` blocks until :attr:`gate` is set."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.ran: list[str] = []
        self.started = threading.Event()
        self.gate = threading.Event()

    def write(self, *marks: Callable[[Write], Write], lane: Callable[[Write], Write] = writes) -> Write:
        """A write taking a name, in ``lane`` (``writes`` or ``writes_alone``), with ``marks`` (``urgent``) applied."""

        def write(s: Any, name: str) -> str:
            self.ran.append(name)
            if name == self.name:
                self.started.set()
                assert self.gate.wait(WAIT), f"{name} was never let go"
            return name

        done = lane(write)
        for mark in marks:
            done = mark(done)
        return done

    async def run(self, store: Store, group: list[tuple[Write, str]], after: list[tuple[Write, str]]) -> list[Any]:
        """Ask for ``group`` (its first write is the held one); once that blocks in the writer thread, ask for
        ``after``; then let it go. Every answer, in the order asked for."""
        first = [asyncio.ensure_future(store.worker.call(fn, name)) for fn, name in group]
        try:
            assert await asyncio.to_thread(self.started.wait, WAIT)
            rest = [asyncio.ensure_future(store.worker.call(fn, name)) for fn, name in after]
            await asyncio.sleep(0)  # queued while the held write runs
        finally:
            self.gate.set()  # a failure above must not leave the writer thread waiting
        return await asyncio.wait_for(asyncio.gather(*first, *rest), WAIT)
