"""An asyncio Python client (grpc.aio) with the same methods and arguments as the blocking Client."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, Unpack

import grpc
import grpc.aio

from serverprep.clients import messages
from serverprep.clients.channel import STREAM_RESUME_ATTEMPTS, Connection
from serverprep.clients.client import RESUMABLE
from serverprep.clients.errors import error_from_rpc
from serverprep.clients.messages import ServerChanges, prepare_options
from serverprep.v1 import preparations_pb2 as pb
from serverprep.v1 import preparations_pb2_grpc as pb_grpc
from serverprep.v1 import servers_pb2 as spb
from serverprep.v1 import servers_pb2_grpc as spb_grpc


class AsyncClient:
    """The :class:`Client` API for asyncio: the same methods, arguments and errors, awaited.

    ``list_servers``, ``list_preparations`` and ``stream_logs`` are async iterators.

    >>> async def main() -> None:                                      # doctest: +SKIP
    ...     async with AsyncClient("127.0.0.1:50051") as sp:
    ...         prep = await sp.prepare("web1", docker_source="distro")
    ...         async for entry in sp.stream_logs("web1", prep.id):
    ...             print(entry.seq, entry.step, entry.text)
    ...         print(StepState.Name((await sp.status("web1")).steps[-1].state))
    >>> asyncio.run(main())                                            # doctest: +SKIP

    Create it inside the event loop that uses it (a grpc.aio channel belongs to one loop).
    """

    def __init__(
        self,
        address: str | None = None,
        *,
        timeout: float = 30.0,
        token: str | None = None,
        tls_ca: str | None = None,
        tls_cert: str | None = None,
        tls_key: str | None = None,
    ) -> None:
        """Like :class:`Client`: defaults from $SERVERPREP_ADDRESS, $SERVERPREP_TOKEN, $SERVERPREP_TLS_*."""
        conn = Connection.resolve(address, token, tls_ca, tls_cert, tls_key)
        self.address = conn.address
        self.timeout = timeout
        self.metadata = conn.metadata
        if conn.credentials is not None:
            self.channel = grpc.aio.secure_channel(conn.address, conn.credentials)
        else:
            self.channel = grpc.aio.insecure_channel(conn.address)
        self.servers = spb_grpc.ServerServiceStub(self.channel)
        self.preparations = pb_grpc.PreparationServiceStub(self.channel)
        self._health = self.channel.unary_unary(
            messages.HEALTH_CHECK, request_serializer=lambda raw: raw, response_deserializer=lambda raw: raw
        )

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the channel; calls in flight are cancelled."""
        await self.channel.close()

    async def _call(self, method: Any, request: Any) -> Any:
        try:
            return await method(request, timeout=self.timeout, metadata=self.metadata)
        except grpc.RpcError as e:
            raise error_from_rpc(e) from None

    async def health(self, service: str = "") -> str:
        """See :meth:`Client.health`."""
        return messages.health_status(await self._call(self._health, messages.health_request(service)))

    # -- servers ------------------------------------------------------------

    async def create_server(
        self,
        name: str,
        *,
        host: str,
        user: str,
        port: int = 22,
        private_key: str = "",
        private_key_passphrase: str = "",
        password: str = "",
        sudo_password: str = "",
        host_key: str = "",
        accept_new_host_key: bool = False,
    ) -> spb.Server:
        """See :meth:`Client.create_server`."""
        request = messages.create_server(
            name, host=host, user=user, port=port, private_key=private_key, private_key_passphrase=private_key_passphrase,
            password=password, sudo_password=sudo_password, host_key=host_key, accept_new_host_key=accept_new_host_key,
        )
        response: spb.CreateServerResponse = await self._call(self.servers.CreateServer, request)
        return response.server

    async def get_server(self, name: str) -> spb.Server:
        """See :meth:`Client.get_server`."""
        response: spb.GetServerResponse = await self._call(self.servers.GetServer, messages.by_name(spb.GetServerRequest, name))
        return response.server

    async def list_servers(self, page_size: int = 100) -> AsyncIterator[spb.Server]:
        """See :meth:`Client.list_servers`; ``async for server in sp.list_servers()``."""
        token = ""
        while True:
            page: spb.ListServersResponse = await self._call(self.servers.ListServers, messages.list_servers(page_size, token))
            for server in page.servers:
                yield server
            token = page.next_page_token
            if not token:
                return

    async def update_server(self, name: str, **changes: Unpack[ServerChanges]) -> spb.Server:
        """See :meth:`Client.update_server`."""
        response: spb.UpdateServerResponse = await self._call(self.servers.UpdateServer, messages.update_server(name, changes))
        return response.server

    async def delete_server(self, name: str) -> None:
        """See :meth:`Client.delete_server`."""
        await self._call(self.servers.DeleteServer, messages.by_name(spb.DeleteServerRequest, name))

    # -- preparations -------------------------------------------------------

    async def prepare(
        self,
        server: str,
        *,
        request_id: str = "",
        docker_source: str | int = "official",
        step_timeout: int = 0,
        docker_version: str = "",
        channel: str = "",
        repository_url: str = "",
        http_proxy: str = "",
        https_proxy: str = "",
        no_proxy: str = "",
    ) -> pb.Preparation:
        """See :meth:`Client.prepare`."""
        options = prepare_options(docker_source, step_timeout, docker_version, channel, repository_url, http_proxy,
                                  https_proxy, no_proxy)
        response: pb.PrepareResponse = await self._call(self.preparations.Prepare, messages.prepare(server, request_id, options))
        return response.preparation

    async def plan(
        self,
        server: str,
        *,
        docker_source: str | int = "official",
        step_timeout: int = 0,
        docker_version: str = "",
        channel: str = "",
        repository_url: str = "",
        http_proxy: str = "",
        https_proxy: str = "",
        no_proxy: str = "",
    ) -> pb.PlanResponse:
        """See :meth:`Client.plan`."""
        options = prepare_options(docker_source, step_timeout, docker_version, channel, repository_url, http_proxy,
                                  https_proxy, no_proxy)
        response: pb.PlanResponse = await self._call(self.preparations.Plan, messages.plan(server, options))
        return response

    async def status(self, server: str, preparation_id: str = "") -> pb.Preparation:
        """See :meth:`Client.status`."""
        request = messages.by_preparation(pb.StatusRequest, server, preparation_id)
        response: pb.StatusResponse = await self._call(self.preparations.Status, request)
        return response.preparation

    async def retry(self, server: str, preparation_id: str = "") -> pb.Preparation:
        """See :meth:`Client.retry`."""
        request = messages.by_preparation(pb.RetryRequest, server, preparation_id)
        response: pb.RetryResponse = await self._call(self.preparations.Retry, request)
        return response.preparation

    async def cancel(self, server: str, preparation_id: str = "") -> pb.Preparation:
        """See :meth:`Client.cancel`."""
        request = messages.by_preparation(pb.CancelRequest, server, preparation_id)
        response: pb.CancelResponse = await self._call(self.preparations.Cancel, request)
        return response.preparation

    async def list_preparations(self, server: str, page_size: int = 50) -> AsyncIterator[pb.Preparation]:
        """See :meth:`Client.list_preparations`; an async iterator."""
        token = ""
        while True:
            page: pb.ListPreparationsResponse = await self._call(
                self.preparations.ListPreparations, messages.list_preparations(server, page_size, token))
            for prep in page.preparations:
                yield prep
            token = page.next_page_token
            if not token:
                return

    async def stream_logs(
        self, server: str, preparation_id: str = "", *, after_seq: int = 0, follow: bool = True, resume: bool = True
    ) -> AsyncIterator[pb.LogEntry]:
        """See :meth:`Client.stream_logs`; ``async for entry in sp.stream_logs(...)``.

        Leaving the loop early cancels the stream once the generator is closed (at once with
        ``contextlib.aclosing``, else when it is garbage-collected).
        """
        last = after_seq
        attempts = 0
        if resume and not preparation_id:
            preparation_id = (await self.status(server)).id
        while True:
            call = self.preparations.StreamLogs(messages.stream_logs(server, preparation_id, last, follow), metadata=self.metadata)
            try:
                async for response in call:
                    attempts = 0
                    for entry in response.entries:
                        last = entry.seq
                        yield entry
                return
            except grpc.RpcError as e:
                error = error_from_rpc(e)
                attempts += 1
                if not (resume and error.code in RESUMABLE and attempts <= STREAM_RESUME_ATTEMPTS):
                    raise error from None
                await asyncio.sleep(min(attempts, 3))
            finally:
                call.cancel()
