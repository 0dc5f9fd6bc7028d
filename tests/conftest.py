"""Fixtures shared by every test layer: a fresh service and database per test, real SSH targets."""

from __future__ import annotations

import os
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.service import ServiceThread
from serverprep.clients.client import TERMINAL, Client

pytest_plugins = ["harness.exitguard"]

GRPCURL = shutil.which("grpcurl") or str(Path(sys.executable).parent / "grpcurl")

SIM_USER = "sp-sim"

DEBIAN_12 = """PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
VERSION="12 (bookworm)"
VERSION_CODENAME=bookworm
ID=debian
"""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    missing = [tool for tool in ("sshd", "systemd-nspawn", "debootstrap") if not shutil.which(tool) and not Path(f"/usr/sbin/{tool}").exists()]
    needs_root = os.geteuid() != 0
    for item in items:
        if "e2e" in item.keywords or "sshd" in item.keywords:
            if needs_root:
                item.add_marker(pytest.mark.skip(reason="needs root (real sshd and targets)"))
            elif missing and os.environ.get("CI"):
                # In CI a missing tool is a broken setup, not a reason to skip.
                raise pytest.UsageError(f"missing tools for real-target tests: {', '.join(missing)}")


@pytest.fixture
def sim() -> Iterator:
    """A simulated Debian 12 server (real sshd, stand-in package tools) where Docker is not yet running."""
    from harness.targets import behave, simulated_host

    with simulated_host(SIM_USER, DEBIAN_12) as target:
        behave(target, "systemctl", 'case "$1" in is-enabled|is-active) exit 3;; esac')
        yield target
        (target.extra["sim"] / "stop").touch()  # ends any stand-in loop left running


def register(client: Client, target, name: str = "sim", **overrides):  # type: ignore[no-untyped-def]
    """Register a test target as a server (its key and pinned host key unless overridden)."""
    args = dict(host=target.host, port=target.port, user=target.user, private_key=target.key.private, host_key=target.host_key)
    args.update(overrides)
    return client.create_server(name, **args)


@pytest.fixture
def service(tmp_path: Path) -> Iterator[ServiceThread]:
    svc = ServiceThread(tmp_path / "data").start()
    try:
        yield svc
    finally:
        svc.stop()


@pytest.fixture
def client(service: ServiceThread) -> Iterator[Client]:
    with service.client() as c:
        yield c


@pytest.fixture
def waiting(service: ServiceThread, client: Client, sim):  # type: ignore[no-untyped-def]
    """A preparation of ``sim`` whose update_packages prints a line ("waiting"), then waits until the test ends."""
    import io

    from harness.targets import behave
    from serverprep.clients.cli import _run
    from serverprep.clients.types import STEP_STATE_RUNNING

    register(client, sim)
    release = sim.extra["sim"] / "release"
    behave(sim, "apt-get", f'case "$*" in *update*) echo waiting; while [ ! -e {release} ]; do sleep 0.1; done;; esac')
    assert _run(["--address", service.address, "prepare", "sim", "--docker-source", "distro"], io.StringIO()) == 0
    wait_step(client, "sim", "update_packages", STEP_STATE_RUNNING)
    yield client.status("sim")
    release.touch()


def wait_done(client: Client, server: str, prep_id: str = "", timeout: float = 120):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        prep = client.status(server, prep_id)
        if prep.state in TERMINAL:
            return prep
        time.sleep(0.1)
    raise TimeoutError(f"preparation of {server} not finished after {timeout}s: {client.status(server, prep_id)}")


def wait_step(client: Client, server: str, step: str, state: int, timeout: float = 30):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        prep = client.status(server)
        if any(s.name == step and s.state == state for s in prep.steps):
            return prep
        time.sleep(0.05)
    raise TimeoutError(f"step {step} of {server} never reached {state}")


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database: SQLite in a temporary directory, or a new PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'serverprep.db'}"
        return
    admin_url = os.environ.get("SERVERPREP_TEST_POSTGRES_URL")
    if not admin_url:
        if os.environ.get("CI"):
            pytest.fail("SERVERPREP_TEST_POSTGRES_URL is not set: ./dev test starts PostgreSQL for CI")
        pytest.skip("no PostgreSQL (set SERVERPREP_TEST_POSTGRES_URL, as ./dev test does)")
    import uuid

    import psycopg2

    name = f"serverprep_test_{uuid.uuid4().hex[:12]}"
    admin = psycopg2.connect(admin_url)
    admin.autocommit = True
    admin.cursor().execute(f"CREATE DATABASE {name}")
    try:
        yield admin_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        admin.cursor().execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.close()
