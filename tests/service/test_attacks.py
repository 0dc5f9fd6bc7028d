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


def test_a_log_of_huge_invalid_utf8_lines_stays_readable_by_every_client(service, client, sim, tmp_path):
    """2. 300 lines of 16,000 bytes of \\377 (each byte becomes U+FFFD, 3 bytes) made a StreamLogs
    message of 14 MB that every client refused ('Received message larger than max')."""
    register(client, sim)
    behave(sim, "apt-get", 'case "$*" in *update) i=0; while [ $i -lt 300 ]; do head -c 16000 /dev/zero | tr "\\000" "\\377"; '
                           'echo; i=$((i+1)); done;; esac')
    prep = client.prepare("sim", docker_source="distro")
    assert wait_done(client, "sim", prep.id).state == pb.PREPARATION_STATE_SUCCEEDED
    from serverprep.v1 import preparations_pb2_grpc as pb_grpc

    with grpc.insecure_channel(service.address) as channel:  # default limits: 4 MiB per message received
        stub = pb_grpc.PreparationServiceStub(channel)
        sizes, entries = [], 0
        for response in stub.StreamLogs(pb.StreamLogsRequest(server="sim", preparation_id=prep.id, no_follow=True)):
            sizes.append(response.ByteSize())
            entries += len(response.entries)
        resumed = next(stub.StreamLogs(pb.StreamLogsRequest(server="sim", preparation_id=prep.id, after_seq=5, no_follow=True)))
    wide = [e for e in client.stream_logs("sim", prep.id, follow=False) if len(e.text) == 16000]
    print(f"\nhuge lines: {len(wide)} stored; {len(sizes)} messages, largest {max(sizes):,} bytes, {entries} entries")
    assert len(wide) == 300 and set(wide[0].text) == {"\ufffd"}
    assert max(sizes) <= 1024 * 1024 + 64 * 1024
    assert resumed.entries[0].seq == 6
    from conftest import GRPCURL

    import subprocess

    out = subprocess.run([GRPCURL, "-plaintext", "-d", f'{{"server": "sim", "preparation_id": "{prep.id}", "no_follow": true}}',
                          service.address, "serverprep.v1.PreparationService/StreamLogs"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-500:]
    cli = subprocess.run([__import__("sys").executable, "-m", "serverprep.clients.cli", "--address", service.address, "logs", "sim"],
                         capture_output=True, text=True, timeout=120)
    assert cli.returncode == 0 and cli.stdout.count("\ufffd" * 100) >= 300, cli.stderr[-500:]
