"""Several service processes on one database (SQLite file or PostgreSQL): ownership, heartbeats,
take-over after a crash, Cancel and StreamLogs across replicas; leftovers of a crashed attempt."""

import os
import signal
import time

import pytest

from conftest import SIM_USER, register, wait_done, wait_step
from harness.service import service_process
from harness.targets import behave
from serverprep.clients.client import Client
from serverprep.v1 import preparations_pb2 as pb

pytestmark = pytest.mark.sshd
USER = SIM_USER
SECRET = {"SERVERPREP_SECRET_KEY": "shared replica key"}  # replicas share the key, like the database






def replica(tmp_path, name, database_url):
    data = tmp_path / name
    data.mkdir(exist_ok=True)
    return service_process(data, "--replica", name, "--database", database_url, "--stale-after", "2", env=SECRET)


def test_replicas_share_work_without_stepping_on_each_other(tmp_path, database_url, sim):
    pidfile = sim.extra["sim"] / "apt.pid"
    with replica(tmp_path, "r1", database_url) as (p1, a1), Client(a1) as c1:
        register(c1, sim)
        behave(sim, "apt-get", f'echo $$ > {pidfile}; echo started; sleep 300')
        prep = c1.prepare("sim", docker_source="distro")
        wait_step(c1, "sim", "update_packages", pb.STEP_STATE_RUNNING)
        # A second replica starting (and restarting) leaves r1's running preparation alone.
        with replica(tmp_path, "r2", database_url) as (_, a2):
            pass
        with replica(tmp_path, "r2", database_url) as (_, a2), Client(a2) as c2:
            time.sleep(3)  # longer than --stale-after: r1's heartbeats keep it alive
            assert c2.status("sim").state == pb.PREPARATION_STATE_RUNNING
            # r2 streams r1's live log, and Cancel through r2 stops it on r1 (and on the server).
            texts = []
            for entry in c2.stream_logs("sim", prep.id):
                texts.append(entry.text)
                if entry.text == "started":
                    cancelled = c2.cancel("sim")
                    break
            assert cancelled.state == pb.PREPARATION_STATE_CANCELLED, cancelled
            pid = int(pidfile.read_text())
            deadline = time.monotonic() + 10
            while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
                time.sleep(0.1)
            assert not os.path.exists(f"/proc/{pid}")
            assert "$ report who holds the dpkg/apt lock, if anyone" in texts


def test_a_crashed_replica_is_taken_over(tmp_path, database_url, sim):
    with replica(tmp_path, "r2", database_url) as (_, a2), Client(a2) as c2:
        with replica(tmp_path, "r1", database_url) as (p1, a1), Client(a1) as c1:
            register(c1, sim)
            behave(sim, "apt-get", "sleep 300")
            prep = c1.prepare("sim", docker_source="distro")
            wait_step(c1, "sim", "update_packages", pb.STEP_STATE_RUNNING)
            os.kill(p1.pid, signal.SIGKILL)
            killed = time.monotonic()
            p1.wait()
        deadline = time.monotonic() + 20
        while c2.status("sim").state == pb.PREPARATION_STATE_RUNNING and time.monotonic() < deadline:
            time.sleep(0.1)
        after = c2.status("sim")
        print(f"\nreplica r1 killed: r2 recorded INTERRUPTED after {time.monotonic() - killed:.1f}s (stale after 2 s)")
        assert (after.state, after.failure.reason) == (pb.PREPARATION_STATE_FAILED, "INTERRUPTED")
        assert "replica 'r1' stopped" in after.failure.message
        behave(sim, "apt-get", "")
        c2.retry("sim")
        done = wait_done(c2, "sim", prep.id)
        assert done.state == pb.PREPARATION_STATE_SUCCEEDED


def test_retry_after_a_crash_stops_what_the_crashed_attempt_left_running(tmp_path, sim):
    pidfile = sim.extra["sim"] / "apt.pid"
    with service_process(tmp_path) as (proc, address), Client(address) as client:
        register(client, sim)
        behave(sim, "apt-get", f"echo $$ > {pidfile}; exec sleep 300")  # silent: survives its SSH session
        prep = client.prepare("sim", docker_source="distro")
        wait_step(client, "sim", "update_packages", pb.STEP_STATE_RUNNING)
        while not pidfile.exists():
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    leftover = int(pidfile.read_text())
    time.sleep(0.5)
    assert os.path.exists(f"/proc/{leftover}"), "the test needs the old command to outlive the service"
    with service_process(tmp_path) as (_, address), Client(address) as client:
        behave(sim, "apt-get", "")
        client.retry("sim")
        done = wait_done(client, "sim", prep.id)
        assert done.state == pb.PREPARATION_STATE_SUCCEEDED
        texts = [e.text for e in client.stream_logs("sim", prep.id, follow=False)]
    assert any(t.startswith("stopping what is left of the previous attempt (process group") for t in texts)
    deadline = time.monotonic() + 10
    while os.path.exists(f"/proc/{leftover}") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not os.path.exists(f"/proc/{leftover}")
