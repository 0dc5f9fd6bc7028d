"""A typed, blocking Python client for other programs that talk to serverprep.

Long because it is the documented public API: every method carries its docstring and example.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any, Unpack

import grpc

from serverprep.clients import messages
from serverprep.clients.channel import STREAM_RESUME_ATTEMPTS, Connection
from serverprep.clients.errors import ServerprepClientError, error_from_rpc
from serverprep.clients.messages import ServerChanges, prepare_options
from serverprep.clients.types import TERMINAL
from serverprep.v1 import preparations_pb2 as pb
from serverprep.v1 import preparations_pb2_grpc as pb_grpc
from serverprep.v1 import servers_pb2 as spb
from serverprep.v1 import servers_pb2_grpc as spb_grpc

__all__ = ["Client", "ServerprepClientError", "TERMINAL", "prepare_options"]

#: Errors after which a log stream is picked up again by sequence number.
RESUMABLE = (grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.UNAVAILABLE)

#: Seconds :meth:`Client.close` waits for grpcio's close, which takes milliseconds unless it never ends.
CLOSE_WAIT = 2.0

log = logging.getLogger(__name__)


class Client:
    """Blocking client for the serverprep API.

    >>> from serverprep.clients import Client, PREPARATION_STATE_SUCCEEDED
    >>> with Client("127.0.0.1:50051") as sp:                      # doctest: +SKIP
    ...     sp.create_server("web1", host="10.0.0.5", user="admin",
    ...                      private_key=open("id_ed25519").read(),
    ...                      accept_new_host_key=True)
    ...     prep = sp.prepare("web1", docker_source="distro")
    ...     for entry in sp.stream_logs("web1", prep.id):
    ...         print(entry.seq, entry.step, entry.text)
    ...     assert sp.status("web1").state == PREPARATION_STATE_SUCCEEDED

    Every method raises a subclass of :class:`ServerprepClientError` on failure: the class of
    the service's reason (:class:`ServerNotFound`, :class:`PreparationActive`, ...),
    :class:`ServiceUnavailable` when the service cannot be reached, and
    :class:`InvalidArgumentError` (also a ``ValueError``) for arguments refused before any call.
    :class:`AsyncClient` has the same methods, to be awaited.
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
        """Connect lazily to ``address`` (``host:port``, or any gRPC target such as ``unix:/run/sp.sock``).

        Defaults come from $SERVERPREP_ADDRESS (an empty value counts as unset; then
        127.0.0.1:50051), $SERVERPREP_TOKEN and $SERVERPREP_TLS_CA/_CERT/_KEY (PEM files).
        ``timeout`` bounds each call in seconds, except the log stream, which lasts as long as
        the preparation. Nothing is sent until the first call.
        """
        conn = Connection.resolve(address, token, tls_ca, tls_cert, tls_key)
        self.address = conn.address
        self.timeout = timeout
        self.metadata = conn.metadata
        if conn.credentials is not None:
            self.channel = grpc.secure_channel(conn.address, conn.credentials)
        else:
            self.channel = grpc.insecure_channel(conn.address)
        self.servers = spb_grpc.ServerServiceStub(self.channel)
        self.preparations = pb_grpc.PreparationServiceStub(self.channel)
        self._health = self.channel.unary_unary(
            messages.HEALTH_CHECK, request_serializer=lambda raw: raw, response_deserializer=lambda raw: raw
        )

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the channel; calls in flight end with :class:`ServiceUnavailable` or ``CANCELLED``.

        It returns within ``CLOSE_WAIT`` seconds. An exception raised inside grpcio's own code (a
        KeyboardInterrupt from Ctrl-C, or any other raised by a signal handler) can leave the channel
        waiting for a call that never ends, and grpcio's close then waits for good (grpc/grpc#19973):
        such a close is left to finish in a daemon thread, with a warning, so that the program can end.
        While Python shuts down (a finalizer, an ``atexit`` hook), where no thread can start, it closes directly.
        """
        if sys.is_finalizing():
            self.channel.close()
            return
        closer = threading.Thread(target=self.channel.close, name="serverprep-client-close", daemon=True)
        try:
            closer.start()
        except RuntimeError:  # "can't create new thread at interpreter shutdown" (PythonFinalizationError in 3.13)
            self.channel.close()
            return
        closer.join(CLOSE_WAIT)
        if closer.is_alive():
            log.warning("the gRPC channel to %s did not close within %g s (an exception raised inside grpcio, "
                        "grpc/grpc#19973); it is left closing in the background", self.address, CLOSE_WAIT)

    def _call(self, method: Any, request: Any) -> Any:
        try:
            return method(request, timeout=self.timeout, metadata=self.metadata)
        except grpc.RpcError as e:
            raise error_from_rpc(e) from None

    def health(self, service: str = "") -> str:
        """The service's health (grpc.health.v1): ``"SERVING"``, ``"NOT_SERVING"`` (shutting down), ...

        >>> Client().health()                                          # doctest: +SKIP
        'SERVING'
        """
        return messages.health_status(self._call(self._health, messages.health_request(service)))

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
        """Register a server to prepare. Credentials are stored encrypted and never returned.

        Give exactly one of ``host_key`` (``"ssh-ed25519 AAAA..."``, as in known_hosts without
        the host name) or ``accept_new_host_key=True`` (pin the key seen on the first connection).

        >>> sp.create_server("web1", host="10.0.0.5", user="admin",     # doctest: +SKIP
        ...                  private_key=key_text, host_key="ssh-ed25519 AAAAC3Nza...")

        Raises :class:`ServerExists`, :class:`InvalidArgumentError` (see ``violations``).
        """
        request = messages.create_server(
            name, host=host, user=user, port=port, private_key=private_key, private_key_passphrase=private_key_passphrase,
            password=password, sudo_password=sudo_password, host_key=host_key, accept_new_host_key=accept_new_host_key,
        )
        response: spb.CreateServerResponse = self._call(self.servers.CreateServer, request)
        return response.server

    def get_server(self, name: str) -> spb.Server:
        """A registered server (without its credentials: see ``has_private_key`` and the like).

        Raises :class:`ServerNotFound`.
        """
        response: spb.GetServerResponse = self._call(self.servers.GetServer, messages.by_name(spb.GetServerRequest, name))
        return response.server

    def list_servers(self, page_size: int = 100) -> Iterator[spb.Server]:
        """Every registered server, by name, fetched ``page_size`` at a time.

        >>> [s.name for s in sp.list_servers()]                         # doctest: +SKIP
        ['db1', 'web1']
        """
        token = ""
        while True:
            page: spb.ListServersResponse = self._call(self.servers.ListServers, messages.list_servers(page_size, token))
            yield from page.servers
            token = page.next_page_token
            if not token:
                return

    def update_server(self, name: str, **changes: Unpack[ServerChanges]) -> spb.Server:
        """Change only the given fields; the server keeps its history.

        Fields: ``host``, ``port``, ``user``, ``private_key``, ``private_key_passphrase``,
        ``password``, ``sudo_password``, ``host_key`` (pin this key) and
        ``accept_new_host_key=True`` (forget the pinned key, pin the next one seen).

        >>> sp.update_server("web1", host="10.0.0.6", host_key=new_key)   # doctest: +SKIP

        An unknown field, a wrong type or no change at all raises :class:`InvalidArgumentError`
        before any call.
        """
        response: spb.UpdateServerResponse = self._call(self.servers.UpdateServer, messages.update_server(name, changes))
        return response.server

    def delete_server(self, name: str) -> None:
        """Remove a server and its history. Raises :class:`PreparationActive` while it is being prepared."""
        self._call(self.servers.DeleteServer, messages.by_name(spb.DeleteServerRequest, name))

    # -- preparations -------------------------------------------------------

    def prepare(
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
        """Start preparing ``server``; returns at once with the ``PENDING`` preparation.

        ``docker_source`` is ``"official"`` (Docker's repository, the default) or ``"distro"``
        (the OS's own packages), or a :class:`DockerSource` value. ``step_timeout`` is in seconds
        (0: the service's default, 900). ``docker_version`` is a version prefix (``"27.3"``),
        ``channel`` ``"stable"`` or ``"test"``, ``repository_url`` a mirror of
        download.docker.com, and the proxies are passed to the package tools on the server.
        The same ``request_id`` returns the same preparation instead of starting another.

        >>> prep = sp.prepare("web1", docker_source="distro", request_id="deploy-42")  # doctest: +SKIP
        >>> prep.state == PREPARATION_STATE_PENDING                                    # doctest: +SKIP
        True

        Raises :class:`PreparationActive` (see ``.preparation_id``) when one is running.
        """
        options = prepare_options(docker_source, step_timeout, docker_version, channel, repository_url, http_proxy,
                                  https_proxy, no_proxy)
        response: pb.PrepareResponse = self._call(self.preparations.Prepare, messages.prepare(server, request_id, options))
        return response.preparation

    def plan(
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
        """What :meth:`prepare` would run on ``server``, from its real facts, changing nothing.

        It connects (read-only), so it raises what a connection can: :class:`HostKeyMismatch`,
        :class:`AuthFailed`, :class:`ConnectFailed` and its subclasses, :class:`UnsupportedOS` ...

        >>> for step in sp.plan("web1", docker_source="distro").steps:   # doctest: +SKIP
        ...     print(step.name, step.summaries)
        """
        options = prepare_options(docker_source, step_timeout, docker_version, channel, repository_url, http_proxy,
                                  https_proxy, no_proxy)
        response: pb.PlanResponse = self._call(self.preparations.Plan, messages.plan(server, options))
        return response

    def status(self, server: str, preparation_id: str = "") -> pb.Preparation:
        """A preparation with its steps, OS and failure: the latest of ``server`` unless ``preparation_id``.

        >>> prep = sp.status("web1")                                     # doctest: +SKIP
        >>> [(s.name, StepState.Name(s.state)) for s in prep.steps]      # doctest: +SKIP
        [('detect_os', 'STEP_STATE_SUCCEEDED'), ...]
        """
        request = messages.by_preparation(pb.StatusRequest, server, preparation_id)
        response: pb.StatusResponse = self._call(self.preparations.Status, request)
        return response.preparation

    def retry(self, server: str, preparation_id: str = "") -> pb.Preparation:
        """Resume a FAILED or CANCELLED preparation at the step that did not finish.

        Raises :class:`NotRetryable` for one that succeeded or is still active.
        """
        request = messages.by_preparation(pb.RetryRequest, server, preparation_id)
        response: pb.RetryResponse = self._call(self.preparations.Retry, request)
        return response.preparation

    def cancel(self, server: str, preparation_id: str = "") -> pb.Preparation:
        """Stop a PENDING or RUNNING preparation (the running remote command is killed).

        Raises :class:`NotCancellable` for one that has ended.
        """
        request = messages.by_preparation(pb.CancelRequest, server, preparation_id)
        response: pb.CancelResponse = self._call(self.preparations.Cancel, request)
        return response.preparation

    def list_preparations(self, server: str, page_size: int = 50) -> Iterator[pb.Preparation]:
        """The preparations of ``server``, newest first, fetched ``page_size`` at a time."""
        token = ""
        while True:
            page: pb.ListPreparationsResponse = self._call(
                self.preparations.ListPreparations, messages.list_preparations(server, page_size, token))
            yield from page.preparations
            token = page.next_page_token
            if not token:
                return

    def stream_logs(
        self, server: str, preparation_id: str = "", *, after_seq: int = 0, follow: bool = True, resume: bool = True
    ) -> Iterator[pb.LogEntry]:
        """Log entries after ``after_seq``, in order: the stored ones, then live ones until the preparation ends.

        With ``follow=False`` it stops at the last stored entry. With ``resume`` (the default), a
        stream cut by the service (a reader too slow, a restart) is picked up again after the
        last entry received, so nothing is lost or repeated; without a ``preparation_id`` it
        stays on the preparation that was the latest when it started.

        >>> for entry in sp.stream_logs("web1", prep.id):                   # doctest: +SKIP
        ...     if entry.stream == LOG_STREAM_STDERR:
        ...         print("!", entry.text)

        Breaking out of the loop cancels the stream.
        """
        last = after_seq
        attempts = 0
        if resume and not preparation_id:
            preparation_id = self.status(server).id
        while True:
            call = self.preparations.StreamLogs(messages.stream_logs(server, preparation_id, last, follow), metadata=self.metadata)
            try:
                for response in call:
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
                time.sleep(min(attempts, 3))
            finally:
                call.cancel()


def is_terminal(prep: pb.Preparation) -> bool:
    """Whether ``prep`` has ended (SUCCEEDED, FAILED or CANCELLED)."""
    return prep.state in TERMINAL
