"""gRPC servicers: requests to use cases and results to responses, nothing else."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc

from serverprep.service import convert
from serverprep.service import validation as check
from serverprep.service.errors import InvalidArgument, ServerprepError
from serverprep.service.preparations import Preparations
from serverprep.service.rpcerrors import to_status
from serverprep.service.rpcloop import on_engine, stream_on_engine
from serverprep.service.servers import Servers
from serverprep.v1 import preparations_pb2 as pb
from serverprep.v1 import preparations_pb2_grpc as pb_grpc
from serverprep.v1 import servers_pb2 as spb
from serverprep.v1 import servers_pb2_grpc as spb_grpc


def _rpc(method: Callable[..., Any]) -> Callable[..., Any]:
    """Run the method on the engine loop (``self.engine``) and turn ServerprepError into a gRPC status with details."""
    if inspect.isasyncgenfunction(method):

        @functools.wraps(method)
        async def stream(self: Any, request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            try:
                # Closed as soon as this generator is: grpc does not close a stream's generator when the
                # client goes away mid-write, and the engine side holds a reader until it is.
                async with contextlib.aclosing(stream_on_engine(self.engine, method(self, request, context))) as items:
                    async for item in items:
                        yield item
            except ServerprepError as e:
                await context.abort_with_status(to_status(e))

        return stream

    @functools.wraps(method)
    async def unary(self: Any, request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            return await on_engine(self.engine, method(self, request, context))
        except ServerprepError as e:
            await context.abort_with_status(to_status(e))

    return unary


def _name(field: str, value: str) -> None:
    v = check.Violations()
    check.server_name(v, field, value)
    v.raise_if_any()


class ServerService(spb_grpc.ServerServiceServicer):
    def __init__(self, servers: Servers, engine: asyncio.AbstractEventLoop | None = None):
        self.servers = servers
        self.engine = engine

    @_rpc
    async def CreateServer(self, request: spb.CreateServerRequest, context: grpc.aio.ServicerContext) -> spb.CreateServerResponse:
        server = await self.servers.create(convert.server_spec(request))
        return spb.CreateServerResponse(server=convert.server_pb(server))

    @_rpc
    async def GetServer(self, request: spb.GetServerRequest, context: grpc.aio.ServicerContext) -> spb.GetServerResponse:
        _name("name", request.name)
        return spb.GetServerResponse(server=convert.server_pb(await self.servers.get(request.name)))

    @_rpc
    async def ListServers(self, request: spb.ListServersRequest, context: grpc.aio.ServicerContext) -> spb.ListServersResponse:
        v = check.Violations()
        size = check.page_size(v, "page_size", request.page_size)
        after = check.server_token(v, "page_token", request.page_token)
        v.raise_if_any()
        servers = await self.servers.page(size + 1, after)
        more = len(servers) > size
        servers = servers[:size]
        return spb.ListServersResponse(
            servers=[convert.server_pb(s) for s in servers],
            next_page_token=check.encode_token(servers[-1].name) if more else "",
        )

    @_rpc
    async def UpdateServer(self, request: spb.UpdateServerRequest, context: grpc.aio.ServicerContext) -> spb.UpdateServerResponse:
        server = await self.servers.update(request.name, convert.server_change(request))
        return spb.UpdateServerResponse(server=convert.server_pb(server))

    @_rpc
    async def DeleteServer(self, request: spb.DeleteServerRequest, context: grpc.aio.ServicerContext) -> spb.DeleteServerResponse:
        _name("name", request.name)
        await self.servers.delete(request.name)
        return spb.DeleteServerResponse()


class PreparationService(pb_grpc.PreparationServiceServicer):
    def __init__(self, preparations: Preparations, message_bytes: int, engine: asyncio.AbstractEventLoop | None = None):
        self.preparations = preparations
        self.message_bytes = message_bytes
        self.engine = engine

    @_rpc
    async def Prepare(self, request: pb.PrepareRequest, context: grpc.aio.ServicerContext) -> pb.PrepareResponse:
        v = check.Violations()
        check.server_name(v, "server", request.server)
        check.request_id(v, "request_id", request.request_id)
        options = convert.options(v, request.options)
        v.raise_if_any()
        prep = await self.preparations.prepare(request.server, options, request.request_id)
        return pb.PrepareResponse(preparation=convert.preparation_pb(prep))

    @_rpc
    async def Plan(self, request: pb.PlanRequest, context: grpc.aio.ServicerContext) -> pb.PlanResponse:
        v = check.Violations()
        check.server_name(v, "server", request.server)
        options = convert.options(v, request.options)
        v.raise_if_any()
        return convert.plan_pb(await self.preparations.plan(request.server, options))

    @_rpc
    async def Status(self, request: pb.StatusRequest, context: grpc.aio.ServicerContext) -> pb.StatusResponse:
        convert.server_and_preparation(request)
        prep = await self.preparations.status(request.server, request.preparation_id)
        return pb.StatusResponse(preparation=convert.preparation_pb(prep))

    @_rpc
    async def StreamLogs(self, request: pb.StreamLogsRequest, context: grpc.aio.ServicerContext) -> AsyncIterator[pb.StreamLogsResponse]:
        convert.server_and_preparation(request)
        if request.after_seq < 0:
            raise InvalidArgument({"after_seq": "must not be negative"})
        # Messages go out already encoded (see server.stream_logs_serializer): each entry is encoded
        # once for all its live readers, and a message is a join of encoded entries.
        state = None
        async for prep, batch in self.preparations.logs(request.server, request.preparation_id, request.after_seq,
                                                        follow=not request.no_follow):
            for message, after in convert.stream_logs_messages(batch, state or prep.state, self.message_bytes):
                state = after  # the state the next batch starts from
                yield message

    @_rpc
    async def Retry(self, request: pb.RetryRequest, context: grpc.aio.ServicerContext) -> pb.RetryResponse:
        convert.server_and_preparation(request)
        prep = await self.preparations.retry(request.server, request.preparation_id)
        return pb.RetryResponse(preparation=convert.preparation_pb(prep))

    @_rpc
    async def Cancel(self, request: pb.CancelRequest, context: grpc.aio.ServicerContext) -> pb.CancelResponse:
        convert.server_and_preparation(request)
        prep = await self.preparations.cancel(request.server, request.preparation_id)
        return pb.CancelResponse(preparation=convert.preparation_pb(prep))

    @_rpc
    async def ListPreparations(self, request: pb.ListPreparationsRequest, context: grpc.aio.ServicerContext) -> pb.ListPreparationsResponse:
        v = check.Violations()
        check.server_name(v, "server", request.server)
        size = check.page_size(v, "page_size", request.page_size)
        before = check.preparation_token(v, "page_token", request.page_token)
        v.raise_if_any()
        preps = await self.preparations.history(request.server, size + 1, before)
        more = len(preps) > size
        preps = preps[:size]
        return pb.ListPreparationsResponse(
            preparations=[convert.preparation_pb(p) for p in preps],
            next_page_token=check.encode_token([preps[-1].created_at, preps[-1].id]) if more else "",
        )
