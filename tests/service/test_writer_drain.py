"""The writer thread commits group after group by itself (serverprep.service.store.worker.Worker).

Proves, on real SQLite and PostgreSQL:
- a group queued while another commits is committed while the event loop is blocked: the writer
  does not wait for a pass of the loop between two groups (under load a pass takes tens of
  milliseconds; the first ``Prepare`` after a burst of a thousand waited 82 ms for one);
- a write that runs alone (VACUUM, a migration) asked for while background writes keep coming
  runs after the group that is committing, not after every write queued later;
- a write asked for after the store is closed fails at once with a ``StorageError`` saying so,
  instead of waiting for good.
Every wait has a bound that only a broken mechanism reaches (WAIT).
"""

from __future__ import annotations

import asyncio
import threading

import pytest

from serverprep.service.errors import StorageError
from serverprep.service.secretbox import SecretBox
from serverprep.service.store import Store
from serverprep.service.store.database import writes, writes_alone

BOX = SecretBox.from_passphrase("test key")
WAIT = 30


def test_the_next_group_commits_while_the_event_loop_is_blocked(database_url):
    store = Store(database_url, BOX)
    gate, started, second_ran = threading.Event(), threading.Event(), threading.Event()

    @writes
    def first(s):
        started.set()
        assert gate.wait(WAIT)
        return "first"

    @writes
    def second(s):
        second_ran.set()
        return "second"

    async def scenario():
        await store.migrate()
        one = asyncio.ensure_future(store.worker.call(first))
        try:
            assert await asyncio.to_thread(started.wait, WAIT)
            two = asyncio.ensure_future(store.worker.call(second))
            await asyncio.sleep(0)  # queued while the first group runs: the next group
        finally:
            gate.set()
        ran_while_blocked = second_ran.wait(WAIT)  # blocks this loop: nothing on it runs meanwhile
        return ran_while_blocked, await asyncio.wait_for(asyncio.gather(one, two), WAIT)

    try:
        ran_while_blocked, answers = asyncio.run(scenario())
    finally:
        gate.set()
        store.close()
    assert ran_while_blocked  # with a committer task on the loop, the second group waits for the loop
    assert answers == ["first", "second"]


def test_a_write_that_runs_alone_goes_after_the_group_committing_not_after_later_writes(database_url):
    store = Store(database_url, BOX)
    ran: list[str] = []
    gate, started = threading.Event(), threading.Event()

    @writes
    def background(s, name):
        ran.append(name)
        if name == "w1":
            started.set()
            assert gate.wait(WAIT)
        return name

    @writes_alone
    def alone(s):
        ran.append("alone")
        return "alone"

    async def scenario():
        await store.migrate()
        first = asyncio.ensure_future(store.worker.call(background, "w1"))
        try:
            assert await asyncio.to_thread(started.wait, WAIT)
            rest = [asyncio.ensure_future(store.worker.call(alone)), asyncio.ensure_future(store.worker.call(background, "w2"))]
            await asyncio.sleep(0)
        finally:
            gate.set()
        return await asyncio.wait_for(asyncio.gather(first, *rest), WAIT)

    try:
        answers = asyncio.run(scenario())
    finally:
        gate.set()
        store.close()
    assert answers == ["w1", "alone", "w2"]
    assert ran == ["w1", "alone", "w2"]  # before: the writer gave its thread back only once no write waited


def test_a_write_after_close_fails_at_once_saying_so(database_url):
    store = Store(database_url, BOX)
    asyncio.run(store.migrate())
    store.close()
    with pytest.raises(StorageError, match="the database is closed"):
        asyncio.run(asyncio.wait_for(store.worker.call(writes(lambda s: None)), WAIT))
