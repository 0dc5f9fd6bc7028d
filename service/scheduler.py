"""Runs preparations as tasks, at most ``max_concurrent`` at once; stops them on Cancel or shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from serverprep.service.domain import Preparation, PrepState, Stream, redactor
from serverprep.service.errors import Cancelled, Internal, Interrupted, ServerprepError, ServiceUnavailable
from serverprep.service.logbus import LogBus
from serverprep.service.runner import PreparationRunner, Run
from serverprep.service.settings import Settings
from serverprep.service.store import Store

log = logging.getLogger(__name__)


class Scheduler:
    def __init__(self, store: Store, bus: LogBus, runner: PreparationRunner, settings: Settings):
        self.store = store
        self.bus = bus
        self.runner = runner
        self.settings = settings
        self.accepting = True
        self._slots = asyncio.Semaphore(settings.max_concurrent)
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._runs: dict[str, Run] = {}

    def require_accepting(self) -> None:
        if not self.accepting:
            raise ServiceUnavailable("serverprep is shutting down and takes no new work")

    def runs_here(self, prep_id: str) -> bool:
        return prep_id in self._tasks

    def launch(self, prep: Preparation) -> None:
        task = asyncio.create_task(self._supervise(prep), name=f"prepare-{prep.id}")
        self._tasks[prep.id] = task
        task.add_done_callback(lambda _t, pid=prep.id: self._tasks.pop(pid, None))

    async def cancel(self, prep_id: str) -> None:
        """Cancel a preparation this process runs, and wait until its end is recorded."""
        task = self._tasks.get(prep_id)
        if task is None:
            return
        self.stop(prep_id, Cancelled)
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.shield(task)

    def stop(self, prep_id: str, reason: type[ServerprepError]) -> None:
        """Cancel a preparation's task, saying why (Cancelled or Interrupted)."""
        run = self._runs.get(prep_id)
        if run:
            run.stop_reason = reason
        task = self._tasks.get(prep_id)
        if task:
            task.cancel()

    async def shutdown(self, grace: float) -> None:
        """Stop taking work; give running preparations ``grace`` seconds, then interrupt them."""
        self.accepting = False
        waiting = [pid for pid, run in self._runs.items() if not run.started]
        for prep_id in waiting:  # not started: they stay PENDING and start after a restart
            self.stop(prep_id, Interrupted)
        running = [t for pid, t in self._tasks.items() if pid not in waiting]
        if running:
            _, still = await asyncio.wait(running, timeout=grace)
            for prep_id, task in list(self._tasks.items()):
                if task in still:
                    self.stop(prep_id, Interrupted)
        if self._tasks:
            await asyncio.wait(list(self._tasks.values()), timeout=self.settings.kill_grace + 10)

    async def _supervise(self, prep: Preparation) -> None:
        server = await self.store.get_server(prep.server)
        journal = self.bus.open(prep.id, prep.last_seq, redactor(server.secrets.values() + prep.options.secrets()))
        run = Run(prep, server, journal)
        self._runs[prep.id] = run
        ended = True
        try:
            if self._slots.locked():
                journal.emit("", Stream.EVENT, f"waiting for a free slot ({self.settings.max_concurrent} preparations run at once)")
            async with self._slots:
                if not self.accepting:
                    run.stop_reason = Interrupted
                    raise asyncio.CancelledError
                run.started = True
                await self.runner.execute(run)
        except asyncio.CancelledError:
            # Cancelled while waiting for a slot, or execute() re-raised after recording the end.
            state = (await self.store.get_preparation(prep.id)).state
            if state is PrepState.PENDING and run.stop_reason is Interrupted:
                journal.emit("", Stream.EVENT, "serverprep is stopping; this preparation stays PENDING and starts when it is back")
                await journal.flush()
                ended = False
            elif state.active:
                reason = run.stop_reason or Cancelled
                await self.runner.finish(run, PrepState.CANCELLED if reason is Cancelled else PrepState.FAILED,
                                         reason.reason, "stopped before it started")
        except Exception:  # never leave a preparation RUNNING because of a bug
            log.exception("preparation %s crashed", prep.id)
            with contextlib.suppress(Exception):
                await self.runner.fail(run, Internal("internal error in serverprep; see the service log"))
        finally:
            self._runs.pop(prep.id, None)
            if run.conn is not None:
                await run.conn.close()
            await self.bus.close(prep.id, ended=ended)
