"""Writes a client's call waits for (``urgent``) go ahead of the background writes in the group commit
(serverprep.service.store.worker.Worker).

Proves, on real SQLite and PostgreSQL, with writes that block in the writer thread until the test
lets them go, so that what runs when is decided by the test and not by timing:
- a group of background writes that has run for ``CUT_AFTER`` when an urgent write arrives stops
  after its current write and commits it; the urgent write commits next, alone, and is answered
  while the group's other writes have not run yet; those then run in their order, before a
  background write queued after them, each answered with its own result;
- a group that has not run for ``CUT_AFTER`` is not stopped;
- after an urgent group, the background writes waiting go before the next urgent group;
- the write that ends a preparation, already shown to live readers, is not overtaken by a
  ``Prepare`` for the same server queued after it (which would find the preparation running);
- the queries behind ``Prepare``, ``Retry``, ``Cancel`` (of a preparation no replica runs, or one
  on another replica) and the server calls are the ones marked, with the end of a preparation.
It does not prove how long a ``Prepare`` waits under load: that is bench/fleet.py's probe.
"""

from __future__ import annotations

import asyncio
import threading

import pytest

from harness.gated import WAIT, Held
from serverprep.drivers import STEP_NAMES
from serverprep.service.budgets import OutputBudget
from serverprep.service.domain import Options, PrepChange, PrepState, Secrets, ServerSpec
from serverprep.service.journal import Journal
from serverprep.service.secretbox import SecretBox
from serverprep.service.store import Store, logs, preparations, servers, worker
from serverprep.service.store.database import bare, urgent, writes

BOX = SecretBox.from_passphrase("test key")


def test_a_running_group_stops_for_an_urgent_write_which_commits_next_alone(database_url):
    store = Store(database_url, BOX)
    ran: list[str] = []
    gates = {name: threading.Event() for name in ("b1", "b2")}
    started = {name: threading.Event() for name in ("b1", "b2")}

    def insert(s, name):
        s.database.execute_sql(f"INSERT INTO scratch (name) VALUES ({s.database.param})", (name,))

    @bare
    @writes
    def background(s, name):
        ran.append(name)
        insert(s, name)
        if name in gates:
            started[name].set()
            assert gates[name].wait(WAIT), f"{name} was never let go"
        return name

    @urgent
    @writes
    def client_write(s, name):
        ran.append(name)
        insert(s, name)
        return name

    @writes
    def stored(s):
        return sorted(row[0] for row in s.database.execute_sql("SELECT name FROM scratch"))

    async def seen_from_elsewhere():
        return await store.worker.call(lambda s: sorted(r[0] for r in s.database.execute_sql("SELECT name FROM scratch")))

    async def scenario():
        await store.migrate()
        await store.worker.call(writes(lambda s: s.database.execute_sql("CREATE TABLE scratch (name VARCHAR(20) PRIMARY KEY)")))
        group = [asyncio.ensure_future(store.worker.call(background, name)) for name in ("b1", "b2", "b3")]
        try:
            assert await asyncio.to_thread(started["b1"].wait, WAIT)
            client = asyncio.ensure_future(store.worker.call(client_write, "u"))
            later = asyncio.ensure_future(store.worker.call(background, "b4"))  # queued after the group: runs after its rest
            await asyncio.sleep(worker.CUT_AFTER * 4)  # b1, still running, takes the group past CUT_AFTER
            gates["b1"].set()
            answer = await asyncio.wait_for(asyncio.shield(client), WAIT)
            assert await asyncio.to_thread(started["b2"].wait, WAIT)  # the rest of the group runs again, after it
            visible = await seen_from_elsewhere()  # the reader's connection sees only what committed
            pending = [f.done() for f in group]
        finally:
            for gate in gates.values():  # a failure above must not leave the writer thread waiting
                gate.set()
        answers = await asyncio.wait_for(asyncio.gather(*group, later), WAIT)
        return answer, visible, pending, answers, await store.worker.call(stored)

    try:
        answer, visible, pending, answers, names = asyncio.run(scenario())
    finally:
        store.close()
    assert ran == ["b1", "u", "b2", "b3", "b4"]
    assert answer == "u"
    assert visible == ["b1", "u"]  # b1 committed when the group stopped; b2 is running, not committed
    assert pending == [True, False, False]  # b1 answered with its commit; b2 and b3 not yet
    assert answers == ["b1", "b2", "b3", "b4"]
    assert names == ["b1", "b2", "b3", "b4", "u"]


def test_after_an_urgent_group_the_background_writes_waiting_get_their_turn(database_url):
    """A background write and an urgent one queued while an urgent write commits: the background one
    goes next, so that a stream of urgent writes cannot hold the background writes back for good."""
    store = Store(database_url, BOX)
    held = Held("u1")
    client_write, background = held.write(urgent), held.write()

    async def scenario():
        await store.migrate()
        return await held.run(store, group=[(client_write, "u1")], after=[(background, "b1"), (client_write, "u2")])

    try:
        answers = asyncio.run(scenario())
    finally:
        held.gate.set()
        store.close()
    assert answers == ["u1", "b1", "u2"]
    assert held.ran == ["u1", "b1", "u2"]  # without the turn: u1, u2, b1


def test_a_group_that_has_not_run_for_cut_after_is_not_stopped(database_url, monkeypatch):
    monkeypatch.setattr(worker, "CUT_AFTER", 3600.0)
    store = Store(database_url, BOX)
    held = Held("b1")
    background, client_write = held.write(), held.write(urgent)

    async def scenario():
        await store.migrate()
        return await held.run(store, group=[(background, name) for name in ("b1", "b2", "b3")], after=[(client_write, "u")])

    try:
        answers = asyncio.run(scenario())
    finally:
        held.gate.set()
        store.close()
    assert answers == ["b1", "b2", "b3", "u"]
    assert held.ran == ["b1", "b2", "b3", "u"]


@pytest.mark.parametrize("by", ["store", "journal"])
def test_a_prepare_queued_after_the_end_of_the_last_preparation_finds_it_ended(database_url, by):
    """Live readers see a preparation end before it is stored; a client may send ``Prepare`` at once.
    The end is written by the store's call, or as the runner writes it, by the journal's announce."""
    store = Store(database_url, BOX)
    gate, started = threading.Event(), threading.Event()

    @writes
    def busy(s):
        started.set()
        assert gate.wait(WAIT)

    async def scenario():
        await store.migrate()
        await store.create_server(ServerSpec(name="web1", host="10.0.0.5", port=22, user="admin", secrets=Secrets(password="pw")))
        first, _ = await store.create_preparation("web1", Options(), "", STEP_NAMES, "r1")
        assert await store.start_running(first.id, "r1", 1.0)
        running = asyncio.ensure_future(store.worker.call(busy))  # a group of background writes, running
        try:
            assert await asyncio.to_thread(started.wait, WAIT)
            if by == "store":
                end = asyncio.ensure_future(store.append_logs_ending(first.id, [], [PrepChange(PrepState.SUCCEEDED, 2.0)]))
            else:
                journal = Journal(first.id, store, 0, lambda text: text, OutputBudget(100, 10**6), keep=100, keep_bytes=1 << 20)
                end = asyncio.ensure_future(journal.announce("the preparation succeeded", PrepChange(PrepState.SUCCEEDED, 2.0)))
            await asyncio.sleep(0)
            second = asyncio.ensure_future(store.create_preparation("web1", Options(), "", STEP_NAMES, "r1"))
            await asyncio.sleep(0)
        finally:
            gate.set()
        await asyncio.wait_for(asyncio.gather(running, end), WAIT)
        return first, (await asyncio.wait_for(second, WAIT))[0]

    try:
        first, second = asyncio.run(scenario())
    finally:
        gate.set()
        store.close()
    assert second.id != first.id  # with the end in the background lane: PreparationActive


def test_the_writes_a_client_call_waits_for_are_the_urgent_ones():
    marked = {f"{fn.__module__.rsplit('.', 1)[1]}.{fn.__name__}" for module in (preparations, servers, logs)
              for fn in vars(module).values() if callable(fn) and getattr(fn, "urgent", False)}
    assert marked == {"preparations.create", "preparations.reset_for_retry", "preparations.cancel_pending",
                      "preparations.request_cancel", "servers.create", "servers.update", "servers.delete",
                      "logs.append_ending"}
