"""What a finished preparation leaves in the service's memory, on a real sshd (a simulated server).

A preparation's own objects (its run, log journal, step agent, SSH session and connection wrapper)
must go when its task ends, by reference counting alone: the service's collector runs a full
collection rarely (``GC_YOUNGEST``), so whatever sits in a reference cycle waits, at N=1000 with
thousands of others. asyncssh's own connection objects are in cycles of asyncssh's making
(a connection keeps a bound method of itself) and are not checked here.
"""

from __future__ import annotations

import gc
from collections import Counter

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


def _left() -> Counter[str]:
    return Counter(type(o).__name__ for o in gc.get_objects() if isinstance(o, KINDS))


def test_a_finished_preparation_is_freed_without_the_garbage_collector(sim, service, client) -> None:  # type: ignore[no-untyped-def]
    """Succeeded; failed at a step; failed in the facts round trip (too much output, an error raised
    from a reading task); cancelled while a step ran: with the collector off, none of the four leaves
    an object of those five classes behind. Fails if any sits in a reference cycle: the step's
    output handlers held the agent, which holds the session they are set on; the run held the
    agent, whose session's handlers call the run; a read error raised in the facts round trip held
    the frame that held the tasks that held it. Timeouts, lost connections and shutdown are not run."""
    scheduler = service.service.scheduler

    def finish(prep_id: str, state: int, reason: str = "") -> Counter[str]:
        prep = wait_done(client, "sim", prep_id)
        assert (prep.state, prep.failure.reason) == (state, reason)
        service.call(scheduler.settled(prep_id))  # its task has closed the connection and the log
        return _left() - before

    register(client, sim)
    gc.collect()
    before = _left()  # what other tests of this process may still hold (nothing, as a rule)
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        left = [finish(client.prepare("sim", docker_source="distro").id, pb.PREPARATION_STATE_SUCCEEDED)]
        # The simulated server has no Docker repository key: the official source fails at a step.
        left.append(finish(client.prepare("sim", docker_source="official").id, pb.PREPARATION_STATE_FAILED, "STEP_FAILED"))
        behave(sim, "dpkg", 'case "$1" in --print-architecture) head -c 2000000 /dev/zero | tr "\\000" a; echo;; esac')
        left.append(finish(client.prepare("sim", docker_source="distro").id, pb.PREPARATION_STATE_FAILED, "FACTS_FAILED"))
        behave(sim, "dpkg", "")
        behave(sim, "apt-get", "sleep 30")
        prep = client.prepare("sim", docker_source="distro")
        wait_step(client, "sim", "update_packages", pb.STEP_STATE_RUNNING)
        client.cancel("sim", prep.id)
        left.append(finish(prep.id, pb.PREPARATION_STATE_CANCELLED, "CANCELLED"))
    finally:
        if was_enabled:
            gc.enable()
    assert left == [Counter()] * 4
