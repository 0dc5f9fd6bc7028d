"""Runs preparations as tasks, at most ``max_concurrent`` at once; stops them on Cancel or shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time

from serverprep.service import metrics
from serverprep.service.aio import run_to_end
from serverprep.service.domain import Preparation, PrepChange, PrepState, StepChange, StepState, Stream, redactor
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
        #: Why a task was stopped before its Run existed.
        self._reasons: dict[str, type[ServerprepError]] = {}

    def require_accepting(self) -> None:
        if not self.accepting:
            raise ServiceUnavailable("serverprep is shutting down and takes no new work")

    def runs_here(self, prep_id: str) -> bool:
        return prep_id in self._tasks

    def launch(self, prep: Preparation) -> None:
        task = asyncio.create_task(self._supervise(prep), name=f"prepare-{prep.id}")
        self._tasks[prep.id] = task
        task.add_done_callback(functools.partial(self._forget, prep.id))

    async def settled(self, prep_id: str) -> None:
        """Wait until this process's task for ``prep_id`` (if any) has ended: a preparation's end is
        stored before its task has closed its connection and its log, and a Retry must not start
        the next attempt beside what is left of the last."""
        task = self._tasks.get(prep_id)
        if task is not None and not task.done():
            await asyncio.wait([task])

    def _forget(self, prep_id: str, task: asyncio.Task[None]) -> None:
        if self._tasks.get(prep_id) is task:  # not a later attempt's
            del self._tasks[prep_id]

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
        else:
            self._reasons[prep_id] = reason
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
        """Run one preparation; however the task ends, the preparation's state stays true."""
        run: Run | None = None
        ended = True
        gauge = metrics.ACTIVE.labels("PENDING")
        gauge.inc()
        try:
            run = await run_to_end(self._begin(prep))
            if self._slots.locked():
                run.journal.emit("", Stream.EVENT, f"waiting for a free slot ({self.settings.max_concurrent} preparations run at once)")
            async with self._slots:
                if not self.accepting:
                    run.stop_reason = Interrupted
                    raise asyncio.CancelledError
                run.started = True
                gauge.dec()
                gauge = metrics.ACTIVE.labels("RUNNING")
                gauge.inc()
                await self.runner.execute(run)
        except asyncio.CancelledError:
            # Cancelled while waiting for a slot, or execute() re-raised after recording the end.
            ended = await run_to_end(self._stopped(prep, run))
        except Exception:  # never leave a preparation RUNNING because of a bug
            log.exception("preparation %s crashed", prep.id)
            await run_to_end(self._end_anyhow(prep, run, Internal("internal error in serverprep; see the service log")))
        finally:
            gauge.dec()
            await run_to_end(self._release(prep, run, ended))

    async def _begin(self, prep: Preparation) -> Run:
        server = await self.store.get_server(prep.server)
        stored = await self.store.output_totals(prep.id) if prep.last_seq else (0, 0)
        journal = self.bus.open(prep.id, prep.last_seq, redactor(server.secrets.values() + prep.options.secrets()), stored)
        run = Run(prep, server, journal, stop_reason=self._reasons.pop(prep.id, None))
        self._runs[prep.id] = run
        return run

    async def _stopped(self, prep: Preparation, run: Run | None) -> bool:
        """Record why a cancelled task stopped; False when the preparation stays PENDING for a restart."""
        reason = (run.stop_reason if run else None) or self._reasons.get(prep.id) or Cancelled
        state = (await self.store.get_preparation(prep.id)).state
        if state is PrepState.PENDING and reason is Interrupted:
            if run is not None:
                run.journal.emit("", Stream.EVENT, "serverprep is stopping; this preparation stays PENDING and starts when it is back")
                await run.journal.flush()
            return False
        if state.active:
            await self._end_anyhow(prep, run, reason("stopped before it started" if state is PrepState.PENDING else
                                                     "cancelled" if reason is Cancelled else "interrupted by shutdown"))
        return True

    async def _end_anyhow(self, prep: Preparation, run: Run | None, error: ServerprepError) -> None:
        """Record the end through the journal; if that fails too, straight in the store."""
        try:
            if run is not None:
                await self.runner.fail(run, error)
                return
        except Exception:
            log.exception("could not record the end of preparation %s through its log", prep.id)
        await self._force_end(prep.id, error)

    async def _force_end(self, prep_id: str, error: ServerprepError) -> None:
        current = await self.store.get_preparation(prep_id)
        if not current.state.active:
            return
        now = time.time()
        running = next((s.name for s in current.steps if s.state is StepState.RUNNING), "")
        state = PrepState.CANCELLED if isinstance(error, Cancelled) else PrepState.FAILED
        changes: list[StepChange | PrepChange] = []
        if running:
            changes.append(StepChange(running, StepState.CANCELLED if state is PrepState.CANCELLED else StepState.FAILED, now, error.message))
        changes.append(PrepChange(state, now, error.reason, error.message, running))
        await self.store.append_logs_ending(prep_id, [], changes)

    async def _release(self, prep: Preparation, run: Run | None, ended: bool) -> None:
        self._runs.pop(prep.id, None)
        self._reasons.pop(prep.id, None)
        agent, conn = (run.agent, run.conn) if run is not None else (None, None)
        if run is not None:  # their handlers refer back to the run: let it go without a full collection
            run.agent = run.conn = None
        for what, part in (("agent", agent), ("connection", conn)):  # each closed whatever the one before did
            if part is not None:
                try:
                    await part.close()
                except Exception:
                    log.exception("could not close the SSH %s of preparation %s", what, prep.id)
        try:
            await self.bus.close(prep.id, ended=ended)
        except Exception:
            log.exception("could not close the log of preparation %s", prep.id)
        if ended:
            # The last line of defence: a task that ends leaves no preparation active behind it.
            try:
                current = await self.store.get_preparation(prep.id)
                if current.state.active and current.owner == self.settings.replica:
                    log.error("preparation %s was left %s by its task; recording it FAILED", prep.id, current.state.value)
                    await self._force_end(prep.id, Internal("serverprep lost track of this preparation; Retry resumes it"))
            except Exception:
                log.exception("could not check the end of preparation %s", prep.id)
