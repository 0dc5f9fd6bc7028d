"""StreamLogs messages built from encoded entries: byte limits, order, states, shared encoding.

Proves the packing against protobuf's own parser; the service tests prove it over a real
gRPC stream (tests/service/test_attacks.py, the huge-line log).
"""

from __future__ import annotations

import copy
import dataclasses
import pickle
import random
import time

import pytest

from serverprep.service import convert
from serverprep.service.domain import LogEntry, PrepState, StepState, Stream
from serverprep.v1 import preparations_pb2 as pb


def entries(n: int, text: str = "x" * 90) -> list[LogEntry]:
    return [LogEntry(seq=i, time=time.time(), step="update_packages", stream=Stream.STDOUT, text=f"{text} {i}")
            for i in range(1, n + 1)]


def decode(messages: list[tuple[bytes, PrepState]]) -> list[pb.StreamLogsResponse]:
    return [pb.StreamLogsResponse.FromString(wire) for wire, _ in messages]


def test_a_batch_under_the_limit_is_one_message_equal_to_protobufs_own_encoding():
    batch = entries(50)
    messages = list(convert.stream_logs_messages(batch, PrepState.RUNNING, 1 << 20))
    assert len(messages) == 1
    expected = pb.StreamLogsResponse(entries=[convert.log_entry_pb(e) for e in batch],
                                      preparation_state=pb.PREPARATION_STATE_RUNNING)
    assert messages[0][0] == expected.SerializeToString()


def test_messages_stay_under_the_limit_keep_every_entry_in_order_and_let_a_large_one_pass_alone():
    batch = entries(300)
    batch[100] = LogEntry(seq=101, time=time.time(), step="update_packages", stream=Stream.STDERR, text="y" * 5000)
    limit = 2000
    messages = list(convert.stream_logs_messages(batch, PrepState.RUNNING, limit))
    decoded = decode(messages)
    assert [e.seq for m in decoded for e in m.entries] == [e.seq for e in batch]
    for (wire, _), message in zip(messages, decoded, strict=True):
        assert len(message.entries) == 1 or len(wire) <= limit + 3  # + the state field
    assert any(len(m.entries) == 1 and m.entries[0].seq == 101 for m in decoded)
    assert len(messages) > 10


def test_each_message_carries_the_state_after_its_last_entry():
    batch = entries(40)
    batch[9] = LogEntry(seq=10, time=time.time(), step="", stream=Stream.EVENT, text="preparation FAILED",
                        step_state=StepState.FAILED, prep_state=PrepState.FAILED)
    messages = list(convert.stream_logs_messages(batch, PrepState.RUNNING, 600))
    states = [(m.entries[-1].seq, m.preparation_state) for m in decode(messages)]
    assert all(state == pb.PREPARATION_STATE_RUNNING for last, state in states if last < 10)
    assert all(state == pb.PREPARATION_STATE_FAILED for last, state in states if last >= 10)
    assert messages[-1][1] is PrepState.FAILED


def test_an_entry_is_encoded_once_for_every_reader():
    batch = entries(20)
    first = list(convert.stream_logs_messages(batch, PrepState.RUNNING, 1 << 20))
    cached = convert.log_entry_fields(batch)
    assert all(again is wire for again, wire in zip(convert.log_entry_fields(batch), cached, strict=True))
    again = list(convert.stream_logs_messages(batch, PrepState.RUNNING, 1 << 20))
    assert again == first
    # A batch with entries not encoded yet (fresh from the database) is encoded then.
    mixed = batch[:10] + entries(5)
    assert decode(list(convert.stream_logs_messages(mixed, PrepState.RUNNING, 1 << 20)))[0].entries[-1].seq == 5


def test_entries_are_written_byte_for_byte_as_protobuf_writes_them():
    rng = random.Random(3)
    steps = ["", "detect_os", "update_packages", "ünïcode-step"]
    texts = ["", "a", "déjà ✓ 日本語", "x" * 127, "y" * 128, "z" * 20000, "\x00\x1b[1m"]
    times = [1795674243.0, 1795674243.716365814, 0.5, 1.0, 253402300797.25]
    for _ in range(2000):
        e = LogEntry(seq=rng.choice([0, 1, 127, 128, 300, 16383, 16384, 2**31, 2**62]), time=rng.choice(times) + rng.random() * rng.choice([0, 1]),
                     step=rng.choice(steps), stream=rng.choice(list(Stream)), text=rng.choice(texts),
                     step_state=rng.choice([None, *StepState]), prep_state=rng.choice([None, *PrepState]))
        expected = pb.StreamLogsResponse(entries=[convert.log_entry_pb(e)]).SerializeToString()
        assert convert.log_entry_fields([e]) == [expected], e


def test_an_entry_is_slotted_and_its_encoding_is_no_part_of_it():
    """LogEntry is slotted (one object for the collector, not two), and the encoding cached on it
    changes neither its equality nor its repr. Not frozen (a frozen dataclass is made 8 times slower,
    and one is made per line), so not hashable: nothing may use an entry as a key."""
    encoded = entries(1)[0]
    plain = dataclasses.replace(encoded)  # the same fields, not encoded
    convert.log_entry_fields([encoded])
    assert not hasattr(encoded, "__dict__") and plain._wire is None and encoded._wire
    assert encoded == plain and repr(encoded) == repr(plain)
    with pytest.raises(TypeError, match="unhashable"):
        hash(encoded)


def test_an_entry_copies_and_pickles_encoded_or_not():
    """A slot left unset broke copy and pickle (the dataclass's state is read field by field)."""
    entry = entries(1)[0]
    for encoded in (False, True):
        if encoded:
            convert.log_entry_fields([entry])
        for again in (copy.copy(entry), copy.deepcopy(entry), pickle.loads(pickle.dumps(entry))):
            assert again == entry and again._wire == entry._wire and (again._wire is not None) == encoded
