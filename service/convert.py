"""Protobuf messages to checked domain values and back: the API edge's vocabulary."""

from __future__ import annotations

import bisect
import itertools
import operator
from collections.abc import Iterator, Sequence
from typing import Any

from google.protobuf import timestamp_pb2

from serverprep.service import validation as check
from serverprep.service.domain import LogEntry, Options, Preparation, PrepState, Secrets, Server, ServerChange, ServerSpec, StepState
from serverprep.v1 import preparations_pb2 as pb
from serverprep.v1 import servers_pb2 as spb

PREP_STATE = {s: getattr(pb, f"PREPARATION_STATE_{s.value}") for s in PrepState}
STEP_STATE = {s: getattr(pb, f"STEP_STATE_{s.value}") for s in StepState}
LOG_STREAM = {"STDOUT": pb.LOG_STREAM_STDOUT, "STDERR": pb.LOG_STREAM_STDERR, "EVENT": pb.LOG_STREAM_EVENT}
DOCKER_SOURCE = {
    pb.DOCKER_SOURCE_UNSPECIFIED: "official",
    pb.DOCKER_SOURCE_OFFICIAL: "official",
    pb.DOCKER_SOURCE_DISTRO: "distro",
}
DOCKER_SOURCE_PB = {"official": pb.DOCKER_SOURCE_OFFICIAL, "distro": pb.DOCKER_SOURCE_DISTRO}
#: update_mask paths of UpdateServer, and the ServerChange field each sets.
UPDATABLE = {
    "host": "host",
    "port": "port",
    "user": "user",
    "credentials.private_key": "private_key",
    "credentials.private_key_passphrase": "private_key_passphrase",
    "credentials.password": "password",
    "credentials.sudo_password": "sudo_password",
    "host_key": "host_key",
    "accept_new_host_key": "accept_new_host_key",
}


def timestamp(value: float | None) -> timestamp_pb2.Timestamp | None:
    if value is None:
        return None
    ts = timestamp_pb2.Timestamp()
    ts.FromNanoseconds(int(value * 1e9))
    return ts


# -- requests → domain ----------------------------------------------------------


def server_spec(request: spb.CreateServerRequest) -> ServerSpec:
    v = check.Violations()
    check.server_name(v, "name", request.name)
    check.host(v, "host", request.host)
    check.port(v, "port", request.port)
    check.user(v, "user", request.user)
    creds = request.credentials
    check.secret(v, "credentials.password", creds.password)
    check.secret(v, "credentials.private_key_passphrase", creds.private_key_passphrase)
    check.sudo_password(v, "credentials.sudo_password", creds.sudo_password)
    check.private_key(v, "credentials.private_key", creds.private_key, creds.private_key_passphrase)
    if not creds.private_key and not creds.password:
        v.add("credentials", "give a private_key, a password, or both")
    host_key = ""
    if request.host_key and request.accept_new_host_key:
        v.add("host_key", "give either host_key or accept_new_host_key, not both")
    elif request.host_key:
        host_key = check.host_key(v, "host_key", request.host_key)
    elif not request.accept_new_host_key:
        v.add("host_key", "give the server's host key, or set accept_new_host_key to trust the first one seen")
    v.raise_if_any()
    return ServerSpec(
        name=request.name,
        host=request.host,
        port=request.port or 22,
        user=request.user,
        secrets=Secrets(**{name: getattr(creds, name) for name in Secrets.NAMES}),
        host_key=host_key,
        accept_new_host_key=request.accept_new_host_key,
    )


def server_change(request: spb.UpdateServerRequest) -> ServerChange:
    v = check.Violations()
    check.server_name(v, "name", request.name)
    paths = list(request.update_mask.paths)
    unknown = [p for p in paths if p not in UPDATABLE]
    if unknown:
        v.add("update_mask", f"cannot update {', '.join(unknown)}; updatable: {', '.join(UPDATABLE)}")
    if not paths:
        v.add("update_mask", "name the fields to change")
    creds = request.credentials
    values: dict[str, Any] = {}
    for path in paths:
        name = UPDATABLE.get(path)
        if name in ("host", "port", "user"):
            getattr(check, name)(v, path, getattr(request, name))
            values[name] = getattr(request, name)
            if name == "port":
                values[name] = request.port or 22
        elif name == "sudo_password":
            check.sudo_password(v, path, creds.sudo_password)
            values[name] = creds.sudo_password
        elif name in Secrets.NAMES:
            check.secret(v, path, getattr(creds, name), check.MAX_KEY if name == "private_key" else check.MAX_SECRET)
            values[name] = getattr(creds, name)
        elif name == "host_key":
            values[name] = check.host_key(v, path, request.host_key)
        elif name == "accept_new_host_key":
            values[name] = request.accept_new_host_key
    if "host_key" in values and values.get("accept_new_host_key"):
        v.add("host_key", "give either host_key or accept_new_host_key, not both")
    v.raise_if_any()
    return ServerChange(**values)


def options(v: check.Violations, o: pb.PrepareOptions) -> Options:
    return check.options(
        v, "options", source=DOCKER_SOURCE.get(o.docker_source), step_timeout=o.step_timeout_seconds,
        docker_version=o.docker_version, channel=o.channel, repository_url=o.repository_url,
        http_proxy=o.http_proxy, https_proxy=o.https_proxy, no_proxy=o.no_proxy,
    )


def server_and_preparation(request: Any) -> None:
    v = check.Violations()
    check.server_name(v, "server", request.server)
    check.preparation_id(v, "preparation_id", request.preparation_id)
    v.raise_if_any()


# -- domain → responses ---------------------------------------------------------


def server_pb(s: Server) -> spb.Server:
    return spb.Server(
        name=s.name,
        host=s.host,
        port=s.port,
        user=s.user,
        host_key=s.host_key,
        host_key_fingerprint=s.host_key_fingerprint,
        accept_new_host_key=s.accept_new_host_key,
        has_private_key=bool(s.secrets.private_key),
        has_password=bool(s.secrets.password),
        has_sudo_password=bool(s.secrets.sudo_password),
        create_time=timestamp(s.created_at),
        latest_preparation=pb.PreparationSummary(id=s.latest.id, state=PREP_STATE[s.latest.state], attempt=s.latest.attempt,
                                                 last_seq=s.latest.last_seq) if s.latest else None,
    )


def preparation_pb(p: Preparation) -> pb.Preparation:
    shown = p.options.public()
    message = pb.Preparation(
        id=p.id,
        server=p.server,
        state=PREP_STATE[p.state],
        options=pb.PrepareOptions(
            docker_source=DOCKER_SOURCE_PB[shown.docker_source],
            step_timeout_seconds=int(shown.step_timeout),
            docker_version=shown.docker_version,
            channel=shown.channel,
            repository_url=shown.repository_url,
            http_proxy=shown.http_proxy,
            https_proxy=shown.https_proxy,
            no_proxy=shown.no_proxy,
        ),
        request_id=p.request_id,
        create_time=timestamp(p.created_at),
        start_time=timestamp(p.started_at),
        end_time=timestamp(p.finished_at),
        last_seq=p.last_seq,
        attempt=p.attempt,
    )
    for s in p.steps:
        step = message.steps.add(
            name=s.name, state=STEP_STATE[s.state], message=s.message, attempts=s.attempts,
            start_time=timestamp(s.started_at), end_time=timestamp(s.finished_at),
        )
        if s.exit_code is not None:
            step.exit_code = s.exit_code
    if p.os:
        message.operating_system.CopyFrom(pb.OperatingSystem(**p.os))
    if p.reason:
        message.failure.CopyFrom(pb.Failure(reason=p.reason, message=p.message, step=p.failed_step))
    return message


def _varint(n: int) -> bytes:
    """A protobuf varint (a negative int64 as its 64-bit two's complement, as protobuf writes it)."""
    if n < 0x80:
        return _BYTES[n] if n >= 0 else _varint(n + (1 << 64))
    if n < 0x4000:
        return bytes((n & 0x7F | 0x80, n >> 7))
    if n < 0x200000:
        return bytes((n & 0x7F | 0x80, n >> 7 & 0x7F | 0x80, n >> 14))
    if n < 0x10000000:
        return bytes((n & 0x7F | 0x80, n >> 7 & 0x7F | 0x80, n >> 14 & 0x7F | 0x80, n >> 21))
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


_BYTES = [bytes((i,)) for i in range(0x80)]


def _tagged(tag: bytes, value: int) -> bytes:
    """An enum field, left out when it is 0 (as protobuf leaves out a default)."""
    return tag + _varint(value) if value else b""


# The fields of a LogEntry message that take few values, encoded once.
_STREAM_FIELD = {s: _tagged(b"\x20", n) for s, n in LOG_STREAM.items()}
_STEP_STATE_FIELD = {s: _tagged(b"\x30", n) for s, n in STEP_STATE.items()}
_PREP_STATE_FIELD = {s: _tagged(b"\x38", n) for s, n in PREP_STATE.items()}


#: Sets an entry's ``_wire``, a cache beside its fields.
_set_wire = LogEntry._wire.__set__  # type: ignore[attr-defined]


def log_entry_fields(batch: Sequence[LogEntry]) -> list[bytes]:
    """Entries encoded as field 1 (``entries``) of a StreamLogsResponse, byte for byte as protobuf
    writes them (tests/unit/test_log_messages.py compares the two): a message is a join of these.

    Written here rather than by building a message per entry: this runs once for every line the
    live readers get, and building messages took a third of the event loop's time at 100,000
    lines/s. Each encoding is kept on its (immutable) entry for every other live reader.
    """
    out = []
    # What most entries of a batch share (one step, one stream, one time), encoded once; compared
    # by identity (an Enum hashes in Python).
    last_step, step_field, last_stream, stream_field, last_time, time_field = None, b"", None, b"", None, b""
    for e in batch:
        wire = e._wire
        if wire is None:  # not encoded yet
            if e.step is not last_step:
                raw = e.step.encode()
                last_step, step_field = e.step, b"\x1a" + _varint(len(raw)) + raw if raw else b""
            if e.stream is not last_stream:
                last_stream, stream_field = e.stream, _STREAM_FIELD[e.stream.value]
            if e.time != last_time:
                seconds, nanos = divmod(int(e.time * 1e9), 1_000_000_000)  # as timestamp() rounds, for the same instant everywhere
                time_field = (b"\x08" + _varint(seconds) if seconds else b"") + (b"\x10" + _varint(nanos) if nanos else b"")
                time_field = b"\x12" + _varint(len(time_field)) + time_field
                last_time = e.time
            text = e.text.encode()
            data = b"".join((
                b"\x08" + _varint(e.seq) if e.seq else b"",
                time_field,
                step_field,
                stream_field,
                b"\x2a" + _varint(len(text)) + text if text else b"",
                _STEP_STATE_FIELD[e.step_state] if e.step_state else b"",
                _PREP_STATE_FIELD[e.prep_state] if e.prep_state else b"",
            ))
            wire = b"\n" + _varint(len(data)) + data
            _set_wire(e, wire)
        out.append(wire)
    return out


def stream_logs_response(fields: list[bytes], state: PrepState) -> bytes:
    """The wire form of StreamLogsResponse(entries=..., preparation_state=state)."""
    return b"".join(fields) + b"\x10" + _varint(PREP_STATE[state])


_WIRE = operator.attrgetter("_wire")
_PREP_STATE_OF = operator.attrgetter("prep_state")


def stream_logs_messages(batch: Sequence[LogEntry], state: PrepState, limit: int) -> Iterator[tuple[bytes, PrepState]]:
    """The messages that carry ``batch`` (each at most ``limit`` bytes, one entry alone always
    passes), with the preparation's state after each.

    Every live reader of a preparation sends the same entries: the first one encodes them, the
    others find them encoded, and their work per batch runs in C (map, accumulate, bisect),
    not in a Python loop per entry.
    """
    fields = list(map(_WIRE, batch))
    if None in fields:  # some not encoded yet
        fields = log_entry_fields(batch)
    ends = list(itertools.accumulate(map(len, fields)))
    at = 0
    while at < len(fields):
        # The first entry that would take the message past the limit, from `at`; at least one entry.
        base = ends[at - 1] if at else 0
        stop = max(at + 1, bisect.bisect_right(ends, base + limit, at))
        for changed in filter(None, map(_PREP_STATE_OF, batch[at:stop])):
            state = changed
        yield stream_logs_response(fields[at:stop], state), state
        at = stop


def log_entry_pb(e: LogEntry) -> pb.LogEntry:
    return pb.LogEntry(
        seq=e.seq,
        time=timestamp(e.time),
        step=e.step,
        stream=LOG_STREAM[e.stream.value],
        text=e.text,
        step_state=STEP_STATE[e.step_state] if e.step_state else pb.STEP_STATE_UNSPECIFIED,
        preparation_state=PREP_STATE[e.prep_state] if e.prep_state else pb.PREPARATION_STATE_UNSPECIFIED,
    )


def plan_pb(plan: dict[str, Any]) -> pb.PlanResponse:
    """A plan as Plan.to_dict() shows it."""
    repo = plan["repository"]
    return pb.PlanResponse(
        driver=plan["driver"],
        operating_system=pb.OperatingSystem(**plan["operating_system"]),
        repository=pb.Repository(**repo) if repo else None,
        steps=[pb.PlannedStep(**step) for step in plan["steps"]],
    )
