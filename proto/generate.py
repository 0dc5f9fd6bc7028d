"""Regenerates the protobuf and gRPC modules of serverprep.v1 and their descriptor set: the only writer of generated code.

    python proto/generate.py              # rewrite proto/serverprep/v1/*_pb2*.py(i) and serverprep.binpb
    python proto/generate.py --check      # exit 1 when the committed generated files are stale
    python proto/generate.py --lint       # buf build, buf lint (STANDARD) and buf format, offline
    python proto/generate.py --breaking   # buf breaking against the release images in proto/releases/
    python proto/generate.py --release-image v0.2.0 [--ref v0.2.0]
                                          # write proto/releases/v0.2.0.binpb from the API at a git ref

Everything is read from proto/ alone: the API in serverprep/, the vendored google/rpc and grpc
protos (THIRD_PARTY.md) and the well-known types that ship with protoc (grpc_tools) and buf.
"""

from __future__ import annotations

import argparse
import filecmp
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from importlib import resources
from io import BytesIO
from pathlib import Path

PROTO_ROOT = Path(__file__).resolve().parent
PACKAGE = PROTO_ROOT / "serverprep" / "v1"
RELEASES = PROTO_ROOT / "releases"
GENERATED = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")
#: Served by reflection beside the API (serverprep.service.reflection), with their comments.
DESCRIPTOR_SET = "serverprep.binpb"
SERVED_WITH_API = (
    "google/rpc/status.proto",
    "google/rpc/error_details.proto",
    "grpc/health/v1/health.proto",
    "grpc/reflection/v1/reflection.proto",
    "grpc/reflection/v1alpha/reflection.proto",
)
#: Rules that must hold against every release, whatever buf.yaml excepts from FILE.
WIRE_CONFIG = '{"version": "v2", "breaking": {"use": ["WIRE_JSON"], "ignore": ["google", "grpc"]}}'


def well_known_dir() -> str:
    return str(resources.files("grpc_tools") / "_proto")


def api_protos() -> list[str]:
    return sorted(str(p.relative_to(PROTO_ROOT)) for p in PACKAGE.glob("*.proto"))


def protoc(*args: str) -> None:
    """Run grpc_tools' protoc with only proto/ and the well-known types; any warning is an error."""
    cmd = [sys.executable, "-m", "grpc_tools.protoc", f"-I{PROTO_ROOT}", f"-I{well_known_dir()}", *args]
    result = subprocess.run(cmd, capture_output=True, text=True, cwd=PROTO_ROOT)
    if result.returncode != 0 or result.stderr.strip() or result.stdout.strip():
        raise SystemExit(f"protoc failed or warned:\n{result.stdout}{result.stderr}")


def generate(out: Path) -> None:
    (out / "serverprep" / "v1").mkdir(parents=True, exist_ok=True)
    protoc(f"--python_out={out}", f"--pyi_out={out}", f"--grpc_python_out={out}", *api_protos())
    protoc(
        "--include_imports", "--include_source_info",
        f"--descriptor_set_out={out / 'serverprep' / 'v1' / DESCRIPTOR_SET}",
        *api_protos(), *SERVED_WITH_API,
    )


def generated_files(root: Path) -> set[str]:
    return {
        p.name for p in (root / "serverprep" / "v1").iterdir()
        if p.name.endswith(GENERATED) or p.name == DESCRIPTOR_SET
    }


def check() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        generate(Path(tmp))
        fresh, committed = generated_files(Path(tmp)), generated_files(PROTO_ROOT)
        stale = sorted(fresh ^ committed)
        stale += sorted(
            n for n in fresh & committed
            if not filecmp.cmp(Path(tmp, "serverprep", "v1", n), PACKAGE / n, shallow=False)
        )
    if stale:
        print("generated code is stale, run python proto/generate.py:", *stale, file=sys.stderr)
        return 1
    return 0


def buf(*args: str, cwd: Path = PROTO_ROOT) -> int:
    exe = shutil.which("buf") or str(Path(sys.executable).parent / "buf")
    print("$ buf", *args, flush=True)
    return subprocess.run([exe, *args], cwd=cwd).returncode


def lint() -> int:
    """buf build, buf lint and buf format on our own files, in proto/ as any buf user would run them."""
    return (
        buf("build")
        or buf("lint")
        or buf("format", "--diff", "--exit-code", "--path", "serverprep")
    )


def _version_key(path: Path) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", path.stem))


def release_images() -> list[Path]:
    return sorted(RELEASES.glob("v*.binpb"), key=_version_key)


def breaking() -> int:
    """FILE rules (buf.yaml) against the newest release; WIRE_JSON, with no exception, against every one."""
    images = release_images()
    if not images:
        print(f"no release image in {RELEASES}", file=sys.stderr)
        return 1
    newest = images[-1]
    config = (PROTO_ROOT / "buf.yaml").read_text()
    if newest.stem != "v0.1.0" and "FILE_SAME_GO_PACKAGE" in config:
        print(f"buf.yaml still excepts the v0.1.0 -> v0.2.0 option changes, but {newest.name} is newer: remove them", file=sys.stderr)
        return 1
    rc = buf("breaking", "--against", str(newest.relative_to(PROTO_ROOT)))
    for image in images:
        rc = rc or buf("breaking", "--against", str(image.relative_to(PROTO_ROOT)), "--config", WIRE_CONFIG)
    return rc


def release_image(version: str, ref: str, out: Path | None = None) -> int:
    """Build releases/<version>.binpb from the API files as they were at a git ref.

    Only serverprep/**/*.proto come from the ref; google/rpc and grpc come from today's tree,
    which is how v0.1.0 (whose buf.yaml could not resolve google/rpc offline) becomes buildable.
    """
    if not re.fullmatch(r"v\d+\.\d+\.\d+", version):
        print(f"release version must look like v1.2.3, not {version!r}", file=sys.stderr)
        return 2
    if out is None and (RELEASES / f"{version}.binpb").exists():
        print(f"{RELEASES / version}.binpb exists: release images are never rewritten (use --output to compare)", file=sys.stderr)
        return 1
    repo = PROTO_ROOT.parent
    archive = subprocess.run(["git", "archive", "--format=tar", ref, "proto/serverprep"], cwd=repo, capture_output=True)
    if archive.returncode != 0:
        print(f"cannot read proto/serverprep at {ref!r}: {archive.stderr.decode().strip()}", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        with tarfile.open(fileobj=BytesIO(archive.stdout)) as tar:
            members = [m for m in tar.getmembers() if m.isfile() and m.name.endswith(".proto")]
            for member in members:
                member.name = member.name.removeprefix("proto/")
            tar.extractall(tmp, members=members, filter="data")
        for vendored in ("google", "grpc"):
            shutil.copytree(PROTO_ROOT / vendored, Path(tmp, vendored))
        Path(tmp, "buf.yaml").write_text("version: v2\n")
        out = (out or RELEASES / f"{version}.binpb").resolve()
        return buf("build", "--exclude-source-info", "--path", "serverprep", "-o", str(out), cwd=Path(tmp))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the committed generated files are stale")
    parser.add_argument("--lint", action="store_true", help="run buf build, buf lint and buf format --diff")
    parser.add_argument("--breaking", action="store_true", help="run buf breaking against the release images")
    parser.add_argument("--release-image", metavar="VERSION", help="write releases/VERSION.binpb (e.g. v0.2.0)")
    parser.add_argument("--ref", help="git ref of the release (default: the tag named VERSION)")
    parser.add_argument("--output", type=Path, help="where --release-image writes (default: proto/releases/VERSION.binpb)")
    args = parser.parse_args()
    if args.release_image:
        return release_image(args.release_image, args.ref or args.release_image, args.output)
    if not (args.check or args.lint or args.breaking):
        generate(PROTO_ROOT)
        return 0
    chosen = [run for flag, run in ((args.check, check), (args.lint, lint), (args.breaking, breaking)) if flag]
    return max(run() for run in [*chosen])


if __name__ == "__main__":
    sys.exit(main())
