"""Faults found by attacking the service (issue 8), each with the test that failed before its fix.

They run against the real service (gRPC on a port, SQLite) and a real sshd whose package tools
are stand-ins (a simulation: these prove the service, not a distro). Figures are printed (-s).
"""

from __future__ import annotations

import logging
import random
import time

import grpc
import pytest

from conftest import register, wait_done, wait_step
from harness.targets import behave
from serverprep.clients.client import TERMINAL, ServerprepClientError
from serverprep.v1 import preparations_pb2 as pb

pytestmark = pytest.mark.sshd


def test_cancel_at_any_moment_always_ends_the_preparation(client, sim, caplog):
    """1. A Cancel that lands while a transition is being stored left the preparation RUNNING forever
    (IntegrityError: the batch was stored, put back as unflushed, and inserted again)."""
    caplog.set_level(logging.ERROR)
    register(client, sim)
    behave(sim, "apt-get", "sleep 20")
    rng = random.Random(8)
    rounds, deadline = 0, time.monotonic() + 75
    outcomes: dict[str, int] = {}
    while rounds < 200 and time.monotonic() < deadline:
        rounds += 1
        if rounds % 4 == 0:
            try:
                prep = client.retry("sim")
            except ServerprepClientError:
                prep = client.prepare("sim", docker_source="distro")
        else:
            prep = client.prepare("sim", docker_source="distro")
        time.sleep(rng.choice((0, 0, 0.001, 0.003, 0.005, 0.01, 0.03, 0.08)))
        try:
            client.cancel("sim", prep.id)
        except ServerprepClientError as e:
            assert e.reason == "NOT_CANCELLABLE", e  # it ended by itself first: fine
        final = wait_done(client, "sim", prep.id, timeout=15)
        name = pb.PreparationState.Name(final.state)
        outcomes[name] = outcomes.get(name, 0) + 1
        assert final.state in TERMINAL
        assert not any(s.state == pb.STEP_STATE_RUNNING for s in final.steps), final
        seqs = [e.seq for e in client.stream_logs("sim", prep.id, follow=False)]
        assert seqs == list(range(1, len(seqs) + 1)), "a log entry was lost or stored twice"
    print(f"\ncancel storm: {rounds} rounds, outcomes {outcomes}")
    assert rounds >= 100
    crashes = [r.getMessage() for r in caplog.records if "crashed" in r.getMessage() or "left" in r.getMessage()]
    assert not crashes
    # The server is free: a new preparation is accepted and can run to its end.
    behave(sim, "apt-get", "")
    assert wait_done(client, "sim", client.prepare("sim", docker_source="distro").id).state == pb.PREPARATION_STATE_SUCCEEDED
