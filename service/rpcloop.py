"""The gRPC server's own event loop, in a thread, apart from the loop that runs the preparations.

grpc.aio's server takes calls one at a time per method: it asks gRPC's core for the next call of a
method only after the last one went through about five passes of its event loop (bench/accept.py).
On the loop that also carries a thousand preparations' SSH traffic a pass takes tens of
milliseconds or more, so a burst of calls queued up in gRPC's core, and after 30 s unrequested the
core cancelled them (``CANCELLED``): 733 of 1000 ``Prepare`` in one bench run. On a loop of its own,
with nothing but gRPC on it, those passes are short. The servicers' work still runs on the engine
loop (:func:`on_engine`): the store, the scheduler and the log bus belong to it alone.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import threading
import weakref
from collections.abc import AsyncIterator, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

#: Items a stream may have ready on the gRPC side before the engine side waits: the bridge holds
#: no more than this per live stream, and a stalled reader stops its producer as before.
STREAM_AHEAD = 4

_END = object()


class RpcLoop:
    """An event loop running in its own thread until :meth:`close`."""

    def __init__(self, name: str = "serverprep-grpc"):
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    async def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Await ``coro`` run on this loop, from another loop (a cancellation is passed on)."""
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self.loop))

    def close(self, timeout: float = 10.0) -> None:
        """Stop the loop and its thread; what is still pending on it is cancelled, its async generators closed.

        It blocks the calling thread for at most about twice ``timeout``; nothing on this loop may
        wait for the caller's loop meanwhile (the servicers' clean-up runs on the engine's side).
        """
        if self.loop.is_closed():
            return

        async def cancel_rest() -> None:
            rest = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in rest:
                task.cancel()
            await asyncio.gather(*rest, return_exceptions=True)
            await self.loop.shutdown_asyncgens()

        try:
            if self._thread.is_alive():
                asyncio.run_coroutine_threadsafe(cancel_rest(), self.loop).result(timeout)
        finally:
            if self._thread.is_alive():
                self.loop.call_soon_threadsafe(self.loop.stop)
                self._thread.join(timeout)
            if not self._thread.is_alive():
                self.loop.close()


async def on_engine(engine: asyncio.AbstractEventLoop | None, coro: Coroutine[Any, Any, T]) -> T:
    """Await ``coro`` on the ``engine`` loop (at once when already there, or when there is none)."""
    if engine is None or asyncio.get_running_loop() is engine:
        return await coro
    return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, engine))


class _Wakes:
    """Events of one loop set from other threads, together: each ``call_soon_threadsafe`` costs a write
    to the loop's self-pipe and a pass of the loop, and the live readers of one preparation get the
    same entries in the same pass of the engine loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = weakref.ref(loop)  # not a strong one: _WAKES would then keep every loop alive
        self.lock = threading.Lock()
        self.events: list[asyncio.Event] = []

    def set(self, event: asyncio.Event) -> None:
        """Set ``event`` in the loop's thread; RuntimeError when the loop is closed. Its caller
        (``send``) checks for a closed loop before every item, so a wake-up dropped as the loop
        closed cannot pass a later one off as already on its way."""
        with self.lock:
            self.events.append(event)
            if len(self.events) > 1:
                return  # a wake-up is on its way
        try:
            loop = self.loop()
            if loop is None:
                raise RuntimeError("Event loop is closed")
            loop.call_soon_threadsafe(self._set_all)
        except RuntimeError:  # the loop is closed
            with self.lock:
                self.events.clear()
            raise

    def _set_all(self) -> None:
        with self.lock:
            events, self.events = self.events, []
        for event in events:
            event.set()


_WAKES: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Wakes] = weakref.WeakKeyDictionary()
_WAKES_LOCK = threading.Lock()


def _wakes(loop: asyncio.AbstractEventLoop) -> _Wakes:
    with _WAKES_LOCK:
        wakes = _WAKES.get(loop)
        if wakes is None:
            wakes = _WAKES[loop] = _Wakes(loop)
        return wakes


async def stream_on_engine(engine: asyncio.AbstractEventLoop | None, items: AsyncIterator[T]) -> AsyncIterator[T]:
    """Iterate ``items`` on the ``engine`` loop and yield them here, at most STREAM_AHEAD ahead.

    An error the iterator raises is raised here; when this side stops early (the client went away,
    the call was cancelled) the engine side is cancelled and the iterator closed.
    """
    here = asyncio.get_running_loop()
    if engine is None or here is engine:
        async for item in items:
            yield item
        return
    # An item crosses to this loop without waiting for an answer, and wakes this side only when it may
    # be waiting (nothing was queued), with the other streams' wake-ups of the moment (_Wakes). The
    # engine side waits only when STREAM_AHEAD items are out and unread. `queued`, `room` and
    # `ready`'s clearing are shared by both threads under `lock`.
    wakes = _wakes(here)
    queued: collections.deque[Any] = collections.deque()
    ready = asyncio.Event()
    lock = threading.Lock()
    room = STREAM_AHEAD
    space: asyncio.Event | None = None  # the engine side's, made there

    def send(item: Any) -> None:
        if here.is_closed():  # the gRPC side is gone: the producer ends (its iterator closed) as it did before
            raise RuntimeError("Event loop is closed")
        with lock:
            queued.append(item)
            first = len(queued) == 1
        if first:
            wakes.set(ready)

    async def produce() -> None:
        nonlocal room, space
        space = asyncio.Event()
        end: object = _END
        try:
            async for item in items:
                while True:
                    with lock:
                        if room > 0:
                            room -= 1
                            break
                        space.clear()
                    await space.wait()
                send(item)
        except Exception as e:  # noqa: BLE001 - raised on the gRPC side
            end = e
        except BaseException:  # cancelled (or the engine is going down): the stream did not end
            end = asyncio.CancelledError()
            raise
        finally:
            with contextlib.suppress(RuntimeError):  # the gRPC loop is closed: nobody is left to tell
                send(end)
            aclose = getattr(items, "aclose", None)
            if aclose is not None:
                await aclose()

    producer = asyncio.run_coroutine_threadsafe(produce(), engine)
    try:
        while True:
            await ready.wait()
            with lock:
                if not queued:
                    ready.clear()
                    continue
                item = queued.popleft()
                if item is _END or isinstance(item, BaseException):
                    break
                room += 1
                was_full = room == 1
            if was_full and space is not None:
                engine.call_soon_threadsafe(space.set)
            yield item
        if item is not _END:
            raise item
    finally:
        producer.cancel()
