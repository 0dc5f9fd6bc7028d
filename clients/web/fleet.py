"""The fleet as the gateway sees it: a row per server, kept live by StreamLogs of active preparations and Status sweeps.

Active preparations are followed with StreamLogs (at most ``max_streams`` at once; the others wait
for a free stream and are swept meanwhile); every transition in a stream updates its row at once
and asks Status for the details (OS, exit codes, messages, times). Every ``refresh`` seconds (or
twice the last sweep's duration, if longer) a sweep lists the servers, each with its newest
preparation in brief, and asks Status (``status_concurrency`` calls at a time) only for those not
followed whose preparation changed: that is how preparations started by other clients are found.
A service that sends no such brief (older than this gateway) gets a Status call for every server
not followed, as before. Changed rows are sent to the browsers every ``tick`` seconds, all in one event.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

from serverprep.clients.aio import AsyncClient
from serverprep.clients.errors import PreparationNotFound, ServerNotFound, ServerprepClientError
from serverprep.clients.types import (
    LOG_STREAM_EVENT,
    STEP_STATE_CANCELLED,
    STEP_STATE_FAILED,
    STEP_STATE_SKIPPED,
    STEP_STATE_SUCCEEDED,
    TERMINAL,
    LogEntry,
    Preparation,
    PreparationSummary,
)
from serverprep.clients.web import convert, sse

log = logging.getLogger("serverprep.web")

_STEP_ENDS = frozenset({STEP_STATE_SUCCEEDED, STEP_STATE_SKIPPED, STEP_STATE_FAILED, STEP_STATE_CANCELLED})
#: How long Status may answer older than a transition a stream showed before it is believed anyway:
#: the service sends entries live before it stores them (within a fraction of a second), and entries
#: it never stored (a crash) must not freeze the row.
BEHIND_GRACE = 5.0


@dataclass
class Row:
    name: str
    host: str
    #: The server's create_time: a server deleted and registered again under its name starts a new row.
    created: float = 0.0
    prep: Preparation | None = None
    #: The sequence number the row is up to date with: a Status older than a transition already shown is not applied.
    seq: int = 0
    #: After a stream failed: not followed again before this time (time.monotonic()), swept meanwhile.
    follow_after: float = 0.0
    #: When Status first answered older than ``seq`` (time.monotonic()), None while it keeps up.
    behind_since: float | None = None


def _active(prep: Preparation | None) -> bool:
    return prep is not None and bool(prep.id) and prep.state not in TERMINAL


class Fleet:
    def __init__(self, client: AsyncClient, hub: sse.Hub, *, refresh: float, max_streams: int,
                 status_concurrency: int = 8, tick: float = 0.25):
        self.client = client
        self.hub = hub
        self.refresh = refresh
        self.max_streams = max_streams
        self.tick = tick
        self.rows: dict[str, Row] = {}
        self.followers: dict[str, asyncio.Task[None]] = {}
        self.dirty: set[str] = set()
        self.removed: set[str] = set()
        self.health: dict[str, Any] = {"reachable": None, "error": None, "swept": None, "sweep_seconds": None}
        self._status_slots = asyncio.Semaphore(status_concurrency)
        self._scheduled: set[str] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._health_changed = False
        self.followed_peak = 0

    # -- running ------------------------------------------------------------

    def start(self) -> None:
        self._spawn(self._sweep_forever())
        self._spawn(self._publish_forever())

    async def close(self) -> None:
        tasks = [*self._tasks, *self.followers.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- what browsers get --------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        rows = [convert.row(r.name, r.host, r.prep) for r in sorted(self.rows.values(), key=lambda r: r.name)]
        return {"steps": convert.STEP_NAMES, "rows": rows, "now": time.time(), "gateway": self.stats()}

    def stats(self) -> dict[str, Any]:
        return {**self.health, "servers": len(self.rows), "followed": len(self.followers), "followed_peak": self.followed_peak,
                "max_streams": self.max_streams,
                "browsers": len(self.hub.subscribers), "dropped_browsers": self.hub.dropped_total}

    async def _publish_forever(self) -> None:
        while True:
            await asyncio.sleep(self.tick)
            self.publish()

    def publish(self) -> None:
        """Send the rows changed since the last call, and the servers that went away, in one event."""
        if not (self.dirty or self.removed or self._health_changed):
            return
        rows = [convert.row(r.name, r.host, r.prep) for r in (self.rows.get(n) for n in sorted(self.dirty)) if r is not None]
        data = {"rows": rows, "removed": sorted(self.removed), "now": time.time(), "gateway": self.stats()}
        self.dirty.clear()
        self.removed.clear()
        self._health_changed = False
        self.hub.publish(sse.event("rows", data))

    # -- sweeps -------------------------------------------------------------

    async def _sweep_forever(self) -> None:
        while True:
            began = time.monotonic()
            try:
                await self.sweep()
                self._set_health(reachable=True, error=None, swept=time.time(), sweep_seconds=round(time.monotonic() - began, 3))
            except ServerprepClientError as e:
                log.warning("sweep failed: %s", e)
                self._set_health(reachable=False, error={"reason": e.reason, "message": e.message})
            # A sweep lists every server and asks Status where a brief changed (for every server when the service
            # sends none): waiting twice as long as it took keeps the gateway to a third of the service, however large the fleet.
            await asyncio.sleep(max(self.refresh, 2 * (time.monotonic() - began)))

    def _set_health(self, **values: Any) -> None:
        changed = any(self.health.get(k) != v for k, v in values.items() if k not in ("swept", "sweep_seconds"))
        self.health.update(values)
        self._health_changed = self._health_changed or changed

    async def sweep(self) -> None:
        """List the servers, drop the deleted, and ask Status for each one not followed whose preparation changed."""
        seen: dict[str, tuple[str, float]] = {}
        latest: dict[str, PreparationSummary] = {}
        async for server in self.client.list_servers(page_size=500):
            seen[server.name] = (server.host, convert.seconds(server.create_time) or 0.0)
            if server.HasField("latest_preparation"):
                latest[server.name] = server.latest_preparation
        for name in set(self.rows) - set(seen):
            self._remove(name)
        for name, (host, created) in seen.items():
            row = self.rows.get(name)
            if row is None or row.created != created:
                if row is not None:
                    self._remove(name)
                    self.removed.discard(name)
                self.rows[name] = Row(name, host, created)
                self.dirty.add(name)
            elif row.host != host:
                row.host = host
                self.dirty.add(name)
        # No brief at all: a service that does not send them, or a fleet never prepared; ask each server, as before.
        changed = [n for n in seen if n not in self.followers and (not latest or self._changed(n, latest.get(n)))]
        await asyncio.gather(*(self.refresh_now(n) for n in changed))
        self._follow_more()

    def _changed(self, name: str, brief: PreparationSummary | None) -> bool:
        """Whether the service's brief of ``name``'s newest preparation differs from the row's."""
        row = self.rows.get(name)
        cur = row.prep if row is not None and row.prep is not None and row.prep.id else None
        if brief is None or cur is None:
            return (brief is None) != (cur is None)  # prepared on one side only
        return (brief.id, brief.state, brief.attempt, brief.last_seq) != (cur.id, cur.state, cur.attempt, cur.last_seq)

    def _remove(self, name: str) -> None:
        self.rows.pop(name, None)
        self.dirty.discard(name)
        self.removed.add(name)
        task = self.followers.pop(name, None)
        if task is not None:
            task.cancel()

    async def refresh_now(self, name: str) -> None:
        """Ask Status for ``name``'s latest preparation and apply it."""
        async with self._status_slots:
            try:
                prep: Preparation | None = await self.client.status(name)
            except PreparationNotFound:
                prep = None
            except ServerNotFound:
                self._remove(name)
                return
        self.apply_status(name, prep)

    def refresh_soon(self, name: str, delay: float = 0.2) -> None:
        """Refresh ``name`` after ``delay`` seconds; calls in between are one refresh."""
        if name in self._scheduled:
            return
        self._scheduled.add(name)

        async def later() -> None:
            await asyncio.sleep(delay)
            self._scheduled.discard(name)
            with contextlib.suppress(ServerprepClientError):
                await self.refresh_now(name)

        self._spawn(later())

    # -- applying what the service says ---------------------------------------

    def apply_status(self, name: str, prep: Preparation | None) -> None:
        row = self.rows.get(name)
        if row is None:
            return
        cur = row.prep
        if prep is not None and cur is not None and cur.id:
            if prep.id == cur.id and prep.last_seq < row.seq:
                # Older than a transition the stream already showed (not stored yet): ask again until
                # Status catches up, so that the details the stream does not carry are the newest.
                now = time.monotonic()
                if row.behind_since is None:
                    row.behind_since = now
                if now - row.behind_since < BEHIND_GRACE:
                    self.refresh_soon(name, 0.5)
                    return
            elif prep.id != cur.id and prep.create_time.ToNanoseconds() < cur.create_time.ToNanoseconds():
                return  # an answer from before a newer preparation was made
        row.behind_since = None
        if prep is None:
            return  # never prepared and still not; or pruning, which keeps the latest: an answer from before it
        row.seq = prep.last_seq  # what Status says is stored: also when it is believed after the grace period
        if cur is not None and prep.SerializeToString() == cur.SerializeToString():
            return  # nothing changed: the row is not sent again
        row.prep = prep
        self.dirty.add(name)
        self._follow_more()

    def apply_preparation(self, name: str, prep: Preparation) -> None:
        """A preparation an action of the gateway returned (Prepare, Retry, Cancel): newer than anything seen."""
        row = self.rows.get(name)
        if row is None:
            self.rows[name] = row = Row(name, "")
        if row.prep is None or row.prep.id != prep.id or prep.last_seq >= row.seq:
            row.prep, row.seq, row.behind_since = prep, prep.last_seq, None
            self.dirty.add(name)
        self.refresh_soon(name)
        self._follow_more()

    def apply_entry(self, name: str, prep_id: str, entry: LogEntry) -> None:
        """A transition from a followed stream: the row shows it at once, Status brings the details."""
        row = self.rows.get(name)
        if row is None or row.prep is None or row.prep.id != prep_id or entry.seq <= row.seq:
            return
        prep = row.prep
        if entry.step_state and entry.step:
            for s in prep.steps:
                if s.name == entry.step:
                    s.state = entry.step_state
                    (s.end_time if entry.step_state in _STEP_ENDS else s.start_time).CopyFrom(entry.time)
        if entry.preparation_state:
            if prep.state in TERMINAL and entry.preparation_state not in TERMINAL:
                prep.attempt += 1
                prep.ClearField("end_time")
                prep.ClearField("failure")
            prep.state = entry.preparation_state
            if entry.preparation_state in TERMINAL:
                prep.end_time.CopyFrom(entry.time)
            elif not prep.HasField("start_time"):
                prep.start_time.CopyFrom(entry.time)
        row.seq = entry.seq
        self.dirty.add(name)
        self.refresh_soon(name)

    # -- following ------------------------------------------------------------

    def _follow_more(self) -> None:
        """Follow active preparations, oldest first, while streams are free."""
        if len(self.followers) >= self.max_streams:
            return
        now = time.monotonic()
        waiting = [r for r in self.rows.values() if r.name not in self.followers and _active(r.prep) and r.follow_after <= now]
        waiting.sort(key=lambda r: r.prep.create_time.ToNanoseconds() if r.prep else 0)
        for row in waiting[: self.max_streams - len(self.followers)]:
            assert row.prep is not None
            self.followers[row.name] = asyncio.ensure_future(self._follow(row.name, row.prep.id, row.seq))
        self.followed_peak = max(self.followed_peak, len(self.followers))

    async def _follow(self, name: str, prep_id: str, after: int) -> None:
        try:
            stream = self.client.stream_logs(name, prep_id, after_seq=after)
            async with contextlib.aclosing(stream):
                async for entry in stream:
                    if entry.stream == LOG_STREAM_EVENT and (entry.step_state or entry.preparation_state):
                        self.apply_entry(name, prep_id, entry)
        except ServerprepClientError as e:
            log.info("stream of %s ended: %s", name, e)
            if (row := self.rows.get(name)) is not None:
                row.follow_after = time.monotonic() + self.refresh
        finally:
            if self.followers.get(name) is asyncio.current_task():
                del self.followers[name]
            if name in self.rows:
                self.refresh_soon(name, 0)
            self._follow_more()

