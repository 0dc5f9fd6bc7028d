"""Use cases of preparations: prepare, retry, cancel, plan (dry run), status, history and logs."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from serverprep.drivers import STEP_NAMES
from serverprep.service.domain import LogEntry, Options, Preparation, PrepState, redactor
from serverprep.service.errors import NotCancellable, NotRetryable, TooManyPlans
from serverprep.service.logbus import LogBus
from serverprep.service.replicas import Replicas
from serverprep.service.runner import PreparationRunner, plan_options
from serverprep.service.scheduler import Scheduler
from serverprep.service.store import Store

RETRYABLE = frozenset({PrepState.FAILED, PrepState.CANCELLED})


class Preparations:
    def __init__(self, store: Store, bus: LogBus, scheduler: Scheduler, replicas: Replicas, runner: PreparationRunner):
        self.store = store
        self.bus = bus
        self.scheduler = scheduler
        self.replicas = replicas
        self.runner = runner
        self._plans = asyncio.Semaphore(runner.settings.max_concurrent_plans)

    async def prepare(self, server: str, options: Options, request_id: str = "") -> Preparation:
        """Start preparing ``server`` (PENDING at once); the same ``request_id`` returns the same preparation."""
        self.scheduler.require_accepting()
        prep, created = await self.store.create_preparation(server, options, request_id, STEP_NAMES, self.runner.settings.replica)
        if created:
            self.scheduler.launch(prep)
        return prep

    async def retry(self, server: str, prep_id: str = "") -> Preparation:
        """Resume a FAILED or CANCELLED preparation from its first step that is not done."""
        self.scheduler.require_accepting()
        prep = await self.store.find_preparation(server, prep_id)
        if prep.state not in RETRYABLE:
            raise NotRetryable(
                f"preparation {prep.id} is {prep.state.value}: only FAILED or CANCELLED ones can be retried",
                metadata={"preparation_id": prep.id, "state": prep.state.value},
            )
        await self.scheduler.settled(prep.id)  # the last attempt's task may still be closing
        prep = await self.store.reset_for_retry(prep.id, self.runner.settings.replica)
        self.scheduler.launch(prep)
        return prep

    async def cancel(self, server: str, prep_id: str = "") -> Preparation:
        """Stop a PENDING or RUNNING preparation, here or on the replica that runs it."""
        prep = await self.store.find_preparation(server, prep_id)
        if not prep.state.active:
            raise NotCancellable(
                f"preparation {prep.id} is {prep.state.value}: only PENDING or RUNNING ones can be cancelled",
                metadata={"preparation_id": prep.id, "state": prep.state.value},
            )
        if self.scheduler.runs_here(prep.id):
            await self.scheduler.cancel(prep.id)
        elif not await self.store.cancel_pending(prep.id, "cancelled before it started"):
            await self.replicas.cancel_elsewhere(prep.id)
        return await self.store.get_preparation(prep.id)

    async def plan(self, server_name: str, options: Options) -> dict[str, Any]:
        """Connect, gather facts read-only, and return the plan Prepare would follow (Plan.to_dict()),
        with the caller's secrets redacted. At most --max-concurrent-plans run at once; more are refused."""
        server = await self.store.get_server(server_name)
        if self._plans.locked():
            limit = self.runner.settings.max_concurrent_plans
            raise TooManyPlans(f"{limit} Plan calls are running; try again when one ends", metadata={"limit": str(limit)})
        async with self._plans:
            conn = await self.runner.open(server)
            try:
                plan = self.runner.drivers.plan(await self.runner.facts(conn), plan_options(options, server.user))
            finally:
                await conn.close()
        hide = redactor(options.secrets())
        data = plan.to_dict()
        for step in data["steps"]:
            step["commands"] = [hide(c) for c in step["commands"]]
        return data

    async def status(self, server: str, prep_id: str = "") -> Preparation:
        return await self.store.find_preparation(server, prep_id)

    async def history(self, server: str, limit: int, before: tuple[float, str] | None) -> list[Preparation]:
        return await self.store.list_preparations(server, limit, before)

    async def logs(self, server: str, prep_id: str, after_seq: int, *, follow: bool) -> AsyncIterator[tuple[Preparation, list[LogEntry]]]:
        """Batches of log entries after ``after_seq``: stored, then live until the preparation ends."""
        prep = await self.store.find_preparation(server, prep_id)
        async for batch in self.bus.follow(prep.id, after_seq, follow=follow):
            yield prep, batch
