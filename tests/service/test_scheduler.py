"""The scheduler with the real store and log bus; the runner is a stand-in that plays one
preparation's ends (what a real one does over SSH is in test_prepare_simulated and the e2e tests)."""

import asyncio
import time

from serverprep.drivers import STEP_NAMES
from serverprep.service.domain import Options, PrepChange, PrepState, Secrets, ServerSpec, Stream
from serverprep.service.logbus import LogBus
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
    """A stand-in runner: the first attempt fails and leaves a slow agent to close; the second logs
    a line, waits for ``finish``, then succeeds."""

    def __init__(self, store: Store):
        self.store = store
        self.finish = asyncio.Event()

    async def execute(self, run) -> None:
        await self.store.start_running(run.prep.id, "r1", time.time())
        if run.prep.attempt == 1:
            run.agent = SlowAgent()
            await run.journal.announce("preparation FAILED", PrepChange(PrepState.FAILED, time.time(), "STEP_FAILED", "boom"))
            return
        run.journal.emit("install_docker", Stream.STDOUT, "second attempt output")
        await self.finish.wait()
        await run.journal.announce("preparation SUCCEEDED", PrepChange(PrepState.SUCCEEDED, time.time()))


def test_a_retry_while_the_ended_attempt_still_closes_runs_on_its_own(tmp_path):
    """A Retry is allowed as soon as FAILED is stored, but the ended attempt's task then still
    closes its agent, its connection and its log (up to seconds). Before, the new attempt started
    at once: it was handed the old journal, which the old task then closed (its output was no
    longer stored every 0.2 s, its live readers no longer followed it); the old task's end dropped
    the new task from the scheduler (a Cancel no longer reached it); and the old task's last check
    found the preparation active and recorded the new attempt FAILED ("serverprep lost track").
    Now the new attempt waits for the old task to end."""
    store = Store(f"sqlite:///{tmp_path / 'serverprep.db'}", BOX)

    async def run() -> tuple[bool, list[str], str, str]:
        await store.migrate()
        await store.create_server(WEB1)
        prep, _ = await store.create_preparation("web1", Options(), "", STEP_NAMES, "r1")
        bus = LogBus(store, keep=100, max_lines=1000, max_bytes=10**6, keep_bytes=1 << 20)
        runner = Attempts(store)
        scheduler = Scheduler(store, bus, runner, Settings(replica="r1"))  # type: ignore[arg-type]
        scheduler.launch(prep)
        while (await store.get_preparation(prep.id)).state is not PrepState.FAILED:
            await asyncio.sleep(0.01)
        scheduler.launch(await store.reset_for_retry(prep.id, "r1"))  # what Preparations.retry does
        await asyncio.sleep(1.0)  # the old task has ended; the new attempt has logged its line
        followed = scheduler.runs_here(prep.id)
        texts = [e.text for e in await store.read_logs(prep.id, 0, 100)]
        runner.finish.set()
        while (await store.get_preparation(prep.id)).state.active:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.2)
        final = await store.get_preparation(prep.id)
        return followed, texts, final.state.value, final.message

    try:
        followed, texts, state, message = asyncio.run(run())
    finally:
        store.close()
    assert followed, "the scheduler no longer knows the task of the new attempt"
    assert "second attempt output" in texts, texts  # stored by the flusher, within 0.2 s
    assert (state, message) == ("SUCCEEDED", "")
