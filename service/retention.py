"""The retention policy at work: old preparations pruned in the background, in small batches."""

from __future__ import annotations

import asyncio
import logging

from serverprep.service.errors import ServerprepError
from serverprep.service.settings import Settings
from serverprep.service.store import Store
from serverprep.service.store.retention import Policy

log = logging.getLogger("serverprep.retention")

#: Preparations removed per batch; the database thread serves other work between batches.
BATCH = 50


def policy(settings: Settings) -> Policy:
    return Policy(keep_last=settings.retain_last, keep_days=settings.retain_days)


async def prune(store: Store, rule: Policy, *, pause: float = 0.05) -> tuple[int, int]:
    """Remove what ``rule`` removes, batch by batch; return (preparations, log lines) removed."""
    preparations = lines = 0
    while batch := await store.removable(rule, BATCH):
        lines += await store.remove_preparations([r.id for r in batch])
        preparations += len(batch)
        await store.reclaim_space()
        await asyncio.sleep(pause)
    return preparations, lines


class Pruner:
    """Applies the policy now and then, for as long as the service runs."""

    def __init__(self, store: Store, settings: Settings):
        self.store = store
        self.rule = policy(settings)
        self.interval = settings.prune_interval
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self.rule.active:
            self._task = asyncio.create_task(self._loop(), name="retention")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    async def _loop(self) -> None:
        while True:
            try:
                removed, lines = await prune(self.store, self.rule)
                if removed:
                    log.info("retention: removed %d preparations (%d log lines); keeping the last %s per server%s",
                             removed, lines, self.rule.keep_last or "all",
                             f" and none older than {self.rule.keep_days:g} days" if self.rule.keep_days else "")
            except ServerprepError as e:
                log.error("retention: %s", e)
            await asyncio.sleep(self.interval)
