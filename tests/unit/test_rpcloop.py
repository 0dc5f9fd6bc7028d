"""The bridge between the gRPC loop and the engine loop (serverprep.service.rpcloop), with two real
event loops in two threads: work runs on the engine loop, results, errors and cancellations cross
back, and a stream runs ahead of a stalled reader by at most STREAM_AHEAD items."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from serverprep.service.rpcloop import STREAM_AHEAD, RpcLoop, on_engine, stream_on_engine


class Engine:
    """An engine loop in a thread of its own (the test's own loop plays the gRPC side)."""

    def __enter__(self) -> asyncio.AbstractEventLoop:
        self.rpc = RpcLoop(name="test-engine")
        return self.rpc.loop

    def __exit__(self, *exc: object) -> None:
        self.rpc.close()


def test_work_runs_on_the_engine_and_its_result_and_errors_come_back():
    async def where() -> threading.Thread:
        return threading.current_thread()

    async def fails() -> None:
        raise LookupError("no such server")

    async def run(engine: asyncio.AbstractEventLoop) -> None:
        assert (await on_engine(engine, where())).name == "test-engine"
        with pytest.raises(LookupError, match="no such server"):
            await on_engine(engine, fails())
        assert await on_engine(None, where()) is threading.current_thread()  # no engine: here

    with Engine() as engine:
        asyncio.run(run(engine))


def test_a_cancelled_call_cancels_its_work_on_the_engine():
    started, cancelled = threading.Event(), threading.Event()

    async def slow() -> None:
        started.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    async def run(engine: asyncio.AbstractEventLoop) -> None:
        call = asyncio.ensure_future(on_engine(engine, slow()))
        await asyncio.to_thread(started.wait, 10)
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call

    with Engine() as engine:
        asyncio.run(run(engine))
        assert cancelled.wait(10)


def test_a_stream_comes_in_order_then_its_error_and_a_stalled_reader_holds_it_back():
    produced: list[int] = []
    closed = threading.Event()

    async def items(fail_after: int | None):
        try:
            for i in range(50):
                if i == fail_after:
                    raise LookupError("gone")
                produced.append(i)
                yield i, threading.current_thread().name
        finally:
            closed.set()

    async def run(engine: asyncio.AbstractEventLoop) -> None:
        async def read_all() -> list:
            return [item async for item in stream_on_engine(engine, items(None))]

        got = await asyncio.wait_for(read_all(), 30)  # more than STREAM_AHEAD: the reader frees room, and says so
        assert got == [(i, "test-engine") for i in range(50)]
        assert closed.wait(10)

        produced.clear(), closed.clear()
        got = []
        with pytest.raises(LookupError, match="gone"):
            async for i, _ in stream_on_engine(engine, items(7)):
                got.append(i)
        assert got == list(range(7))

        produced.clear(), closed.clear()
        stream = stream_on_engine(engine, items(None))
        assert (await anext(stream))[0] == 0
        await asyncio.sleep(0.5)  # the reader stalls: the engine side may run ahead only so far
        ahead = len(produced) - 1
        assert ahead <= STREAM_AHEAD + 1, f"{ahead} items produced ahead of a stalled reader"
        await stream.aclose()  # the reader goes away: the engine side is cancelled and its iterator closed
        assert closed.wait(10)

    with Engine() as engine:
        asyncio.run(run(engine))


def test_closing_the_loop_cancels_what_is_pending_and_ends_its_thread():
    rpc = RpcLoop(name="test-closing")
    cancelled = threading.Event()

    async def forever() -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    asyncio.run_coroutine_threadsafe(forever(), rpc.loop)
    rpc.close()
    assert cancelled.is_set() and rpc.loop.is_closed()
    assert not any(t.name == "test-closing" for t in threading.enumerate())
    rpc.close()  # again: nothing to do


def test_many_streams_at_once_each_get_every_item_in_order():
    """The wake-ups of the streams crossing to one loop are shared (one self-pipe write for all the
    items of a moment): none may be lost, whichever side runs ahead. It catches gross errors (a
    wake-up for only one stream of several); a finer race, such as clearing ``ready`` outside the
    stream's lock, passed it in a review's 100 runs."""

    async def items(n: int):
        for i in range(n):
            if i % 7 == 0:
                await asyncio.sleep(0)  # the engine side lets the others in, as a preparation's log does
            yield i

    async def read(engine: asyncio.AbstractEventLoop, n: int, slow: bool) -> list[int]:
        got = []
        async for i in stream_on_engine(engine, items(n)):
            got.append(i)
            if slow and i % 5 == 0:
                await asyncio.sleep(0.001)
        return got

    async def run(engine: asyncio.AbstractEventLoop) -> None:
        sizes = [1, 2, STREAM_AHEAD, 50, 300, 1000] * 2
        got = await asyncio.wait_for(asyncio.gather(*(read(engine, n, i % 2 == 0) for i, n in enumerate(sizes))), 60)
        assert got == [list(range(n)) for n in sizes]

    with Engine() as engine:
        for _ in range(3):
            asyncio.run(run(engine))


def test_the_shared_wake_ups_keep_no_loop_alive():
    """A loop that streams crossed to is freed once closed and dropped (the registry holds it weakly)."""
    import gc
    import weakref

    async def one(engine: asyncio.AbstractEventLoop) -> list[int]:
        async def items():
            yield 1

        return [i async for i in stream_on_engine(engine, items())]

    with Engine() as engine:
        loop = asyncio.new_event_loop()
        assert loop.run_until_complete(one(engine)) == [1]
        loop.close()
        gone = weakref.ref(loop)
        del loop
        for _ in range(200):  # the producer may still be closing its iterator on the engine, holding the loop
            gc.collect()
            if gone() is None:
                break
            time.sleep(0.05)
        assert gone() is None


def test_a_gone_grpc_loop_stops_the_producer_and_closes_its_iterator():
    """If the gRPC loop closes with a stream still open (its clean-up timed out), the engine side
    must not wait for good with the journal's iterator open: the next item it sends ends it."""
    gate, closed, produced = threading.Event(), threading.Event(), []

    async def items():
        try:
            while not gate.is_set():
                await asyncio.sleep(0.01)
            for i in range(20):
                produced.append(i)
                yield i
                await asyncio.sleep(0.05)
        finally:
            closed.set()

    async def consume(engine: asyncio.AbstractEventLoop) -> None:
        async for _ in stream_on_engine(engine, items()):
            pass

    with Engine() as engine:
        loop = asyncio.new_event_loop()
        loop.create_task(consume(engine))
        loop.run_until_complete(asyncio.sleep(0.2))  # the consumer waits for its first item
        gate.set()
        time.sleep(0.1)  # the first item crosses while the gRPC loop does not run: its wake-up waits in the loop
        loop.close()
        assert closed.wait(10), f"the engine side still waits, {len(produced)} items produced"
