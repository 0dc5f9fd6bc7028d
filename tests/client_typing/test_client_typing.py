"""mypy --strict on example consumers of the installed client distribution: types reach them, mistakes are found."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent
ROOT = HERE.parents[1]


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the serverprep-client wheel built from clients/ (no dependencies: mypy only reads it)."""
    if shutil.which("mypy", path=str(Path(sys.executable).parent)) is None:
        if os.environ.get("CI"):
            pytest.fail("mypy is not installed: it is in the dev extras")
        pytest.skip("mypy is not installed")
    work = tmp_path_factory.mktemp("client-typing")
    # Built from a copy: a build leaves build/ and *.egg-info behind, which must not land in the working tree.
    junk = shutil.ignore_patterns("build", "*.egg-info", "__pycache__", "node_modules")
    for tree in ("clients", "proto"):
        shutil.copytree(ROOT / tree, work / "src" / tree, ignore=junk)
    pip = [sys.executable, "-m", "pip", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", str(work / "src" / "clients"), "-w", str(work / "wheel")],
                   check=True, timeout=300)
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(work / "venv")], check=True, timeout=120)
    wheel = next((work / "wheel").glob("serverprep_client-*.whl"))
    subprocess.run([*pip, "--python", str(work / "venv" / "bin" / "python"), "install", "--no-deps", "--no-index", str(wheel)],
                   check=True, timeout=300)
    return work / "venv"


def mypy(venv: Path, source: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mypy", "--strict", "--no-incremental", "--show-error-codes",
                           "--python-executable", str(venv / "bin" / "python"), str(source)],
                          capture_output=True, text=True, timeout=300, cwd=HERE)


def test_the_wheel_depends_on_grpcio_protobuf_and_the_google_rpc_types_only(installed):
    metadata = next((installed / "lib").glob("python3*/site-packages/serverprep_client-*.dist-info/METADATA")).read_text()
    requires: dict[str, list[str]] = {}
    for line in metadata.splitlines():
        if line.startswith("Requires-Dist:"):
            spec = line.split(":", 1)[1].strip()
            extra = m.group(1) if (m := re.search(r'extra == "([a-z]+)"', spec)) else ""
            requires.setdefault(extra, []).append(re.split(r"[<>=! ;\[]", spec)[0])
    assert sorted(requires.pop("")) == ["googleapis-common-protos", "grpcio", "protobuf"]
    # The MCP server and the web view are extras: installing the client alone does not pull them in.
    assert set(requires) == {"mcp", "web"}, requires
    site = next((installed / "lib").glob("python3*/site-packages"))
    assert (site / "serverprep" / "clients" / "py.typed").exists()


def typed_messages(venv: Path) -> None:
    site = next((venv / "lib").glob("python3*/site-packages"))
    if not (site / "serverprep" / "v1" / "py.typed").exists():
        pytest.fail("serverprep.v1 ships no py.typed, so type checkers see every message as Any: add an empty "
                    "proto/serverprep/v1/py.typed (clients/pyproject.toml lists it in the package data)")


def test_mypy_strict_accepts_the_example_consumer_and_sees_the_message_types(installed):
    typed_messages(installed)
    out = mypy(installed, HERE / "consumer.py")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Success: no issues found" in out.stdout


def test_mypy_strict_finds_each_mistake_of_the_bad_consumer(installed):
    typed_messages(installed)
    source = HERE / "bad_consumer.py"
    expected = {(n, m.group(1)) for n, line in enumerate(source.read_text().splitlines(), 1)
                if (m := re.search(r"# error: ([a-z-]+)$", line))}
    out = mypy(installed, source)
    found = {(int(m.group(1)), m.group(2)) for m in re.finditer(r"bad_consumer\.py:(\d+): error: .*\[([a-z-]+)\]$", out.stdout, re.M)}
    assert found == expected, out.stdout
