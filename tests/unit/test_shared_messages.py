"""The messages of a batch made once for the live readers of a preparation (serverprep.service.sharedlog).

Proves that what a reader gets is always what convert.stream_logs_messages makes of its own batch
(made once when the batch, the state before it and the limit are the same, never reused otherwise),
and that what is kept stays within its bounds. The service tests prove the messages over a real
gRPC stream with several readers (tests/service/test_backpressure.py and bench/logs.py's smoke run).
"""

from __future__ import annotations

import random
import time

from serverprep.service import convert
from serverprep.service.domain import LogEntry, PrepState, StepState, Stream
from serverprep.service.sharedlog import SharedMessages


def log(n: int, seed: int = 0) -> list[LogEntry]:
    rng = random.Random(seed)
    out = []
    for seq in range(1, n + 1):
        if rng.random() < 0.05:
            out.append(LogEntry(seq, time.time(), "install_docker", Stream.EVENT, f"step {seq} FAILED",
                                step_state=StepState.FAILED, prep_state=rng.choice([PrepState.FAILED, PrepState.RUNNING])))
        else:
            out.append(LogEntry(seq, time.time(), "update_packages", Stream.STDOUT, "x" * rng.randrange(0, 300)))
    return out


def test_readers_of_the_same_batch_share_its_messages_and_each_gets_what_convert_makes():
    entries, shared = log(2000), SharedMessages()
    rng = random.Random(1)
    for _ in range(300):
        prep = rng.choice(["p1", "p2"])
        first = rng.randrange(0, 1990)
        batch = entries[first : first + rng.choice([1, 5, 10])]
        state = rng.choice([PrepState.RUNNING, PrepState.FAILED])
        limit = rng.choice([300, 1 << 20])
        got = shared.messages(prep, batch, state, limit)
        assert got == list(convert.stream_logs_messages(batch, state, limit))
        again = shared.messages(prep, list(batch), state, limit)  # another reader: its own list of the same entries
        assert again is got
        # The same entries under another limit, or after another state: other messages, not the kept ones.
        other = PrepState.FAILED if state is PrepState.RUNNING else PrepState.RUNNING
        assert shared.messages(prep, batch, state, 301) == list(convert.stream_logs_messages(batch, state, 301))
        assert shared.messages(prep, batch, other, 301) == list(convert.stream_logs_messages(batch, other, 301))


def test_what_is_kept_stays_within_its_bounds():
    entries = log(3000, seed=2)
    shared = SharedMessages(max_bytes=20_000, max_one=8_000)
    for i in range(200):
        batch = entries[i * 10 : i * 10 + 10]
        shared.messages(f"p{i}", batch, PrepState.RUNNING, 1 << 20)
        kept = sum(size for _, _, size in shared._kept.values())
        assert shared.size == kept <= 20_000
    big = [LogEntry(1, time.time(), "s", Stream.STDOUT, "y" * 10_000)]
    first = shared.messages("big", big, PrepState.RUNNING, 1 << 20)
    assert "big" not in shared._kept and shared.messages("big", big, PrepState.RUNNING, 1 << 20) is not first
