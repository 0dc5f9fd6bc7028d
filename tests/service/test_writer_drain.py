"""The writer thread commits group after group by itself (serverprep.service.store.worker.Worker).

Proves, on real SQLite and PostgreSQL:
- a group queued while another commits is committed while the event loop is blocked: the writer
  does not wait for a pass of the loop between two groups (under load a pass takes tens of
  milliseconds; the first ``Prepare`` after a burst of a thousand waited 82 ms for one);
- a write that runs alone (VACUUM, a migration) asked for while background writes keep coming
  runs after the group that is committing, not after every write queued later;
- a write a client waits for starts the writer at once, without a pass of the loop;
- a background write asked for in the pass of the loop that closes the store is committed, not
  failed; a write asked for after the store is closed fails at once with a ``StorageError`` saying
  so, instead of waiting for good;
- a loop closed before the pass that would have started the writer does not stop later writes.
Every wait has a bound that only a broken mechanism reaches (WAIT).
"""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from harness.gated import WAIT, Held
from serverprep.service.errors import StorageError
from serverprep.service.secretbox import SecretBox
from serverprep.service.store import Store
from serverprep.service.store.database import urgent, writes, writes_alone

BOX = SecretBox.from_passphrase("test key")


def writer_idle(store: Store) -> None:
    """Wait until the writer thread has stopped and no start is due, so that the next write must start
    it (the answer of the write before may reach its caller before the writer has stopped)."""
    deadline = time.monotonic() + WAIT
    while store.worker._draining or store.worker._due is not None:
        assert time.monotonic() < deadline, "the writer never stopped"
        time.sleep(0.001)


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
    held = Held("w1")
    background, alone = held.write(), held.write(lane=writes_alone)

    async def scenario():
        await store.migrate()
        return await held.run(store, group=[(background, "w1")], after=[(alone, "alone"), (background, "w2")])

    try:
        answers = asyncio.run(scenario())
    finally:
        held.gate.set()
        store.close()
    assert answers == ["w1", "alone", "w2"]
    assert held.ran == ["w1", "alone", "w2"]  # before: the writer gave its thread back only once no write waited


def test_a_write_after_close_fails_at_once_saying_so(database_url):
    store = Store(database_url, BOX)
    asyncio.run(store.migrate())
    store.close()
    with pytest.raises(StorageError, match="the database is closed"):
        asyncio.run(asyncio.wait_for(store.worker.call(writes(lambda s: None)), WAIT))


def test_an_urgent_write_starts_the_writer_without_a_pass_of_the_loop(database_url):
    store = Store(database_url, BOX)
    ran = threading.Event()

    @urgent
    @writes
    def client_write(s):
        ran.set()
        return "done"

    async def scenario():
        await store.migrate()
        writer_idle(store)
        task = asyncio.ensure_future(store.worker.call(client_write))
        await asyncio.sleep(0)  # the task has queued its write
        ran_while_blocked = ran.wait(WAIT)  # blocks this loop
        return ran_while_blocked, await asyncio.wait_for(task, WAIT)

    try:
        assert asyncio.run(scenario()) == (True, "done")
    finally:
        store.close()


def test_a_write_asked_for_in_the_pass_that_closes_the_store_is_committed(database_url):
    store = Store(database_url, BOX)

    async def scenario():
        await store.migrate()
        await store.worker.call(writes(lambda s: s.database.execute_sql("CREATE TABLE scratch (name VARCHAR(20))")))
        writer_idle(store)
        task = asyncio.ensure_future(store.worker.call(writes(lambda s: s.database.execute_sql("INSERT INTO scratch VALUES ('kept')"))))
        await asyncio.sleep(0)  # queued; the writer would start in the loop's next pass
        store.close()  # in this pass, as Service.stop does
        return await asyncio.wait_for(task, WAIT)

    asyncio.run(scenario())
    again = Store(database_url, BOX)
    try:
        rows = asyncio.run(again.worker.call(lambda s: [r[0] for r in s.database.execute_sql("SELECT name FROM scratch")]))
    finally:
        again.close()
    assert rows == ["kept"]


def test_a_loop_closed_before_it_started_the_writer_does_not_stop_later_writes(database_url):
    store = Store(database_url, BOX)
    asyncio.run(store.migrate())
    writer_idle(store)
    loop = asyncio.new_event_loop()
    abandoned = loop.create_task(store.worker.call(writes(lambda s: "lost answer")))  # queues; the next pass starts the writer
    loop.call_soon(loop.stop)
    loop.run_forever()  # one pass: the write is queued, the pass that would start the writer never comes
    loop.close()
    with pytest.raises(asyncio.InvalidStateError):  # its answer can no longer come: closed here, not at exit
        abandoned.get_coro().close()
    answers: list[str] = []
    later = threading.Thread(target=lambda: answers.append(asyncio.run(store.worker.call(writes(lambda s: "later")))), daemon=True)
    later.start()
    later.join(WAIT)  # in a thread: a write that waits for good cannot be cancelled (it runs to its end)
    try:
        assert answers == ["later"], "a later write waited for good"
    finally:
        store.close()
