"""gRPC servicers: proto ↔ domain translation and error mapping, nothing else."""

from __future__ import annotations

import functools
import inspect
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
from google.protobuf import timestamp_pb2
from serverprep.drivers.commands import mask_credentials
from serverprep.service import validation as check
from serverprep.service.domain import (
    LogEntry,
    Options,
    Preparation,
    PrepState,
    Secrets,
    Server,
    ServerSpec,
    StepState,
)
from serverprep.service.engine import Engine, redactor
from serverprep.service.errors import InvalidArgument, ServerprepError
from serverprep.service.logbus import LogBus
from serverprep.service.rpcerrors import to_status
from serverprep.service.ssh import fingerprint
from serverprep.service.store import Store
from serverprep.v1 import preparations_pb2 as pb
from serverprep.v1 import preparations_pb2_grpc as pb_grpc
from serverprep.v1 import servers_pb2 as spb
from serverprep.v1 import servers_pb2_grpc as spb_grpc

PREP_STATE = {s: getattr(pb, f"PREPARATION_STATE_{s.value}") for s in PrepState}
STEP_STATE = {s: getattr(pb, f"STEP_STATE_{s.value}") for s in StepState}
LOG_STREAM = {"STDOUT": pb.LOG_STREAM_STDOUT, "STDERR": pb.LOG_STREAM_STDERR, "EVENT": pb.LOG_STREAM_EVENT}
DOCKER_SOURCE = {
    pb.DOCKER_SOURCE_UNSPECIFIED: "official",
    pb.DOCKER_SOURCE_OFFICIAL: "official",
    pb.DOCKER_SOURCE_DISTRO: "distro",
}
DOCKER_SOURCE_PB = {"official": pb.DOCKER_SOURCE_OFFICIAL, "distro": pb.DOCKER_SOURCE_DISTRO}
DEFAULT_STEP_TIMEOUT = 900
UPDATABLE = (
    "host", "port", "user", "credentials.private_key", "credentials.private_key_passphrase",
    "credentials.password", "credentials.sudo_password", "host_key", "accept_new_host_key",
)


def _ts(value: float | None) -> timestamp_pb2.Timestamp | None:
    if value is None:
        return None
    ts = timestamp_pb2.Timestamp()
    ts.FromNanoseconds(int(value * 1e9))
    return ts


def server_pb(s: Server) -> spb.Server:
    return spb.Server(
        name=s.name,
        host=s.host,
        port=s.port,
        user=s.user,
        host_key=s.host_key,
        host_key_fingerprint=fingerprint(s.host_key) if s.host_key else "",
        accept_new_host_key=s.accept_new_host_key,
        has_private_key=bool(s.secrets.private_key),
        has_password=bool(s.secrets.password),
        has_sudo_password=bool(s.secrets.sudo_password),
        create_time=_ts(s.created_at),
    )


def preparation_pb(p: Preparation) -> pb.Preparation:
    message = pb.Preparation(
        id=p.id,
        server=p.server,
        state=PREP_STATE[p.state],
        options=pb.PrepareOptions(
            docker_source=DOCKER_SOURCE_PB[p.options.docker_source],
            step_timeout_seconds=int(p.options.step_timeout),
            docker_version=p.options.docker_version,
            channel=p.options.channel,
            repository_url=p.options.repository_url,
            http_proxy=mask_credentials(p.options.http_proxy),
            https_proxy=mask_credentials(p.options.https_proxy),
            no_proxy=p.options.no_proxy,
        ),
        request_id=p.request_id,
        create_time=_ts(p.created_at),
        start_time=_ts(p.started_at),
        end_time=_ts(p.finished_at),
        last_seq=p.last_seq,
        attempt=p.attempt,
    )
    for s in p.steps:
        step = message.steps.add(
            name=s.name, state=STEP_STATE[s.state], message=s.message, attempts=s.attempts,
            start_time=_ts(s.started_at), end_time=_ts(s.finished_at),
        )
        if s.exit_code is not None:
            step.exit_code = s.exit_code
    if p.os:
        message.operating_system.CopyFrom(pb.OperatingSystem(**p.os))
    if p.reason:
        message.failure.CopyFrom(pb.Failure(reason=p.reason, message=p.message, step=p.failed_step))
    return message


def log_entry_pb(e: LogEntry) -> pb.LogEntry:
    return pb.LogEntry(
        seq=e.seq,
        time=_ts(e.time),
        step=e.step,
        stream=LOG_STREAM[e.stream.value],
        text=e.text,
        step_state=STEP_STATE[e.step_state] if e.step_state else pb.STEP_STATE_UNSPECIFIED,
        preparation_state=PREP_STATE[e.prep_state] if e.prep_state else pb.PREPARATION_STATE_UNSPECIFIED,
    )


def _rpc(method: Callable[..., Any]) -> Callable[..., Any]:
    """Turn ServerprepError into a gRPC status with details; log nothing secret."""
    if inspect.isasyncgenfunction(method):

        @functools.wraps(method)
        async def stream(self: Any, request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            try:
                async for item in method(self, request, context):
                    yield item
            except ServerprepError as e:
                await context.abort_with_status(to_status(e))

        return stream

    @functools.wraps(method)
    async def unary(self: Any, request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            return await method(self, request, context)
        except ServerprepError as e:
            await context.abort_with_status(to_status(e))

    return unary


class ServerService(spb_grpc.ServerServiceServicer):
    def __init__(self, store: Store):
        self.store = store

    @_rpc
    async def CreateServer(self, request: spb.CreateServerRequest, context: grpc.aio.ServicerContext) -> spb.CreateServerResponse:
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
        spec = ServerSpec(
            name=request.name,
            host=request.host,
            port=request.port or 22,
            user=request.user,
            secrets=Secrets(
                private_key=creds.private_key,
                private_key_passphrase=creds.private_key_passphrase,
                password=creds.password,
                sudo_password=creds.sudo_password,
            ),
            host_key=host_key,
            accept_new_host_key=request.accept_new_host_key,
        )
        server = await self.store.run(self.store.create_server, spec)
        return spb.CreateServerResponse(server=server_pb(server))

    @_rpc
    async def GetServer(self, request: spb.GetServerRequest, context: grpc.aio.ServicerContext) -> spb.GetServerResponse:
        v = check.Violations()
        check.server_name(v, "name", request.name)
        v.raise_if_any()
        return spb.GetServerResponse(server=server_pb(await self.store.run(self.store.get_server, request.name)))

    @_rpc
    async def ListServers(self, request: spb.ListServersRequest, context: grpc.aio.ServicerContext) -> spb.ListServersResponse:
        v = check.Violations()
        size = check.page_size(v, "page_size", request.page_size)
        token = check.decode_token(v, "page_token", request.page_token)
        if token is not None and not isinstance(token, str):
            v.add("page_token", "is not a page token this service issued")
        v.raise_if_any()
        servers = await self.store.run(self.store.list_servers, size + 1, token or "")
        more = len(servers) > size
        servers = servers[:size]
        return spb.ListServersResponse(
            servers=[server_pb(s) for s in servers],
            next_page_token=check.encode_token(servers[-1].name) if more else "",
        )

    @_rpc
    async def UpdateServer(self, request: spb.UpdateServerRequest, context: grpc.aio.ServicerContext) -> spb.UpdateServerResponse:
        v = check.Violations()
        check.server_name(v, "name", request.name)
        paths = list(request.update_mask.paths)
        unknown = [p for p in paths if p not in UPDATABLE]
        if unknown:
            v.add("update_mask", f"cannot update {', '.join(unknown)}; updatable: {', '.join(UPDATABLE)}")
        if not paths:
            v.add("update_mask", "name the fields to change")
        creds = request.credentials
        changes: dict[str, Any] = {}
        for path in paths:
            if path == "host":
                check.host(v, "host", request.host)
                changes["host"] = request.host
            elif path == "port":
                check.port(v, "port", request.port)
                changes["port"] = request.port or 22
            elif path == "user":
                check.user(v, "user", request.user)
                changes["user"] = request.user
            elif path == "credentials.sudo_password":
                check.sudo_password(v, path, creds.sudo_password)
                changes["sudo_password"] = creds.sudo_password
            elif path.startswith("credentials."):
                field = path.split(".", 1)[1]
                check.secret(v, path, getattr(creds, field), check.MAX_KEY if field == "private_key" else check.MAX_SECRET)
                changes[field] = getattr(creds, field)
            elif path == "host_key":
                changes["host_key"] = check.host_key(v, "host_key", request.host_key)
                changes["accept_new_host_key"] = False
            elif path == "accept_new_host_key" and request.accept_new_host_key:
                changes["host_key"], changes["accept_new_host_key"] = "", True
        if "host_key" in paths and request.accept_new_host_key and "accept_new_host_key" in paths:
            v.add("host_key", "give either host_key or accept_new_host_key, not both")
        v.raise_if_any()
        current = await self.store.run(self.store.get_server, request.name)
        key = changes.get("private_key", current.secrets.private_key)
        passphrase = changes.get("private_key_passphrase", current.secrets.private_key_passphrase)
        if "private_key" in changes or "private_key_passphrase" in changes:
            check.private_key(v, "credentials.private_key", key, passphrase)
        if not key and not changes.get("password", current.secrets.password):
            v.add("credentials", "the server would have neither a private key nor a password")
        v.raise_if_any()
        server = await self.store.run(self.store.update_server, request.name, changes)
        return spb.UpdateServerResponse(server=server_pb(server))

    @_rpc
    async def DeleteServer(self, request: spb.DeleteServerRequest, context: grpc.aio.ServicerContext) -> spb.DeleteServerResponse:
        v = check.Violations()
        check.server_name(v, "name", request.name)
        v.raise_if_any()
        await self.store.run(self.store.delete_server, request.name)
        return spb.DeleteServerResponse()


def options_from_pb(v: check.Violations, o: pb.PrepareOptions) -> Options:
    source = DOCKER_SOURCE.get(o.docker_source)
    if source is None:
        v.add("options.docker_source", "must be DOCKER_SOURCE_OFFICIAL or DOCKER_SOURCE_DISTRO")
        source = "official"
    timeout = o.step_timeout_seconds or DEFAULT_STEP_TIMEOUT
    if timeout > check.MAX_STEP_TIMEOUT:
        v.add("options.step_timeout_seconds", f"must be at most {check.MAX_STEP_TIMEOUT}")
    check.prepare_options(
        v, "options", source=source, docker_version=o.docker_version, channel=o.channel, repository_url=o.repository_url,
        http_proxy=o.http_proxy, https_proxy=o.https_proxy, no_proxy=o.no_proxy,
    )
    return Options(
        docker_source=source, step_timeout=float(timeout), docker_version=o.docker_version, channel=o.channel or "stable",
        repository_url=o.repository_url, http_proxy=o.http_proxy, https_proxy=o.https_proxy, no_proxy=o.no_proxy,
    )


def _server_and_id(request: Any) -> None:
    v = check.Violations()
    check.server_name(v, "server", request.server)
    check.preparation_id(v, "preparation_id", request.preparation_id)
    v.raise_if_any()


class PreparationService(pb_grpc.PreparationServiceServicer):
    def __init__(self, store: Store, engine: Engine, bus: LogBus):
        self.store = store
        self.engine = engine
        self.bus = bus

    @_rpc
    async def Prepare(self, request: pb.PrepareRequest, context: grpc.aio.ServicerContext) -> pb.PrepareResponse:
        v = check.Violations()
        check.server_name(v, "server", request.server)
        check.request_id(v, "request_id", request.request_id)
        options = options_from_pb(v, request.options)
        v.raise_if_any()
        prep, _ = await self.engine.prepare(request.server, options, request.request_id)
        return pb.PrepareResponse(preparation=preparation_pb(prep))

    @_rpc
    async def Plan(self, request: pb.PlanRequest, context: grpc.aio.ServicerContext) -> pb.PlanResponse:
        v = check.Violations()
        check.server_name(v, "server", request.server)
        options = options_from_pb(v, request.options)
        v.raise_if_any()
        plan = (await self.engine.plan(request.server, options)).to_dict()
        hide = redactor(options.secrets())
        for step in plan["steps"]:
            step["commands"] = [hide(c) for c in step["commands"]]
        repo = plan["repository"]
        return pb.PlanResponse(
            driver=plan["driver"],
            operating_system=pb.OperatingSystem(driver=plan["driver"], **plan["operating_system"]),
            repository=pb.Repository(**repo) if repo else None,
            steps=[pb.PlannedStep(**step) for step in plan["steps"]],
        )

    @_rpc
    async def Status(self, request: pb.StatusRequest, context: grpc.aio.ServicerContext) -> pb.StatusResponse:
        _server_and_id(request)
        prep = await self.store.run(self.store.find_preparation, request.server, request.preparation_id)
        return pb.StatusResponse(preparation=preparation_pb(prep))

    @_rpc
    async def StreamLogs(self, request: pb.StreamLogsRequest, context: grpc.aio.ServicerContext) -> AsyncIterator[pb.StreamLogsResponse]:
        _server_and_id(request)
        if request.after_seq < 0:
            raise InvalidArgument({"after_seq": "must not be negative"})
        prep = await self.store.run(self.store.find_preparation, request.server, request.preparation_id)
        state = PREP_STATE[prep.state]
        async for batch in self.bus.follow(prep.id, request.after_seq, follow=not request.no_follow):
            for entry in batch:
                if entry.prep_state:
                    state = PREP_STATE[entry.prep_state]
            yield pb.StreamLogsResponse(entries=[log_entry_pb(e) for e in batch], preparation_state=state)

    @_rpc
    async def Retry(self, request: pb.RetryRequest, context: grpc.aio.ServicerContext) -> pb.RetryResponse:
        _server_and_id(request)
        prep = await self.engine.retry(request.server, request.preparation_id)
        return pb.RetryResponse(preparation=preparation_pb(prep))

    @_rpc
    async def Cancel(self, request: pb.CancelRequest, context: grpc.aio.ServicerContext) -> pb.CancelResponse:
        _server_and_id(request)
        prep = await self.engine.cancel(request.server, request.preparation_id)
        return pb.CancelResponse(preparation=preparation_pb(prep))

    @_rpc
    async def ListPreparations(self, request: pb.ListPreparationsRequest, context: grpc.aio.ServicerContext) -> pb.ListPreparationsResponse:
        v = check.Violations()
        check.server_name(v, "server", request.server)
        size = check.page_size(v, "page_size", request.page_size)
        token = check.decode_token(v, "page_token", request.page_token)
        before = None
        if token is not None:
            if isinstance(token, list) and len(token) == 2 and isinstance(token[0], (int, float)) and isinstance(token[1], str):
                before = (float(token[0]), token[1])
            else:
                v.add("page_token", "is not a page token this service issued")
        v.raise_if_any()
        preps = await self.store.run(self.store.list_preparations, request.server, size + 1, before)
        more = len(preps) > size
        preps = preps[:size]
        return pb.ListPreparationsResponse(
            preparations=[preparation_pb(p) for p in preps],
            next_page_token=check.encode_token([preps[-1].created_at, preps[-1].id]) if more else "",
        )
