"""serverprep_event_loop_lag_seconds: how late the event loop runs, as /metrics shows it."""

from __future__ import annotations

import asyncio
import time

from serverprep.service import metrics


def _sample(name: str, labels: dict[str, str] | None = None) -> float:
    return metrics.REGISTRY.get_sample_value(f"serverprep_event_loop_lag_seconds_{name}", labels or {}) or 0.0


def test_a_blocked_loop_shows_as_lag_and_stopping_ends_the_timer() -> None:
    """Proves: while the loop runs freely the timer ticks; a loop blocked for 0.3 s is counted as
    at least one tick more than 0.1 s late (the timer due 0.05 s into the block waits for its end,
    whatever the machine's speed); after ``stop`` nothing more is observed. Does not prove the
    figure is exact (the timer sees the loop 10 times a second, not every wait)."""
    lag = metrics.LoopLag(interval=0.05)
    count, within = _sample("count"), _sample("bucket", {"le": "0.1"})

    async def run() -> tuple[float, float]:
        lag.start()
        await asyncio.sleep(0.2)
        free = _sample("count") - count
        time.sleep(0.3)  # the loop is blocked: the timer's callback cannot run
        await asyncio.sleep(0.2)
        await lag.stop()
        stopped = _sample("count")
        await asyncio.sleep(0.15)  # three ticks' time with the loop free
        return free, stopped

    free, stopped = asyncio.run(run())
    assert free >= 1
    late = (stopped - count) - (_sample("bucket", {"le": "0.1"}) - within)
    assert late >= 1
    assert _sample("count") == stopped
