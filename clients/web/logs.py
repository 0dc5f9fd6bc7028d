"""One preparation's log to a browser as server-sent events: StreamLogs relayed in batches, resumable, bounded."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiohttp import web

from serverprep.clients.aio import AsyncClient
from serverprep.clients.errors import ServerprepClientError
from serverprep.clients.types import TERMINAL, LogEntry, PreparationState, short_name
from serverprep.clients.web import convert, security, sse

log = logging.getLogger("serverprep.web")

#: Entries in one event at most, and entries read ahead of the browser before StreamLogs waits for it.
BATCH = 500
READ_AHEAD = 2000

End = tuple[str, object]


class LogStreams:
    """At most ``max_streams`` logs relayed at once; a browser that does not read for ``write_timeout`` is dropped."""

    def __init__(self, client: AsyncClient, *, max_streams: int, write_timeout: float, keepalive: float, tail: int):
        self.client = client
        self.max_streams = max_streams
        self.write_timeout = write_timeout
        self.keepalive = keepalive
        self.tail = tail
        self.open = 0
        self.dropped = 0

    async def serve(self, request: web.Request, server: str, prep_id: str) -> web.StreamResponse:
        """Entries after ``Last-Event-ID`` (a reconnecting browser), else after ``?after=``, else the last ``tail``."""
        after = _first_int(request.headers.get("Last-Event-ID"), request.query.get("after"))
        skipped = 0
        if after is None:
            try:
                prep = await self.client.status(server, prep_id)
            except ServerprepClientError as e:
                status, body = convert.error(e)
                return web.json_response(body, status=status)
            after = skipped = max(0, prep.last_seq - self.tail)
        if self.open >= self.max_streams:
            return security.refuse(503, "TOO_MANY_LOG_STREAMS", f"this gateway already relays {self.max_streams} logs "
                                                                "(serverprep web --max-log-streams)")
        self.open += 1
        queue: asyncio.Queue[LogEntry | End] = asyncio.Queue(READ_AHEAD)
        reader = asyncio.ensure_future(self._read(server, prep_id, after, queue))
        try:
            response = await sse.open_stream(request)
            if skipped:
                await sse.write(response, sse.event("skipped", {"after": skipped}), self.write_timeout)
            await self._relay(response, queue)
        except TimeoutError:
            self.dropped += 1
            log.info("dropped a browser that did not read the log of %s", server)
            if request.transport is not None:
                request.transport.abort()
        finally:
            self.open -= 1
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
        return response

    async def _read(self, server: str, prep_id: str, after: int, queue: asyncio.Queue[LogEntry | End]) -> None:
        end: End
        try:
            stream = self.client.stream_logs(server, prep_id, after_seq=after)
            async with contextlib.aclosing(stream):
                async for entry in stream:
                    await queue.put(entry)
            end = ("end", None)
        except ServerprepClientError as e:
            end = ("failed", e)
        await queue.put(end)

    async def _relay(self, response: web.StreamResponse, queue: asyncio.Queue[LogEntry | End]) -> None:
        state = 0
        while True:
            try:
                first = await asyncio.wait_for(queue.get(), self.keepalive)
            except TimeoutError:
                await sse.write(response, sse.KEEPALIVE, self.write_timeout)
                continue
            batch: list[LogEntry] = []
            item: LogEntry | End = first
            while isinstance(item, LogEntry):
                batch.append(item)
                state = item.preparation_state or state
                if len(batch) >= BATCH or queue.empty():
                    break
                item = queue.get_nowait()
            if batch:
                entries = [convert.entry(e) for e in batch]
                await sse.write(response, sse.event("entries", entries, batch[-1].seq), self.write_timeout)
            if isinstance(item, tuple):
                await sse.write(response, _end_event(item, state), self.write_timeout)
                return


def _end_event(end: End, state: int) -> bytes:
    kind, error = end
    if isinstance(error, ServerprepClientError):
        return sse.event("failed", {"error": error.to_dict()})
    final = short_name(PreparationState, state) if state in TERMINAL else ""
    return sse.event(kind, {"state": final})


def _first_int(*values: str | None) -> int | None:
    for value in values:
        if value is not None and value.strip().isdigit():
            return int(value)
    return None
