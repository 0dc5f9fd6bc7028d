"""The protos with plain buf and protoc, as another team would use them: proto/ alone, offline."""

from __future__ import annotations

import importlib
import shutil
import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2

from serverprep.v1 import preparations_pb2, servers_pb2

REPO = Path(__file__).resolve().parents[2]
PROTO = REPO / "proto"
BUF = shutil.which("buf") or str(Path(sys.executable).parent / "buf")
#: The commit each release image was made from (proto/releases/README.md).
RELEASES = {"v0.1.0": "1413757910f6c705c81d2ad5f759b694512fdc27", "v0.2.0": "49595a8e2771839571193835c774c72fc24b19a0"}
#: The newest release image: the one buf.yaml's FILE rules are checked against.
LAST = max(RELEASES, key=lambda tag: tuple(int(n) for n in tag[1:].split(".")))
API_FILES = ["serverprep/v1/preparations.proto", "serverprep/v1/servers.proto"]
VENDORED = ["google/rpc/status.proto", "google/rpc/error_details.proto", "grpc/health/v1/health.proto",
            "grpc/reflection/v1/reflection.proto", "grpc/reflection/v1alpha/reflection.proto"]


@pytest.fixture(autouse=True)
def need_buf():
    if not Path(BUF).exists():
        pytest.fail("buf is not installed (pip install buf-bin)")


def buf(*args: str, cwd: Path = PROTO) -> subprocess.CompletedProcess[str]:
    return subprocess.run([BUF, *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def served_files() -> dict[str, descriptor_pb2.FileDescriptorProto]:
    data = resources.files("serverprep.v1").joinpath("serverprep.binpb").read_bytes()
    return {f.name: f for f in descriptor_pb2.FileDescriptorSet.FromString(data).file}


@pytest.mark.parametrize("command", [["build"], ["lint"], ["format", "--diff", "--exit-code", "--path", "serverprep"]])
def test_plain_buf_in_proto(command):
    out = buf(*command)
    assert (out.returncode, out.stdout, out.stderr) == (0, "", ""), out


def test_buf_lists_the_api_and_the_vendored_files():
    assert sorted(buf("ls-files").stdout.split()) == sorted(API_FILES + VENDORED)


def test_every_release_image_is_listed_here():
    assert sorted(p.stem for p in (PROTO / "releases").glob("*.binpb")) == sorted(RELEASES)


def test_buf_breaking_against_the_last_release():
    out = buf("breaking", "--against", f"releases/{LAST}.binpb")
    assert (out.returncode, out.stdout, out.stderr) == (0, "", ""), out
    # And as ./dev test runs it: FILE against the newest release, WIRE_JSON against every one.
    out = subprocess.run([sys.executable, "proto/generate.py", "--breaking"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out


def _copy_of_proto(tmp_path: Path) -> Path:
    copy = tmp_path / "proto"
    shutil.copytree(PROTO, copy, ignore=shutil.ignore_patterns("*.py", "*.pyi", "__pycache__"))
    return copy


def test_buf_breaking_and_lint_do_fail(tmp_path):
    """The checks above can fail: a renumbered field breaks the last release, an enum without a zero _UNSPECIFIED fails lint."""
    copy = _copy_of_proto(tmp_path)
    servers = copy / "serverprep" / "v1" / "servers.proto"
    servers.write_text(servers.read_text().replace("string host_key_fingerprint = 6;", "string host_key_fingerprint = 16;"))
    servers.write_text(servers.read_text() + "\nenum Colour {\n  RED = 0;\n}\n")
    broken = buf("breaking", "--against", f"releases/{LAST}.binpb", cwd=copy)
    assert broken.returncode != 0 and 'field "6" with name "host_key_fingerprint"' in broken.stdout, broken
    lint = buf("lint", cwd=copy)
    assert lint.returncode != 0 and 'Enum zero value name "RED" should be suffixed with "_UNSPECIFIED"' in lint.stdout, lint


@pytest.mark.parametrize("tag", sorted(RELEASES))
def test_release_image_is_the_api_at_the_release_commit(tmp_path, tag):
    commit = RELEASES[tag]
    kind = subprocess.run(["git", "cat-file", "-t", commit], cwd=REPO, capture_output=True, text=True).stdout.strip()
    if not kind:
        pytest.skip(f"commit {commit} is not in this clone (shallow?)")
    # A commit, not a tag object: a clone made without tags (as CI's may be) has the commit only.
    assert kind == "commit", (tag, commit, kind)
    out = tmp_path / f"{tag}.binpb"
    result = subprocess.run(
        [sys.executable, "proto/generate.py", "--release-image", tag, "--ref", commit, "--output", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result
    assert out.read_bytes() == (PROTO / "releases" / f"{tag}.binpb").read_bytes()


def test_protoc_with_only_proto_and_well_known_types_is_clean(tmp_path):
    """grpc_tools' protoc: no error and no warning (an unused import, for one, would warn)."""
    well_known = resources.files("grpc_tools") / "_proto"
    result = subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", f"-I{PROTO}", f"-I{well_known}",
         f"--python_out={tmp_path}", f"--grpc_python_out={tmp_path}",
         f"--descriptor_set_out={tmp_path / 'all.binpb'}", "--include_imports", *API_FILES, *VENDORED],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )
    assert (result.returncode, result.stdout, result.stderr) == (0, "", ""), result
    assert (tmp_path / "serverprep" / "v1" / "preparations_pb2_grpc.py").exists()


def test_language_options_are_set_and_consistent():
    options = [f.options for name, f in served_files().items() if name.startswith("serverprep/")]
    assert len(options) == len(API_FILES)
    for o in options:
        assert o.go_package == "serverprep.dev/go/serverprep/v1;serverprepv1"
        assert (o.java_package, o.java_multiple_files) == ("dev.serverprep.v1", True)
        assert (o.csharp_namespace, o.php_namespace, o.ruby_package) == ("Serverprep.V1", "Serverprep\\V1", "Serverprep::V1")
    outer = [o.java_outer_classname for o in options]
    assert len(set(outer)) == len(outer) and all(c.endswith("Proto") for c in outer)


def _without_json_names(messages) -> None:  # type: ignore[no-untyped-def]
    for message in messages:
        for field in message.field:
            field.ClearField("json_name")
        _without_json_names(message.nested_type)


def test_served_descriptors_are_the_ones_the_service_runs():
    """serverprep.binpb (reflection) and the generated modules (the servicers) come from the same protos.

    protoc writes json_name into descriptor sets, not into Python modules: both are compared without it."""
    served = served_files()
    for module in (preparations_pb2, servers_pb2):
        compiled = descriptor_pb2.FileDescriptorProto.FromString(module.DESCRIPTOR.serialized_pb)
        file = descriptor_pb2.FileDescriptorProto()
        file.CopyFrom(served[compiled.name])
        assert file.source_code_info.location, "the served file has no comments"
        file.ClearField("source_code_info")
        _without_json_names(file.message_type)
        _without_json_names(compiled.message_type)
        assert file == compiled


def _shape(file: descriptor_pb2.FileDescriptorProto) -> dict:
    """Services and messages as the wire sees them (names, numbers, types), without options or file names."""
    return {
        "package": file.package,
        "services": {s.name: [(m.name, m.input_type, m.output_type, m.client_streaming, m.server_streaming) for m in s.method] for s in file.service},
        "messages": {m.name: sorted((f.name, f.number, f.type, f.type_name, f.label) for f in m.field) for m in file.message_type},
    }


@pytest.mark.parametrize("vendored, runtime", [
    ("grpc/health/v1/health.proto", "grpc_health.v1.health_pb2"),
    ("grpc/reflection/v1alpha/reflection.proto", "grpc_reflection.v1alpha.reflection_pb2"),
])
def test_vendored_grpc_protos_match_what_grpcio_serves(vendored, runtime):
    module = importlib.import_module(runtime)
    compiled = descriptor_pb2.FileDescriptorProto.FromString(module.DESCRIPTOR.serialized_pb)
    assert _shape(served_files()[vendored]) == _shape(compiled)


def test_reflection_v1_has_the_same_messages_as_v1alpha():
    """serverprep.service.reflection answers both with one implementation (same field names): this is why it may."""
    files = served_files()
    v1 = _shape(files["grpc/reflection/v1/reflection.proto"])
    v1alpha = _shape(files["grpc/reflection/v1alpha/reflection.proto"])
    assert repr(v1alpha).replace("grpc.reflection.v1alpha", "grpc.reflection.v1") == repr(v1)

