"""Property-based fuzzing: arbitrary messages to every RPC of a running service.

No call may answer INTERNAL or UNKNOWN, the service stays SERVING, and the database stays
consistent (integrity check, at most one active preparation per server).
"""

import grpc
import pytest
from google.protobuf.descriptor import FieldDescriptor as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.service import ServiceThread
from serverprep.v1 import preparations_pb2, servers_pb2

KEY_LINE = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJdD7y3aLq454yWBdwLWbieU1ebz9/cu7/QEXn9OIeZJ"
INT_RANGES = {
    F.TYPE_INT32: (-(2**31), 2**31 - 1), F.TYPE_UINT32: (0, 2**32 - 1),
    F.TYPE_INT64: (-(2**63), 2**63 - 1), F.TYPE_UINT64: (0, 2**64 - 1),
}
# Strings likely to reach deeper than random text: existing names, shell syntax, huge and odd values.
INTERESTING = st.builds(lambda: "a" * 100_000) | st.sampled_from([
    "", "fuzz", "web1", "a" * 64, "$(touch /tmp/pwned)", "x\ny", "\x00", "é✓", "0" * 32,
    "ffffffffffffffffffffffffffffffff", "127.0.0.1", "::1", "-oProxyCommand=x", KEY_LINE, "http://u:p@h:1",
])


# Values that pass validation, so that calls also reach the engine, the store and SSH.
PLAUSIBLE = {
    "name": st.sampled_from(["fuzz", "fuzz-2"]),
    "server": st.sampled_from(["fuzz", "fuzz-2"]),
    "host": st.sampled_from(["127.0.0.1", "localhost"]),
    "port": st.sampled_from([1, 2]),
    "user": st.sampled_from(["u", "root"]),
    "password": st.sampled_from(["pw-1234"]),
    "host_key": st.just(KEY_LINE),
    "docker_source": st.sampled_from([0, 1, 2]),
    "step_timeout_seconds": st.integers(0, 5),
    "docker_version": st.sampled_from(["", "27.3.1"]),
    "channel": st.sampled_from(["", "stable", "test"]),
    "request_id": st.sampled_from(["", "r1", "r2"]),
    "preparation_id": st.just(""),
    "after_seq": st.integers(0, 50),
    "page_size": st.integers(0, 3),
    "no_follow": st.just(True),
}


def message(descriptor, depth=0, plausible_only=False):
    """Messages of this type: any field values, or (plausible_only) values that pass validation."""
    fields = {}
    for field in descriptor.fields:
        if plausible_only and field.type != F.TYPE_MESSAGE:
            if field.name in PLAUSIBLE and not field.is_repeated:
                fields[field.name] = st.one_of(st.none(), PLAUSIBLE[field.name])
            continue
        if field.type == F.TYPE_MESSAGE:
            if depth > 2 or field.message_type.full_name.startswith("google.protobuf"):
                continue
            value = message(field.message_type, depth + 1, plausible_only)
        elif field.type == F.TYPE_STRING:
            # Any text protobuf can carry (no lone surrogates).
            value = st.one_of(INTERESTING, st.text(st.characters(exclude_categories=("Cs",)), max_size=300))
        elif field.type == F.TYPE_BOOL:
            value = st.booleans()
        elif field.type == F.TYPE_ENUM:
            value = st.integers(-5, 10)  # includes values the enum does not define
        elif field.type in INT_RANGES:
            lo, hi = INT_RANGES[field.type]
            value = st.one_of(st.integers(lo, hi), st.integers(max(lo, -3), 3))
        else:
            continue
        if field.is_repeated:
            value = st.lists(value, max_size=3)
        if field.name in PLAUSIBLE and not field.is_repeated:
            value = st.one_of(*[PLAUSIBLE[field.name]] * 6, value)
        fields[field.name] = st.one_of(value, st.none()) if field.name in PLAUSIBLE else st.one_of(st.none(), value)

    def build(values):
        msg = descriptor._concrete_class()
        for name, value in values.items():
            if value is None:
                continue
            field = descriptor.fields_by_name[name]
            if field.is_repeated:
                target = getattr(msg, name)
                for item in value:
                    target.add().CopyFrom(item) if field.type == F.TYPE_MESSAGE else target.append(item)
            elif field.type == F.TYPE_MESSAGE:
                getattr(msg, name).CopyFrom(value)
            else:
                setattr(msg, name, value)
        return msg

    return st.fixed_dictionaries(fields).map(build)


RPCS = [
    (servers_pb2.DESCRIPTOR.services_by_name["ServerService"], m) for m in ("CreateServer", "GetServer", "ListServers", "UpdateServer", "DeleteServer")
] + [
    (preparations_pb2.DESCRIPTOR.services_by_name["PreparationService"], m)
    for m in ("Prepare", "Status", "StreamLogs", "Retry", "Cancel", "ListPreparations", "Plan")
]


@pytest.fixture(scope="module")
def fuzz_service(tmp_path_factory):
    svc = ServiceThread(tmp_path_factory.mktemp("fuzz"))
    svc.start()
    with svc.client() as c:
        # A server that exists, on a port where nothing listens: preparations fail fast, for real.
        c.create_server("fuzz", host="127.0.0.1", port=1, user="u", password="pw", host_key=KEY_LINE)
    yield svc
    svc.stop()


@pytest.mark.parametrize("plausible_only", [False, True], ids=["any", "plausible"])
@pytest.mark.parametrize("service_desc, name", RPCS, ids=[m for _, m in RPCS])
def test_rpc_never_answers_internal(fuzz_service, service_desc, name, plausible_only):
    method = service_desc.methods_by_name[name]
    channel = grpc.insecure_channel(fuzz_service.address)
    path = f"/{service_desc.full_name}/{name}"
    response_class = method.output_type._concrete_class
    kwargs = dict(request_serializer=lambda m: m.SerializeToString(), response_deserializer=response_class.FromString)
    call = channel.unary_stream(path, **kwargs) if method.server_streaming else channel.unary_unary(path, **kwargs)
    seen = {}
    keeper = fuzz_service.client()

    @settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(message(method.input_type, plausible_only=plausible_only))
    def check(request):
        try:  # keep a server to act on, even after a DeleteServer
            keeper.create_server("fuzz", host="127.0.0.1", port=1, user="u", password="pw", host_key=KEY_LINE)
        except Exception:
            pass
        try:
            result = call(request, timeout=5)
            if method.server_streaming:
                for _ in result:
                    pass
            code = grpc.StatusCode.OK
        except grpc.RpcError as e:
            code = e.code()
            assert code not in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN), (code, e.details(), request)
        seen[code.name] = seen.get(code.name, 0) + 1

    try:
        check()
    finally:
        channel.close()
        keeper.close()
    print(f"\n{name} ({'plausible' if plausible_only else 'any'}): {seen}")
    assert len(seen) >= 1


def test_service_is_healthy_and_database_consistent_after_fuzzing(fuzz_service):
    with fuzz_service.client() as c:
        assert c.health() == "SERVING"
    store = fuzz_service.service.store

    def check(session):
        db = session.database
        assert db.execute_sql("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert db.execute_sql("PRAGMA foreign_key_check").fetchall() == []
        assert db.execute_sql(
            "SELECT server_id, COUNT(*) FROM preparation WHERE state IN ('PENDING','RUNNING') GROUP BY server_id HAVING COUNT(*) > 1"
        ).fetchall() == []
        assert db.execute_sql(
            "SELECT COUNT(*) FROM preparation p WHERE (SELECT COUNT(*) FROM step s WHERE s.preparation_id = p.id) != 7"
        ).fetchone()[0] == 0

    fuzz_service.call(store.worker.call(check))
