"""Operating it: Prometheus metrics on their own port and one JSON log line per transition, from a real
`serverprep serve` process preparing a simulated server (real sshd, stand-in package tools)."""

from __future__ import annotations

import json
import os
import time
import urllib.request

import pytest

from conftest import register, wait_done
from harness.service import service_process
from harness.targets import behave, free_port
from serverprep.clients.client import Client, ServerprepClientError
from serverprep.service.store.migrations import LATEST
from serverprep.v1 import preparations_pb2 as pb

pytestmark = pytest.mark.sshd
UNAUTHENTICATED_STATUS = '{code="UNAUTHENTICATED",method="PreparationService/Status"}'


def scrape(port: int) -> dict[str, float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples


def test_metrics_and_json_logs_tell_what_happened(tmp_path, sim):
    port = free_port()
    env = {"SERVERPREP_TOKEN": "t0ken-secret-4711"}
    with service_process(tmp_path, "--metrics-listen", f"127.0.0.1:{port}", "--log-format", "json", env=env) as (_, address):
        with Client(address, token="t0ken-secret-4711") as client:
            register(client, sim)
            ok = wait_done(client, "sim", client.prepare("sim", docker_source="distro").id)
            behave(sim, "apt-get", 'case "$*" in *install*docker*) echo "E: Unable to locate package docker.io" >&2; exit 100;; esac')
            failed = wait_done(client, "sim", client.prepare("sim", docker_source="distro").id)
            list(client.stream_logs("sim", failed.id, follow=False))
        with Client(address, token="intruder-token-0815") as intruder, pytest.raises(ServerprepClientError):
            intruder.status("sim")
        # A refused call's status reaches the client before the service has counted the call (grpc sends an
        # abort's status at once): wait until the count shows, as a scraper a moment later would see it.
        deadline = time.monotonic() + 10
        while "serverprep_rpc_requests_total" + UNAUTHENTICATED_STATUS not in (m := scrape(port)) and time.monotonic() < deadline:
            time.sleep(0.05)
    assert ok.state == pb.PREPARATION_STATE_SUCCEEDED and failed.state == pb.PREPARATION_STATE_FAILED
    assert m['serverprep_preparations_total{driver="apt",reason="",state="SUCCEEDED"}'] == 1
    assert m['serverprep_preparations_total{driver="apt",reason="STEP_FAILED",state="FAILED"}'] == 1
    assert m['serverprep_step_duration_seconds_count{result="FAILED",step="install_docker"}'] == 1
    assert m['serverprep_step_duration_seconds_count{result="SUCCEEDED",step="verify_docker"}'] == 1
    assert m['serverprep_rpc_requests_total{code="OK",method="PreparationService/Prepare"}'] == 2
    assert m["serverprep_rpc_requests_total" + UNAUTHENTICATED_STATUS] == 1
    assert m['serverprep_rpc_rejected_total{reason="UNAUTHENTICATED"}'] == 1
    assert m["serverprep_ssh_connect_seconds_count"] == 3  # facts+steps, verify_docker; then facts+steps of the failed one
    assert m["serverprep_log_lines_stored_total"] > 20
    assert m["serverprep_event_loop_lag_seconds_count"] > 0  # the service's timer ran while it worked
    assert m['serverprep_db_calls_total{kind="write"}'] > 10 and m['serverprep_preparations_active{state="RUNNING"}'] == 0

    lines = [json.loads(line) for line in (tmp_path / "service.log").read_text().splitlines() if line.startswith("{")]
    assert lines, "no JSON log lines"
    start = next(entry for entry in lines if "schema" in entry["message"])
    applied = list(range(1, LATEST + 1))
    assert f"applied migrations {applied}" in start["message"] and "serverprep 0.2.0" in start["message"]
    ends = [entry for entry in lines if entry.get("preparation_id") == failed.id]
    assert [e["state"] for e in ends if "step" in e and e["step"] and e.get("duration_s") is not None][-1] == "FAILED"
    final = ends[-1]
    assert (final["state"], final["reason"], final["server"], final["level"]) == ("FAILED", "STEP_FAILED", "sim", "WARNING")
    rejected = [entry for entry in lines if entry.get("reason") == "UNAUTHENTICATED"]
    assert rejected and rejected[0]["method"] == "/serverprep.v1.PreparationService/Status"
    assert "t0ken-secret" not in (tmp_path / "service.log").read_text() and "intruder-token" not in (tmp_path / "service.log").read_text()
    print("\n" + "\n".join(json.dumps(e) for e in ends[-3:]))
    print(os.linesep.join(f"{k} {v}" for k, v in m.items() if k.startswith("serverprep_preparations_total")))
