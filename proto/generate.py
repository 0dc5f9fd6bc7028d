"""Regenerates the protobuf and gRPC modules of serverprep.v1: the only writer of generated code.

    python proto/generate.py          # rewrite proto/serverprep/v1/*_pb2*.py(i)
    python proto/generate.py --check  # exit 1 when the committed modules are stale
    python proto/generate.py --lint   # buf lint (STANDARD), offline
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import subprocess
import sys
import tempfile
from importlib import resources
from pathlib import Path

from grpc_tools import protoc

PROTO_ROOT = Path(__file__).resolve().parent
PACKAGE = PROTO_ROOT / "serverprep" / "v1"
GENERATED = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")


def _include_dirs() -> list[str]:
    well_known = resources.files("grpc_tools") / "_proto"
    # google/rpc/*.proto ship with googleapis-common-protos, next to their modules.
    import google.rpc.status_pb2 as status_pb2

    googleapis = Path(status_pb2.__file__).resolve().parents[2]
    return [str(PROTO_ROOT), str(well_known), str(googleapis)]


def generate(out: Path) -> None:
    protos = sorted(str(p.relative_to(PROTO_ROOT)) for p in PACKAGE.glob("*.proto"))
    args = ["grpc_tools.protoc", *(f"-I{d}" for d in _include_dirs())]
    args += [f"--python_out={out}", f"--pyi_out={out}", f"--grpc_python_out={out}", *protos]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")


def generated_files(root: Path) -> set[str]:
    return {p.name for p in (root / "serverprep" / "v1").iterdir() if p.name.endswith(GENERATED)}


def lint() -> int:
    """Run buf lint offline: googleapis' protos come from the installed package, not the BSR."""
    buf = shutil.which("buf") or str(Path(sys.executable).parent / "buf")
    googleapis = Path(_include_dirs()[2])
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copytree(PROTO_ROOT / "serverprep", Path(tmp, "api", "serverprep"), ignore=shutil.ignore_patterns("*.py", "*.pyi", "__pycache__"))
        shutil.copytree(googleapis / "google" / "rpc", Path(tmp, "third_party", "google", "rpc"), ignore=shutil.ignore_patterns("*.py", "*.pyi", "__pycache__"))
        config = (PROTO_ROOT / "buf.yaml").read_text()
        config = config.replace("  - path: .\n", "  - path: api\n  - path: third_party\n").replace(" serverprep/", " api/serverprep/")
        Path(tmp, "buf.yaml").write_text(config)
        return subprocess.run([buf, "lint", "api"], cwd=tmp).returncode


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the committed modules are stale")
    parser.add_argument("--lint", action="store_true", help="run buf lint")
    args = parser.parse_args()
    if args.lint:
        return lint()
    if not args.check:
        generate(PROTO_ROOT)
        return 0
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


if __name__ == "__main__":
    sys.exit(main())
