"""What a real `serverprep serve` process loads, read from its /proc/PID/maps while it serves."""

import subprocess
import sys
from pathlib import Path

from harness.service import service_process, wait_serving
from harness.targets import free_port


def _maps(proc: subprocess.Popen) -> str:
    return Path(f"/proc/{proc.pid}/maps").read_text()


def test_only_a_postgresql_service_loads_a_postgresql_driver(tmp_path, database_url):
    """peewee imports psycopg2 whatever the database, and psycopg2-binary maps its own libpq, libssl
    and libcrypto (about 5 MiB of a SQLite service's RSS). A service on a SQLite URL keeps it out; one
    on PostgreSQL still has it and serves (the health check answers SERVING only once its database
    is open and migrated, so start-up and migrations have run)."""
    with service_process(tmp_path, "--database", database_url) as (proc, _):
        maps = _maps(proc)
    assert ("psycopg2" in maps) == (not database_url.startswith("sqlite")), database_url


def test_serverprep_serve_on_its_default_database_loads_no_postgresql_driver(tmp_path):
    """`serverprep serve` as users start it (the CLI, which loads its plugins' commands first), with
    no --database: the default SQLite database. Then, in a fresh interpreter, that the drivers are
    hidden only inside ``_hidden``: peewee imported there has none, and psycopg2 imports after it
    (a driver plugin that needs it gets it)."""
    address = f"127.0.0.1:{free_port()}"
    with open(tmp_path / "service.log", "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "serverprep.clients.cli", "serve", "--listen", address, "--data-dir", str(tmp_path / "data")],
            stdout=log, stderr=subprocess.STDOUT,
        )
        try:
            wait_serving(address, proc)
            assert "psycopg2" not in _maps(proc)
        finally:
            proc.terminate()
            proc.wait(30)
    probe = (
        "from serverprep.service import commands\n"
        "with commands._hidden(commands.POSTGRES_DRIVERS):\n"
        "    import peewee\n"
        "assert peewee.psycopg2 is None, 'peewee found psycopg2'\n"
        "import psycopg2\n"
        "print('imported', psycopg2.__name__)\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "imported psycopg2", out.stderr
