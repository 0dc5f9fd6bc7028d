"""Replicas sharing one database: recovery at start, heartbeat, take-over, cancels passed on."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable

from serverprep.service import metrics
from serverprep.service.domain import PrepChange, PrepState, ReplicaHolder, StepChange, StepState
from serverprep.service.errors import Cancelled, Interrupted, ReplicaNameInUse, ServerprepError, StorageError
from serverprep.service.logbus import LogBus
from serverprep.service.scheduler import Scheduler
from serverprep.service.settings import Settings
from serverprep.service.store import Store

log = logging.getLogger(__name__)


class Replicas:
    """This replica's part in sharing the work of one database with others."""

    def __init__(self, store: Store, bus: LogBus, scheduler: Scheduler, settings: Settings):
        self.store = store
        self.bus = bus
        self.scheduler = scheduler
        self.settings = settings
        self.me = settings.replica
        self.identity = ReplicaHolder(self.me, uuid.uuid4().hex, socket.gethostname(), os.getpid(), _started(os.getpid()), time.time(), 0.0)
        self._watcher: asyncio.Task[None] | None = None
        self._claimed = False
        #: Told after every heartbeat whether the database answered (health follows it).
        self.on_storage: Callable[[bool], Awaitable[None]] | None = None

    async def claim(self) -> None:
        """Hold this replica's name, or refuse to start while another live process holds it."""
        holder = await self.store.claim_name(self.identity, time.time() - self.settings.stale_after, _alive)
        if holder is not None:
            where = "on this host" if holder.host == self.identity.host else f"on host {holder.host!r}"
            raise ReplicaNameInUse(
                f"replica name {self.me!r} is in use by pid {holder.pid} {where} (its last heartbeat "
                f"{time.time() - holder.heartbeat_at:.0f} s ago): give each service sharing a database its own --replica, "
                f"or stop the other one (a holder silent for --stale-after {self.settings.stale_after:.0f} s is replaced)",
                metadata={"replica": self.me, "pid": str(holder.pid), "host": holder.host},
            )
        self._claimed = True

    async def start(self) -> None:
        """Recover what this replica left behind, then watch over the others.

        RUNNING preparations owned by this replica's name were interrupted by its previous
        process: they become FAILED/INTERRUPTED. Its PENDING ones start. Other replicas'
        preparations are left alone unless their heartbeat stops.
        """
        for prep_id in await self.store.owned(self.me, PrepState.RUNNING):
            await self.mark_interrupted(prep_id, self.me, "serverprep stopped while this preparation ran; Retry resumes it")
        for prep_id in await self.store.owned(self.me, PrepState.PENDING):
            self.scheduler.launch(await self.store.get_preparation(prep_id))
        self._watcher = asyncio.create_task(self._watch(), name="replica-watch")

    async def stop(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
        if self._claimed:
            with contextlib.suppress(ServerprepError):
                await self.store.release_name(self.me, self.identity.instance)

    async def cancel_elsewhere(self, prep_id: str) -> None:
        """Ask the replica that runs a preparation to cancel it, and wait until it has stopped."""
        await self.store.request_cancel(prep_id)
        deadline = time.monotonic() + self.settings.heartbeat_interval * 2 + self.settings.kill_grace + 10
        while time.monotonic() < deadline:
            if not (await self.store.get_preparation(prep_id)).state.active:
                return
            await asyncio.sleep(0.2)

    async def mark_interrupted(self, prep_id: str, expected_owner: str, message: str) -> None:
        """Record that a RUNNING preparation's process is gone, unless another replica already did."""
        if not await self.store.take_over_running(prep_id, self.me, expected_owner):
            return
        prep = await self.store.get_preparation(prep_id)
        journal = self.bus.open(prep_id, await self.store.max_seq(prep_id), lambda t: t)
        running = next((s.name for s in prep.steps if s.state is StepState.RUNNING), "")
        now = time.time()
        if running:
            await journal.announce(f"{running} interrupted", StepChange(running, StepState.FAILED, now, message))
        await journal.announce(f"preparation FAILED: INTERRUPTED: {message}",
                               PrepChange(PrepState.FAILED, now, Interrupted.reason, message, running))
        await self.bus.close(prep_id)

    async def _watch(self) -> None:
        """Heartbeat for our preparations; take over what silent replicas left; obey remote Cancels."""
        while True:
            healthy = False
            try:
                await self._round()
                healthy = True
            except StorageError as e:
                log.error("replica heartbeat failed: %s", e)
            except ServerprepError as e:
                log.error("replica heartbeat failed: %s", e)
                healthy = True
            except Exception:
                log.exception("replica heartbeat failed")
            if self.on_storage is not None:
                await self.on_storage(healthy)
            await asyncio.sleep(self.settings.heartbeat_interval)

    async def _round(self) -> None:
        if not await self.store.beat_name(self.me, self.identity.instance):
            log.error("replica name %r was taken by another process (this one was silent too long?); "
                      "it takes no more work", self.me)
            self.scheduler.accepting = False
            return
        for prep_id in await self.store.heartbeat(self.me):
            if self.scheduler.runs_here(prep_id):
                self.scheduler.stop(prep_id, Cancelled)
        if not self.scheduler.accepting:
            return
        stale_before = time.time() - self.settings.stale_after
        for prep_id, state in await self.store.stale(stale_before, self.me):
            prep = await self.store.get_preparation(prep_id)
            if state is PrepState.RUNNING:
                log.warning("replica %s stopped answering; preparation %s of %s was interrupted", prep.owner, prep_id, prep.server,
                            extra={"preparation_id": prep_id, "server": prep.server, "owner": prep.owner, "replica": self.me})
                metrics.TAKEOVERS.labels("interrupted").inc()
                await self.mark_interrupted(
                    prep_id, prep.owner, f"replica {prep.owner!r} stopped while it ran this preparation; Retry resumes it"
                )
            elif not self.scheduler.runs_here(prep_id) and await self.store.claim(prep_id, self.me, stale_before):
                log.warning("replica %s stopped answering; its pending preparation %s of %s runs here now", prep.owner, prep_id,
                            prep.server, extra={"preparation_id": prep_id, "server": prep.server, "owner": prep.owner, "replica": self.me})
                metrics.TAKEOVERS.labels("claimed").inc()
                self.scheduler.launch(prep)


def _started(pid: int) -> str:
    """When process ``pid`` started, in clock ticks since boot ("" when it does not exist)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def _alive(holder: ReplicaHolder) -> bool:
    """Whether a holder's process still runs; one on another host is believed by its heartbeat."""
    if holder.host != socket.gethostname():
        return True
    started = _started(holder.pid)
    return bool(started) and started == holder.pid_started
