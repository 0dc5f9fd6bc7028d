"""A typed, blocking Python client for other programs that talk to serverprep."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from serverprep.clients.defaults import DEFAULT_ADDRESS
from serverprep.v1 import preparations_pb2 as pb
from serverprep.v1 import preparations_pb2_grpc as pb_grpc
from serverprep.v1 import servers_pb2 as spb
from serverprep.v1 import servers_pb2_grpc as spb_grpc


def _read(path: str | None) -> bytes | None:
    if not path:
        return None
    with open(path, "rb") as f:
        return f.read()
TERMINAL = (pb.PREPARATION_STATE_SUCCEEDED, pb.PREPARATION_STATE_FAILED, pb.PREPARATION_STATE_CANCELLED)


@dataclass
class ServerprepClientError(Exception):
    """A failed call: the gRPC code, serverprep's reason and the details it sent."""

    code: grpc.StatusCode
    message: str
    reason: str = ""
    metadata: dict[str, str] = field(default_factory=dict)
    violations: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        head = self.reason or self.code.name
        text = f"{head}: {self.message}"
        if self.violations and self.message.startswith("invalid request"):
            return text
        for name, why in self.violations.items():
            text += f"\n  {name}: {why}"
        return text

    @classmethod
    def from_rpc(cls, error: grpc.RpcError) -> ServerprepClientError:
        code = error.code() if hasattr(error, "code") else grpc.StatusCode.UNKNOWN
        message = error.details() if hasattr(error, "details") else str(error)
        reason, metadata, violations = "", {}, {}
        status = rpc_status.from_call(error) if hasattr(error, "trailing_metadata") else None
        for detail in status.details if status else ():
            if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                info = error_details_pb2.ErrorInfo()
                detail.Unpack(info)
                reason, metadata = info.reason, dict(info.metadata)
            elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                bad = error_details_pb2.BadRequest()
                detail.Unpack(bad)
                violations = {v.field: v.description for v in bad.field_violations}
        if code is grpc.StatusCode.UNAVAILABLE and not reason:
            reason = "SERVICE_UNAVAILABLE"
        return cls(code=code, message=message or code.name, reason=reason, metadata=metadata, violations=violations)


def prepare_options(docker_source: str = "official", step_timeout: int = 0, **fields: str | int) -> pb.PrepareOptions:
    source = {"official": pb.DOCKER_SOURCE_OFFICIAL, "distro": pb.DOCKER_SOURCE_DISTRO}[docker_source]
    return pb.PrepareOptions(docker_source=source, step_timeout_seconds=step_timeout, **fields)


class Client:
    """Blocking client for the serverprep API.

    >>> with Client("127.0.0.1:50051") as sp:                      # doctest: +SKIP
    ...     sp.create_server("web1", host="10.0.0.5", user="admin",
    ...                      private_key=open("id_ed25519").read(),
    ...                      accept_new_host_key=True)
    ...     prep = sp.prepare("web1", docker_source="distro")
    ...     for entry in sp.stream_logs("web1", prep.id):
    ...         print(entry.seq, entry.step, entry.text)
    ...     assert sp.status("web1").state == PREPARATION_STATE_SUCCEEDED

    Every method raises :class:`ServerprepClientError` on failure.
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
    ):
        """Defaults come from $SERVERPREP_ADDRESS, $SERVERPREP_TOKEN and $SERVERPREP_TLS_CA/_CERT/_KEY (PEM files)."""
        env = os.environ.get
        self.address = address or env("SERVERPREP_ADDRESS") or DEFAULT_ADDRESS
        self.timeout = timeout
        token = token if token is not None else env("SERVERPREP_TOKEN", "")
        self.metadata = (("authorization", f"Bearer {token}"),) if token else ()
        tls_ca, tls_cert, tls_key = tls_ca or env("SERVERPREP_TLS_CA"), tls_cert or env("SERVERPREP_TLS_CERT"), tls_key or env("SERVERPREP_TLS_KEY")
        if tls_ca or tls_cert:
            credentials = grpc.ssl_channel_credentials(
                root_certificates=_read(tls_ca), private_key=_read(tls_key), certificate_chain=_read(tls_cert)
            )
            self.channel = grpc.secure_channel(self.address, credentials)
        else:
            self.channel = grpc.insecure_channel(self.address)
        self.servers = spb_grpc.ServerServiceStub(self.channel)
        self.preparations = pb_grpc.PreparationServiceStub(self.channel)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.channel.close()

    def _call(self, method, request):  # type: ignore[no-untyped-def]
        try:
            return method(request, timeout=self.timeout, metadata=self.metadata)
        except grpc.RpcError as e:
            raise ServerprepClientError.from_rpc(e) from None

    def health(self) -> str:
        """The service's health: SERVING, NOT_SERVING, ..."""
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        stub = health_pb2_grpc.HealthStub(self.channel)
        response = self._call(stub.Check, health_pb2.HealthCheckRequest())
        return health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)

    # -- servers ------------------------------------------------------------

    def create_server(
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
        request = spb.CreateServerRequest(
            name=name,
            host=host,
            port=port,
            user=user,
            credentials=spb.Credentials(
                private_key=private_key,
                private_key_passphrase=private_key_passphrase,
                password=password,
                sudo_password=sudo_password,
            ),
            host_key=host_key,
            accept_new_host_key=accept_new_host_key,
        )
        return self._call(self.servers.CreateServer, request).server

    def get_server(self, name: str) -> spb.Server:
        return self._call(self.servers.GetServer, spb.GetServerRequest(name=name)).server

    def list_servers(self, page_size: int = 100) -> Iterator[spb.Server]:
        token = ""
        while True:
            page = self._call(self.servers.ListServers, spb.ListServersRequest(page_size=page_size, page_token=token))
            yield from page.servers
            token = page.next_page_token
            if not token:
                return

    def update_server(self, name: str, **changes: str | int | bool) -> spb.Server:
        """Change only the given fields: host, port, user, private_key, private_key_passphrase,
        password, sudo_password, host_key, accept_new_host_key."""
        request = spb.UpdateServerRequest(name=name)
        for key, value in changes.items():
            if key in ("private_key", "private_key_passphrase", "password", "sudo_password"):
                setattr(request.credentials, key, value)
                request.update_mask.paths.append(f"credentials.{key}")
            else:
                setattr(request, key, value)
                request.update_mask.paths.append(key)
        return self._call(self.servers.UpdateServer, request).server

    def delete_server(self, name: str) -> None:
        self._call(self.servers.DeleteServer, spb.DeleteServerRequest(name=name))

    # -- preparations -------------------------------------------------------

    def prepare(self, server: str, *, request_id: str = "", **options: str | int) -> pb.Preparation:
        """Start preparing ``server``. ``options`` are PrepareOptions fields; ``docker_source``
        may be given as "official" or "distro"."""
        request = pb.PrepareRequest(server=server, request_id=request_id, options=prepare_options(**options))
        return self._call(self.preparations.Prepare, request).preparation

    def plan(self, server: str, **options: str | int) -> pb.PlanResponse:
        """What Prepare would run on ``server``, from its real facts, changing nothing."""
        return self._call(self.preparations.Plan, pb.PlanRequest(server=server, options=prepare_options(**options)))

    def status(self, server: str, preparation_id: str = "") -> pb.Preparation:
        request = pb.StatusRequest(server=server, preparation_id=preparation_id)
        return self._call(self.preparations.Status, request).preparation

    def retry(self, server: str, preparation_id: str = "") -> pb.Preparation:
        request = pb.RetryRequest(server=server, preparation_id=preparation_id)
        return self._call(self.preparations.Retry, request).preparation

    def cancel(self, server: str, preparation_id: str = "") -> pb.Preparation:
        request = pb.CancelRequest(server=server, preparation_id=preparation_id)
        return self._call(self.preparations.Cancel, request).preparation

    def list_preparations(self, server: str, page_size: int = 50) -> Iterator[pb.Preparation]:
        token = ""
        while True:
            request = pb.ListPreparationsRequest(server=server, page_size=page_size, page_token=token)
            page = self._call(self.preparations.ListPreparations, request)
            yield from page.preparations
            token = page.next_page_token
            if not token:
                return

    def stream_logs(
        self, server: str, preparation_id: str = "", *, after_seq: int = 0, follow: bool = True, resume: bool = True
    ) -> Iterator[pb.LogEntry]:
        """Log entries in order; with ``resume``, a cut stream is picked up again by sequence number."""
        last = after_seq
        attempts = 0
        if resume and not preparation_id:
            # Stay on this preparation when resuming, even if a newer one starts meanwhile.
            preparation_id = self.status(server).id
        while True:
            request = pb.StreamLogsRequest(
                server=server, preparation_id=preparation_id, after_seq=last, no_follow=not follow
            )
            try:
                for response in self.preparations.StreamLogs(request, metadata=self.metadata):
                    attempts = 0
                    for entry in response.entries:
                        last = entry.seq
                        yield entry
                return
            except grpc.RpcError as e:
                error = ServerprepClientError.from_rpc(e)
                resumable = error.code in (grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.UNAVAILABLE)
                attempts += 1
                if not (resume and resumable and attempts <= 5):
                    raise error from None
                time.sleep(min(attempts, 3))
