"""Numbered schema migrations, applied in order at start-up; never edit a released one."""

from __future__ import annotations

from collections.abc import Callable

from peewee import Database, PostgresqlDatabase
from playhouse.migrate import SchemaMigrator
from playhouse.migrate import migrate as migrate_ops

from serverprep.service.store.database import write_transaction
from serverprep.service.store.models import LogRow, PreparationRow, ReplicaRow, SchemaVersion, ServerRow, StepRow


def _0001_initial(db: Database) -> None:
    db.create_tables([ServerRow, PreparationRow, StepRow, LogRow])
    # At most one active preparation per server, enforced by the database itself so
    # that concurrent Prepare calls (and several replicas) cannot both win.
    db.execute_sql(
        "CREATE UNIQUE INDEX preparation_one_active ON preparation (server_id) "
        "WHERE state IN ('PENDING', 'RUNNING')"
    )


def _add_missing(db: Database, model: type, *names: str) -> None:
    """Add columns a table lacks (a table made by a later 0001 already has them)."""
    have = {c.name for c in db.get_columns(model._meta.table_name)}
    migrator = SchemaMigrator.from_database(db)
    ops = [migrator.add_column(model._meta.table_name, model._meta.fields[n].column_name, model._meta.fields[n]) for n in names if model._meta.fields[n].column_name not in have]
    if ops:
        migrate_ops(*ops)


def _0002_replicas_and_remote_processes(db: Database) -> None:
    _add_missing(db, PreparationRow, "heartbeat_at", "cancel_requested")
    _add_missing(db, StepRow, "remote_pid", "remote_marker")


def _0003_replica_names(db: Database) -> None:
    db.create_tables([ReplicaRow], safe=True)


def _0004_newest_preparation_index(db: Database) -> None:
    # A server's newest preparation (Status, and every server ListServers returns) is one search of
    # this index, however many preparations the server has kept.
    db.execute_sql("CREATE INDEX IF NOT EXISTS preparation_newest ON preparation (server_id, created_at, id)")


MIGRATIONS: list[tuple[int, Callable[[Database], None]]] = [
    (1, _0001_initial),
    (2, _0002_replicas_and_remote_processes),
    (3, _0003_replica_names),
    (4, _0004_newest_preparation_index),
]
LATEST = MIGRATIONS[-1][0]


#: The PostgreSQL advisory lock that serializes migrations ("serverprep" in ASCII, as an int64).
MIGRATION_LOCK = int.from_bytes(b"serverpr", "big") >> 1


def current_version(db: Database) -> int:
    if not db.table_exists(SchemaVersion._meta.table_name):
        return 0
    row = SchemaVersion.select().order_by(SchemaVersion.version.desc()).first()
    return row.version if row else 0


def migrate(db: Database) -> list[int]:
    """Apply every migration newer than the database; return the versions applied."""
    applied = []
    # Replicas starting at once: the second waits for the first, then finds nothing to do. (SQLite
    # locks the file at BEGIN IMMEDIATE; on PostgreSQL two CREATE TABLE IF NOT EXISTS can both go
    # ahead and one then fails on the catalogue's unique index, so a lock for the transaction.)
    with write_transaction(db):
        if isinstance(db, PostgresqlDatabase):
            db.execute_sql("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        db.create_tables([SchemaVersion], safe=True)
        have = current_version(db)
        if have > LATEST:
            raise RuntimeError(f"database schema {have} is newer than this serverprep ({LATEST}): upgrade serverprep")
        for version, step in MIGRATIONS:
            if version > have:
                step(db)
                SchemaVersion.create(version=version)
                applied.append(version)
    return applied
