"""A Node.js client (@grpc/grpc-js, @grpc/proto-loader, only proto/) against the real service and a simulated server."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import wait_done
from serverprep.v1 import preparations_pb2

REPO = Path(__file__).resolve().parents[2]
NODE_DIR = REPO / "tests" / "node"
STEPS = ["detect_os", "update_packages", "install_dependencies", "install_docker", "start_docker", "configure_user", "verify_docker"]


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(f"{name} is not installed: ./dev test installs Node.js and npm for CI")
        pytest.skip(f"{name} is not installed")
    return path


@pytest.fixture(scope="module")
def node_client() -> list[str]:
    """`npm ci` from package-lock.json into tests/node/node_modules (git-ignored), then the command to run."""
    node, npm = _tool("node"), _tool("npm")
    result = subprocess.run(
        [npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--prefer-offline"],
        cwd=NODE_DIR, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, f"npm ci failed:\n{result.stdout}\n{result.stderr}"
    return [node, str(NODE_DIR / "client.js")]


def run_node(command: list[str], config: dict, tmp_path: Path) -> list[dict]:
    path = tmp_path / "node-client.json"
    path.touch(mode=0o600)
    path.write_text(json.dumps(config))
    result = subprocess.run([*command, str(path)], capture_output=True, text=True, timeout=240)
    print(result.stdout)  # the run, for pytest -s and failure reports
    events = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    assert result.returncode == 0, f"node exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
    assert result.stderr == "", result.stderr
    return events


@pytest.mark.sshd
def test_node_client_full_flow_and_error_details(node_client, service, client, sim, tmp_path):
    """Proves the protos serve a Node client with no other files: create, idempotent prepare, the whole
    log stream, status, and ErrorInfo/BadRequest decoded from the trailer. The server is simulated
    (stand-in package tools), so it proves the API, not a real Docker install."""
    config = {
        "address": service.address,
        "proto_root": str(REPO / "proto"),
        "server": {"name": "sim", "host": sim.host, "port": sim.port, "user": sim.user,
                   "private_key": sim.key.private, "host_key": sim.host_key},
    }
    events = run_node(node_client, config, tmp_path)
    by_event: dict[str, list[dict]] = {}
    for event in events:
        by_event.setdefault(event["event"], []).append(event)
    assert [e["event"] for e in events][-1] == "done", events

    created = by_event["created"][0]
    assert created["name"] == "sim" and created["has_private_key"] is True
    assert created["host_key_fingerprint"].startswith("SHA256:")
    assert "credentials" not in created["returned_fields"]

    prepared = by_event["prepared"][0]
    assert prepared["state"] in ("PREPARATION_STATE_PENDING", "PREPARATION_STATE_RUNNING")
    assert prepared["docker_source"] == "DOCKER_SOURCE_DISTRO"
    assert by_event["prepared_again"][0]["id"] == prepared["id"]  # same request_id, same preparation

    logs = by_event["logs"][0]
    assert logs["seqs"] == list(range(1, len(logs["seqs"]) + 1)) and len(logs["seqs"]) > 20
    assert logs["final_state"] == "PREPARATION_STATE_SUCCEEDED"
    assert ["verify_docker", "STEP_STATE_SUCCEEDED"] in logs["step_transitions"]
    assert "LOG_STREAM_EVENT" in logs["streams"] and "LOG_STREAM_STDOUT" in logs["streams"]

    status = by_event["status"][0]
    assert status["id"] == prepared["id"] and status["state"] == "PREPARATION_STATE_SUCCEEDED"
    assert [name for name, _ in status["steps"]] == STEPS
    assert {state for _, state in status["steps"]} <= {"STEP_STATE_SUCCEEDED", "STEP_STATE_SKIPPED"}
    assert status["operating_system"]["id"] == "debian" and status["operating_system"]["codename"] == "bookworm"
    assert status["last_seq"] == logs["seqs"][-1]
    # What Node saw is what the service stored, read back through the Python client.
    stored = wait_done(client, "sim", prepared["id"])
    assert stored.state == preparations_pb2.PREPARATION_STATE_SUCCEEDED and stored.last_seq == status["last_seq"]

    errors = {e["call"]: e for e in by_event["error"]}
    unknown = errors["Prepare unknown server"]
    assert (unknown["code_name"], unknown["status_code"]) == ("NOT_FOUND", 5)
    [info] = [d for d in unknown["details"] if d["type"] == "google.rpc.ErrorInfo"]
    assert info["reason"] == "SERVER_NOT_FOUND" and info["domain"] == "serverprep.dev"
    assert info["metadata"] == {"server": "no-such-server"}

    exists = errors["CreateServer existing"]
    assert exists["code_name"] == "ALREADY_EXISTS"
    assert [d["reason"] for d in exists["details"] if d["type"] == "google.rpc.ErrorInfo"] == ["SERVER_EXISTS"]

    invalid = errors["CreateServer invalid"]
    assert invalid["code_name"] == "INVALID_ARGUMENT"
    [bad] = [d for d in invalid["details"] if d["type"] == "google.rpc.BadRequest"]
    fields = {v["field"] for v in bad["field_violations"]}
    assert {"name", "host", "user", "port"} <= fields, bad
    assert all(v["description"] for v in bad["field_violations"])
    assert "unexpected_success" not in by_event and "fatal" not in by_event


def test_node_client_reports_an_unreachable_service(node_client, tmp_path):
    """The program fails loudly (exit 2, a fatal line with UNAVAILABLE) rather than hanging or passing."""
    from harness.targets import free_port

    config = {"address": f"127.0.0.1:{free_port()}", "proto_root": str(REPO / "proto"),
              "server": {"name": "x", "host": "127.0.0.1", "port": 22, "user": "u", "private_key": "k", "host_key": "k"}}
    path = tmp_path / "node-client.json"
    path.write_text(json.dumps(config))
    result = subprocess.run([*node_client, str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result
    fatal = json.loads(result.stdout.splitlines()[-1])
    assert fatal["event"] == "fatal" and fatal["code"] == 14, fatal  # UNAVAILABLE
