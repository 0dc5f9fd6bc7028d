"""Back-pressure from the log to the SSH channels: the budget of entries waiting to be stored
(``--max-unstored-bytes``), end to end inside the service. The pump's side is in test_store
(the real line reader against a gated store); here the step runner's wiring and the budget's
rules, with stand-ins named as such."""

import asyncio
import re
from types import SimpleNamespace

import pytest

from serverprep.drivers import StepPlan
from serverprep.drivers.commands import Command
from serverprep.service.budgets import Backlog
from serverprep.service.domain import Server, StepState, Stream
from serverprep.service.lines import per_line
from serverprep.service.logbus import LogBus
from serverprep.service.settings import Settings
from serverprep.service.steps import Agent, RemoteProcess, StepRunner

SERVER = Server(id=1, name="web1", host="10.0.0.5", port=22, user="admin", host_key="", accept_new_host_key=True, created_at=0.0)


class FakeSession:
    """Stands in for an agent's SSH session: what is written is kept, lines are fed by the test."""

    def __init__(self) -> None:
        self.on_lines = None
        self.written: list[str] = []
        self.ended = asyncio.get_running_loop().create_future()
        self.conn = SimpleNamespace(is_closed=lambda: False)

    def write(self, text: str) -> None:
        self.written.append(text)


@pytest.mark.parametrize("together", [True, False], ids=["a read at once", "line by line"])
def test_the_step_runner_hands_the_logs_hold_to_the_line_reader(together):
    """What the log returns for lines of command output (a hold when its backlog is full) must
    reach the reader of the SSH channel, which awaits it; serverprep's own marker lines are never
    held. The lines of one read go to the log at once (``Run.emit_lines``) or, through
    ``lines.per_line``, one by one."""

    async def run():
        session = FakeSession()
        agent = Agent(session, "::agent::", {}, privileged=True)  # type: ignore[arg-type]
        held = asyncio.get_running_loop().create_future()
        logged = []

        def emit(stream, text):
            logged.append((stream, text))
            return held if stream is not Stream.EVENT else None

        def emit_lines(stream, texts):
            logged.extend((stream, text) for text in texts)
            return held

        async def record(pid, marker):
            pass

        step = StepPlan("install_docker", commands=[Command(("apt-get", "install", "-y", "docker.io"))])
        running = asyncio.create_task(StepRunner(Settings()).run(agent, step, SERVER, 10, emit, RemoteProcess(), record,
                                                                 emit_lines if together else per_line(emit)))
        while not session.written:
            await asyncio.sleep(0)
        marker = re.search(r"^M=(\S+)$", session.written[0], re.M).group(1)
        answers = [
            session.on_lines(Stream.STDOUT, [f"{marker} start 4242", f"{marker} run 0"]),
            session.on_lines(Stream.STDOUT, ["Get:1 http://deb.debian.org/debian bookworm/main amd64 docker.io"]),
            session.on_lines(Stream.STDERR, ["W: a warning"]),
            session.on_lines(Stream.STDOUT, ["::agent:: done 0"]),
        ]
        result = await running
        return answers, held, result.state, logged

    answers, held, state, logged = asyncio.run(run())
    assert answers == [None, held, held, None]
    assert state is StepState.SUCCEEDED
    assert [text for stream, text in logged if stream is not Stream.EVENT] == [
        "Get:1 http://deb.debian.org/debian bookworm/main amd64 docker.io", "W: a warning"]


def test_readers_held_first_are_not_overtaken():
    """Once the budget is full, every reader waits until the database has caught up to half of it:
    one that asks in between (the backlog a little under the budget) waits too, instead of reading
    on while those held before it still wait."""

    async def run():
        backlog = Backlog(1000)
        backlog.add(1000)
        first = backlog.hold()
        backlog.remove(300)  # 700: under the budget, over half of it
        second = backlog.hold()
        state = (first is not None, second is not None, first.done())
        backlog.remove(300)  # 400: half caught up
        await asyncio.sleep(0)
        return state, first.done(), second.done(), backlog.hold()

    assert asyncio.run(run()) == ((True, True, False), True, True, None)


def test_a_journal_whose_flusher_died_still_gives_its_share_back():
    """A flusher stopped by an unexpected error (not a storage error) kept retrying nothing: its
    journal's entries stayed counted, and closing it re-raised that error before giving them back,
    so every other preparation's output could be held for ever. The flusher now logs and retries
    any error, and a journal gives its share back however its close ends."""

    class Broken:
        async def append_logs(self, prep_id, entries, changes=()):
            raise RuntimeError("a bug in the store")

    async def run():
        bus = LogBus(Broken(), keep=100, max_lines=10**6, max_bytes=10**9, keep_bytes=1 << 20, backlog_bytes=1 << 20)
        journal = bus.open("p1", 0, lambda text: text)
        for i in range(6000):
            journal.emit("install_docker", Stream.STDOUT, f"line {i}")
        await asyncio.sleep(0.3)  # the flusher has tried (and failed) at least once
        flusher_alive = not journal._flusher.done()
        with pytest.raises(RuntimeError):
            await bus.close("p1")
        return flusher_alive, bus.backlog.size, journal.closed

    assert asyncio.run(run()) == (True, 0, True)
