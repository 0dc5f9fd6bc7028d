"""What a real `serverprep serve` process loads, read from its /proc/PID/maps while it serves."""

from pathlib import Path

from harness.service import service_process


def test_only_a_postgresql_service_loads_a_postgresql_driver(tmp_path, database_url):
    """peewee imports psycopg2 whatever the database, and psycopg2-binary maps its own libpq, libssl
    and libcrypto (about 5 MiB of a SQLite service's RSS). A service on SQLite keeps it out; one on
    PostgreSQL still has it and serves (the health check answers SERVING only once its database is
    open and migrated)."""
    with service_process(tmp_path, "--database", database_url) as (proc, _):
        maps = Path(f"/proc/{proc.pid}/maps").read_text()
    assert ("psycopg2" in maps) == database_url.startswith("postgresql"), database_url
