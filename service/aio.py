"""Awaiting work that must not be cut in half by a cancellation."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")


async def run_to_end(work: Awaitable[T]) -> T:
    """Await ``work`` to its end even if the caller is cancelled meanwhile, then let the cancellation go on.

    A write to the database or a recorded state change either happens wholly or not at all; a
    cancellation that arrives in the middle waits for it, so that what the caller believes was
    stored is what was stored.
    """
    task = asyncio.ensure_future(work)
    cancelled = False
    while not task.done():
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            if task.cancelled():
                raise
            cancelled = True
        except BaseException:
            break
    if cancelled:
        if not task.cancelled():
            task.exception()  # retrieved: its outcome stands, and the cancellation goes on
        raise asyncio.CancelledError
    return task.result()


def checkpoint() -> None:
    """Raise CancelledError if the current task was asked to stop and the request got lost.

    On Python 3.11, asyncio.wait_for (which asyncssh uses to connect) returns the result and
    drops a cancellation that lands just as the awaited work completes; the task's counter of
    cancellation requests still tells.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
