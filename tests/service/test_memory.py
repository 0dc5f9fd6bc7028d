"""What a finished preparation leaves in the service's memory, on a real sshd (a simulated server).

A preparation's own objects (its run, log journal, step agent, SSH session and connection wrapper)
must go when its task ends, by reference counting alone: the service's collector runs a full
collection rarely (``GC_YOUNGEST``), so whatever sits in a reference cycle waits, at N=1000 with
thousands of others. asyncssh's own connection objects are in cycles of asyncssh's making
(a connection keeps a bound method of itself) and are not checked here.
"""

from __future__ import annotations

import gc
import time

import pytest

from conftest import register, wait_done, wait_step
from harness.targets import behave
from serverprep.service.journal import Journal
from serverprep.service.runner import Run
from serverprep.service.ssh import Connection, Session
from serverprep.service.steps import Agent
from serverprep.v1 import preparations_pb2 as pb

pytestmark = pytest.mark.sshd

KINDS = (Run, Journal, Agent, Session, Connection)


def _released(service, timeout: float = 10) -> None:  # type: ignore[no-untyped-def]
    """Wait until the scheduler has let go of every task (it closes connections after the end is stored)."""
    deadline = time.monotonic() + timeout
    while service.service.scheduler._tasks:
        assert time.monotonic() < deadline, "the preparation's task did not end"
        time.sleep(0.05)


def _left() -> list[str]:
    return sorted(type(o).__name__ for o in gc.get_objects() if isinstance(o, KINDS))


def test_a_finished_preparation_is_freed_without_the_garbage_collector(sim, service, client) -> None:  # type: ignore[no-untyped-def]
    """Succeeded, failed at a step, cancelled while a step runs: with the collector off, none of the
    three leaves an object of its own behind. Fails if any of them sits in a reference cycle (the
    step's output handlers held the agent, and the run held them through its agent)."""
    register(client, sim)
    gc.collect()
    before = _left()  # what other tests of this process may still hold (nothing, as a rule)
    gc.disable()
    try:
        assert wait_done(client, "sim", client.prepare("sim", docker_source="distro").id).state == pb.PREPARATION_STATE_SUCCEEDED
        _released(service)
        succeeded = _left()

        # The simulated server has no Docker repository key: the official source fails at a step.
        failed = wait_done(client, "sim", client.prepare("sim", docker_source="official").id)
        assert failed.state == pb.PREPARATION_STATE_FAILED and failed.failure.reason == "STEP_FAILED"
        _released(service)
        after_failure = _left()

        behave(sim, "apt-get", "sleep 30")
        prep = client.prepare("sim", docker_source="distro")
        wait_step(client, "sim", "update_packages", pb.STEP_STATE_RUNNING)
        client.cancel("sim", prep.id)
        assert wait_done(client, "sim", prep.id).state == pb.PREPARATION_STATE_CANCELLED
        _released(service)
        after_cancel = _left()
    finally:
        gc.enable()
    assert (succeeded, after_failure, after_cancel) == (before, before, before)
