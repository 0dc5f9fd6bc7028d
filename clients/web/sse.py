"""Server-sent events to browsers, within bounds: a capped queue per browser, a write deadline, a drop for the slow."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web

#: Sent when nothing else was: keeps proxies from closing an idle stream, and finds dead browsers.
KEEPALIVE = b": keepalive\n\n"
#: How long a browser waits before reconnecting after the stream was cut (it then gets a fresh snapshot).
RETRY_MS = 2000


def event(name: str, data: Any, event_id: int | None = None) -> bytes:
    """One event, its data as a single line of JSON (JSON escapes newlines, so no line can end the event early)."""
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {name}\ndata: {json.dumps(data, separators=(',', ':'), ensure_ascii=False)}\n\n".encode()


class Subscriber:
    """One browser's fleet stream: events wait here until written; a browser that lets ``backlog`` pile up is dropped."""

    def __init__(self, backlog: int):
        self.queue: asyncio.Queue[bytes] = asyncio.Queue(backlog)
        self.dropped = asyncio.Event()

    def offer(self, data: bytes) -> bool:
        if self.dropped.is_set():
            return False
        try:
            self.queue.put_nowait(data)
        except asyncio.QueueFull:
            self.dropped.set()
            return False
        return True


class Hub:
    """The browsers following the fleet; an event is serialized once and queued for each."""

    def __init__(self, max_subscribers: int, backlog: int):
        self.max_subscribers = max_subscribers
        self.backlog = backlog
        self.subscribers: set[Subscriber] = set()
        self.dropped_total = 0

    def join(self, first: bytes) -> Subscriber | None:
        """A new subscriber with ``first`` queued, or None when the gateway follows as many browsers as it may."""
        if len(self.subscribers) >= self.max_subscribers:
            return None
        sub = Subscriber(self.backlog)
        sub.offer(first)
        self.subscribers.add(sub)
        return sub

    def leave(self, sub: Subscriber) -> None:
        self.subscribers.discard(sub)

    def publish(self, data: bytes) -> None:
        for sub in list(self.subscribers):
            if not sub.offer(data):
                self.dropped_total += 1
                self.subscribers.discard(sub)


async def open_stream(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-store",
                                           "X-Accel-Buffering": "no"})
    await response.prepare(request)
    await response.write(f"retry: {RETRY_MS}\n\n".encode())
    return response


async def write(response: web.StreamResponse, data: bytes, deadline: float) -> None:
    """Write ``data``, or raise TimeoutError when the browser has not taken it within ``deadline`` seconds."""
    await asyncio.wait_for(response.write(data), deadline)


async def pump(response: web.StreamResponse, sub: Subscriber, *, deadline: float, keepalive: float) -> None:
    """Write the subscriber's events until it is dropped or the browser goes away (or is too slow to read)."""
    dropped = asyncio.ensure_future(sub.dropped.wait())
    try:
        while not sub.dropped.is_set():
            getter = asyncio.ensure_future(sub.queue.get())
            done, _ = await asyncio.wait({getter, dropped}, timeout=keepalive, return_when=asyncio.FIRST_COMPLETED)
            if getter not in done:
                getter.cancel()
                if dropped in done:
                    return
                await write(response, KEEPALIVE, deadline)
                continue
            await write(response, getter.result(), deadline)
    finally:
        dropped.cancel()
