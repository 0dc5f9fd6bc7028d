"""Retry and the scheduler with the real store and log bus; the runner is a stand-in that plays
one preparation's attempts (what a real one does over SSH is in test_prepare_simulated and the
e2e tests)."""

import asyncio
import time

import pytest

from serverprep.drivers import STEP_NAMES
from serverprep.service.domain import Options, PrepChange, PrepState, Secrets, ServerSpec, Stream
from serverprep.service.errors import NotRetryable
from serverprep.service.logbus import LogBus
from serverprep.service.preparations import Preparations
from serverprep.service.scheduler import Scheduler
from serverprep.service.secretbox import SecretBox
from serverprep.service.settings import Settings
from serverprep.service.store import Store

BOX = SecretBox.from_passphrase("test key")
WEB1 = ServerSpec(name="web1", host="10.0.0.5", port=22, user="admin", secrets=Secrets(), host_key="", accept_new_host_key=True)


class SlowAgent:
    """An agent that takes a while to end, as one does when its shell is still busy."""

    async def close(self) -> None:
        await asyncio.sleep(0.5)


class Attempts:
    """A stand-in runner: the first attempt fails and leaves a slow agent to close; the next ones
    log a line, wait for ``finish``, then succeed. ``began`` keeps what start_running answered."""

    def __init__(self, store: Store):
        self.store = store
        self.settings = Settings(replica="r1")
        self.finish = asyncio.Event()
        self.began: list[bool] = []

    async def execute(self, run) -> None:
        self.began.append(await self.store.start_running(run.prep.id, "r1", time.time()))
        if run.prep.attempt == 1:
            run.agent = SlowAgent()
            await run.journal.announce("preparation FAILED", PrepChange(PrepState.FAILED, time.time(), "STEP_FAILED", "boom"))
            return
        run.journal.emit("install_docker", Stream.STDOUT, f"attempt {run.prep.attempt} output")
        await self.finish.wait()
        await run.journal.announce("preparation SUCCEEDED", PrepChange(PrepState.SUCCEEDED, time.time()))


async def launched(tmp_path, runner_class):
    """A new preparation of web1 launched by a scheduler over the real store and log bus, with a stand-in runner."""
    store = Store(f"sqlite:///{tmp_path / 'serverprep.db'}", BOX)
    await store.migrate()
    await store.create_server(WEB1)
    prep, _ = await store.create_preparation("web1", Options(), "", STEP_NAMES, "r1")
    bus = LogBus(store, keep=100, max_lines=1000, max_bytes=10**6, keep_bytes=1 << 20)
    runner = runner_class(store)
    scheduler = Scheduler(store, bus, runner, runner.settings)  # type: ignore[arg-type]
    scheduler.launch(prep)
    return store, bus, runner, scheduler, prep


async def failed_once(tmp_path):
    store, bus, runner, scheduler, prep = await launched(tmp_path, Attempts)
    preparations = Preparations(store, bus, scheduler, None, runner)  # type: ignore[arg-type]
    while (await store.get_preparation(prep.id)).state is not PrepState.FAILED:
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.1)  # the first attempt's task is closing its agent now
    return store, bus, runner, scheduler, preparations, prep


def test_a_retry_while_the_ended_attempt_still_closes_runs_on_its_own(tmp_path):
    """A Retry is allowed as soon as FAILED is stored, but the ended attempt's task then still
    closes its agent, its connection and its log (up to seconds). Before, the new attempt started
    at once: it was handed the old journal, which the old task then closed (its output was no
    longer stored every 0.2 s, its live readers lost it); the old task's end dropped the new task
    from the scheduler (a Cancel no longer reached it); and the old task's last check found the
    preparation active and recorded the running attempt FAILED ("serverprep lost track"). Now
    Retry waits for the old task to end before it resets the preparation."""

    async def run():
        store, bus, runner, scheduler, preparations, prep = await failed_once(tmp_path)
        try:
            await preparations.retry("web1", prep.id)
            await asyncio.sleep(1.0)  # the old task has ended; the new attempt has logged its line
            middle = (await store.get_preparation(prep.id)).state.value
            followed = scheduler.runs_here(prep.id) and prep.id in bus.journals
            texts = [e.text for e in await store.read_logs(prep.id, 0, 100)]
            runner.finish.set()
            while (await store.get_preparation(prep.id)).state.active:
                await asyncio.sleep(0.01)
            await scheduler.settled(prep.id)
            final = await store.get_preparation(prep.id)
            return middle, followed, texts, runner.began, final.state.value, final.message
        finally:
            store.close()

    middle, followed, texts, began, state, message = asyncio.run(run())
    assert middle == "RUNNING", "the running attempt was recorded as ended"
    assert followed, "the scheduler or the log bus no longer follows the new attempt"
    assert "attempt 2 output" in texts, texts  # stored by its journal's flusher, within 0.2 s
    assert began == [True, True]
    assert (state, message) == ("SUCCEEDED", "")


def test_of_two_retries_at_once_one_wins(tmp_path):
    """Two Retry calls at once (or on two replicas): before, both reset the preparation and both
    launched an attempt of it. Now the reset is conditional on FAILED or CANCELLED: one attempt
    runs, the other caller is told the preparation is not retryable any more."""

    async def run():
        store, bus, runner, scheduler, preparations, prep = await failed_once(tmp_path)
        try:
            outcomes = await asyncio.gather(*(preparations.retry("web1", prep.id) for _ in range(2)), return_exceptions=True)
            runner.finish.set()
            while (await store.get_preparation(prep.id)).state.active:
                await asyncio.sleep(0.01)
            await scheduler.settled(prep.id)
            return outcomes, (await store.get_preparation(prep.id)).attempt, runner.began
        finally:
            store.close()

    outcomes, attempt, began = asyncio.run(run())
    refused = [o for o in outcomes if isinstance(o, BaseException)]
    assert len(refused) == 1 and isinstance(refused[0], NotRetryable), outcomes
    with pytest.raises(NotRetryable, match="is PENDING|is RUNNING"):
        raise refused[0]
    assert attempt == 2 and began == [True, True]


class BrokenAgent:
    async def close(self) -> None:
        raise RuntimeError("a bug in closing the agent")


class ClosedConnection:
    closed = False

    async def close(self) -> None:
        self.closed = True


class FailsWithBrokenAgent(Attempts):
    """A stand-in runner whose attempt fails, leaving an agent that raises when it is closed."""

    async def execute(self, run) -> None:
        self.run, self.conn = run, ClosedConnection()
        run.agent, run.conn = BrokenAgent(), self.conn
        await run.journal.announce("preparation FAILED", PrepChange(PrepState.FAILED, time.time(), "STEP_FAILED", "boom"))


def test_an_agent_that_fails_to_close_still_lets_the_connection_and_the_log_close(tmp_path, caplog):
    """When the task ends, the agent, the connection and the log are each closed whatever the one
    before did. Before, an agent whose close raised left the connection open and the log's journal
    (and its flusher task) in the bus for good. The run keeps neither afterwards."""

    async def run():
        store, bus, runner, scheduler, prep = await launched(tmp_path, FailsWithBrokenAgent)
        try:
            await asyncio.sleep(0)
            await scheduler.settled(prep.id)
            return prep.id in bus.journals, runner.conn.closed, (runner.run.agent, runner.run.conn)
        finally:
            store.close()

    with caplog.at_level("ERROR", logger="serverprep.service.scheduler"):
        followed, closed, kept = asyncio.run(run())
    assert closed, "the connection was left open"
    assert not followed, "the log's journal stayed in the bus"
    assert kept == (None, None)
    assert "could not close the SSH agent of preparation" in caplog.text
