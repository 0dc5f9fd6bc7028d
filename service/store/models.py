"""Peewee models; bound to the database at start-up through a DatabaseProxy."""

from __future__ import annotations

from peewee import (
    BooleanField,
    CharField,
    CompositeKey,
    DatabaseProxy,
    DoubleField,
    ForeignKeyField,
    IntegerField,
    Model,
    SmallIntegerField,
    TextField,
)

db = DatabaseProxy()


class BaseModel(Model):
    class Meta:
        database = db
        legacy_table_names = False


class SchemaVersion(BaseModel):
    version = IntegerField()


class ServerRow(BaseModel):
    name = CharField(max_length=63, unique=True)
    host = CharField(max_length=255)
    port = IntegerField()
    user = CharField(max_length=64)
    private_key = TextField(default="")
    private_key_passphrase = TextField(default="")
    password = TextField(default="")
    sudo_password = TextField(default="")
    host_key = TextField(default="")
    accept_new_host_key = BooleanField(default=False)
    created_at = DoubleField()

    class Meta:
        table_name = "server"


class PreparationRow(BaseModel):
    id = CharField(max_length=32, primary_key=True)
    server = ForeignKeyField(ServerRow, on_delete="CASCADE", backref="preparations")
    state = CharField(max_length=16, index=True)
    options = TextField()
    request_id = CharField(max_length=128, null=True)
    attempt = IntegerField(default=1)
    os = TextField(default="{}")
    facts = TextField(default="{}")
    reason = CharField(max_length=64, default="")
    message = TextField(default="")
    failed_step = CharField(max_length=64, default="")
    created_at = DoubleField(index=True)
    started_at = DoubleField(null=True)
    finished_at = DoubleField(null=True)
    last_seq = IntegerField(default=0)
    # The replica that runs it, and when that replica last said it is alive.
    owner = CharField(max_length=128, default="")
    heartbeat_at = DoubleField(null=True)
    # Set by a replica that was asked to Cancel a preparation another replica runs.
    cancel_requested = BooleanField(default=False)

    class Meta:
        table_name = "preparation"
        indexes = ((("server", "request_id"), True),)


class StepRow(BaseModel):
    preparation = ForeignKeyField(PreparationRow, on_delete="CASCADE", backref="step_rows")
    position = SmallIntegerField()
    name = CharField(max_length=64)
    state = CharField(max_length=16)
    exit_code = IntegerField(null=True)
    message = TextField(default="")
    started_at = DoubleField(null=True)
    finished_at = DoubleField(null=True)
    attempts = IntegerField(default=0)
    # The remote process group of the last run, and the token in its command line (to find it again).
    remote_pid = IntegerField(null=True)
    remote_marker = CharField(max_length=64, default="")

    class Meta:
        table_name = "step"
        indexes = ((("preparation", "position"), True),)


class LogRow(BaseModel):
    preparation = ForeignKeyField(PreparationRow, on_delete="CASCADE", backref="log_rows")
    seq = IntegerField()
    time = DoubleField()
    step = CharField(max_length=64, default="")
    stream = CharField(max_length=8)
    text = TextField()
    step_state = CharField(max_length=16, null=True)
    prep_state = CharField(max_length=16, null=True)

    class Meta:
        table_name = "log_line"
        primary_key = CompositeKey("preparation", "seq")


class ReplicaRow(BaseModel):
    """Who holds a replica name now: one live process per name."""

    name = CharField(max_length=128, primary_key=True)
    instance = CharField(max_length=64)
    host = CharField(max_length=255)
    pid = IntegerField()
    #: The process's start time as the kernel counts it, to tell a reused pid from the holder.
    pid_started = CharField(max_length=32, default="")
    started_at = DoubleField()
    heartbeat_at = DoubleField()

    class Meta:
        table_name = "replica"


ALL_MODELS = (SchemaVersion, ServerRow, PreparationRow, StepRow, LogRow, ReplicaRow)
