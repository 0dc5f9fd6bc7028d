"""Request messages built from checked Python arguments, shared by Client and AsyncClient.

Arguments that cannot be sent (a wrong type, an unknown Docker source, an unknown field to
update) raise :class:`InvalidArgumentError` here, before any call; what is well-typed but
wrong (a malformed host name, a bad proxy URL) is the service's to judge.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypedDict, get_type_hints

from google.protobuf.wrappers_pb2 import Int32Value, StringValue

from serverprep.clients.errors import InvalidArgumentError
from serverprep.v1 import preparations_pb2 as pb
from serverprep.v1 import servers_pb2 as spb

if TYPE_CHECKING:
    from collections.abc import Callable

MAX_UINT32 = 2**32 - 1
MAX_INT32 = 2**31 - 1
DOCKER_SOURCES = {"official": pb.DOCKER_SOURCE_OFFICIAL, "distro": pb.DOCKER_SOURCE_DISTRO}
CREDENTIALS = ("private_key", "private_key_passphrase", "password", "sudo_password")


class ServerChanges(TypedDict, total=False):
    """What :meth:`Client.update_server` can change; only the keys given change."""

    host: str
    port: int
    user: str
    private_key: str
    private_key_passphrase: str
    password: str
    sudo_password: str
    host_key: str
    accept_new_host_key: bool


#: Each field update_server takes, and its type.
UPDATABLE: dict[str, type] = get_type_hints(ServerChanges)


class Checker:
    """Collects every problem of one call's arguments, then raises them together."""

    def __init__(self) -> None:
        self.violations: dict[str, str] = {}

    def text(self, name: str, value: object) -> str:
        if not isinstance(value, str):
            self.violations[name] = f"must be a string, not {type(value).__name__}"
            return ""
        return value

    def number(self, name: str, value: object, low: int = 0, high: int = MAX_UINT32) -> int:
        # bool is an int to Python, never to a caller who meant a number.
        if isinstance(value, bool) or not isinstance(value, int):
            self.violations[name] = f"must be an integer, not {type(value).__name__}"
            return 0
        if not low <= value <= high:
            self.violations[name] = f"must be between {low} and {high}, not {value}"
            return 0
        return value

    def flag(self, name: str, value: object) -> bool:
        if not isinstance(value, bool):
            self.violations[name] = f"must be True or False, not {type(value).__name__}"
            return False
        return value

    def docker_source(self, value: object) -> pb.DockerSource:
        if isinstance(value, str) and value in DOCKER_SOURCES:
            return DOCKER_SOURCES[value]
        for source in DOCKER_SOURCES.values():
            if isinstance(value, int) and not isinstance(value, bool) and value == source:
                return source
        self.violations["docker_source"] = f"must be 'official' or 'distro' (or a DockerSource value), not {value!r}"
        return pb.DOCKER_SOURCE_UNSPECIFIED

    def done(self) -> None:
        if self.violations:
            raise InvalidArgumentError.local(self.violations)


def prepare_options(
    docker_source: str | int = "official",
    step_timeout: int = 0,
    docker_version: str = "",
    channel: str = "",
    repository_url: str = "",
    http_proxy: str = "",
    https_proxy: str = "",
    no_proxy: str = "",
) -> pb.PrepareOptions:
    """PrepareOptions from the keyword arguments of :meth:`Client.prepare` (checked)."""
    c = Checker()
    options = pb.PrepareOptions(
        docker_source=c.docker_source(docker_source),
        step_timeout_seconds=c.number("step_timeout", step_timeout),
        docker_version=c.text("docker_version", docker_version),
        channel=c.text("channel", channel),
        repository_url=c.text("repository_url", repository_url),
        http_proxy=c.text("http_proxy", http_proxy),
        https_proxy=c.text("https_proxy", https_proxy),
        no_proxy=c.text("no_proxy", no_proxy),
    )
    c.done()
    return options


def prepare(server: str, request_id: str, options: pb.PrepareOptions) -> pb.PrepareRequest:
    c = Checker()
    request = pb.PrepareRequest(server=c.text("server", server), request_id=c.text("request_id", request_id), options=options)
    c.done()
    return request


def plan(server: str, options: pb.PrepareOptions) -> pb.PlanRequest:
    c = Checker()
    request = pb.PlanRequest(server=c.text("server", server), options=options)
    c.done()
    return request


def by_preparation(cls: Callable[..., Any], server: str, preparation_id: str) -> Any:
    """Status, Retry and Cancel requests: a server and, optionally, one of its preparations."""
    c = Checker()
    request = cls(server=c.text("server", server), preparation_id=c.text("preparation_id", preparation_id))
    c.done()
    return request


def stream_logs(server: str, preparation_id: str, after_seq: int, follow: bool) -> pb.StreamLogsRequest:
    c = Checker()
    request = pb.StreamLogsRequest(
        server=c.text("server", server), preparation_id=c.text("preparation_id", preparation_id),
        after_seq=c.number("after_seq", after_seq, 0, 2**63 - 1), no_follow=not c.flag("follow", follow),
    )
    c.done()
    return request


def list_preparations(server: str, page_size: int, page_token: str) -> pb.ListPreparationsRequest:
    c = Checker()
    request = pb.ListPreparationsRequest(server=c.text("server", server), page_size=c.number("page_size", page_size, 1, MAX_INT32),
                                         page_token=page_token)
    c.done()
    return request


def list_servers(page_size: int, page_token: str) -> spb.ListServersRequest:
    c = Checker()
    request = spb.ListServersRequest(page_size=c.number("page_size", page_size, 1, MAX_INT32), page_token=page_token)
    c.done()
    return request


def by_name(cls: Callable[..., Any], name: str) -> Any:
    """GetServer and DeleteServer requests."""
    c = Checker()
    request = cls(name=c.text("name", name))
    c.done()
    return request


def create_server(
    name: str, *, host: str, user: str, port: int, private_key: str, private_key_passphrase: str, password: str,
    sudo_password: str, host_key: str, accept_new_host_key: bool,
) -> spb.CreateServerRequest:
    c = Checker()
    request = spb.CreateServerRequest(
        name=c.text("name", name), host=c.text("host", host), port=c.number("port", port, 0, 65535), user=c.text("user", user),
        credentials=spb.Credentials(
            private_key=c.text("private_key", private_key),
            private_key_passphrase=c.text("private_key_passphrase", private_key_passphrase),
            password=c.text("password", password), sudo_password=c.text("sudo_password", sudo_password),
        ),
        host_key=c.text("host_key", host_key), accept_new_host_key=c.flag("accept_new_host_key", accept_new_host_key),
    )
    c.done()
    return request


def update_server(name: str, changes: Mapping[str, object]) -> spb.UpdateServerRequest:
    """An UpdateServerRequest whose update_mask names exactly the given changes."""
    c = Checker()
    request = spb.UpdateServerRequest(name=c.text("name", name))
    if not changes:
        c.violations["update_mask"] = f"nothing to change: give at least one of {', '.join(UPDATABLE)}"
    for key, value in changes.items():
        kind = UPDATABLE.get(key)
        if kind is None:
            close = difflib.get_close_matches(key, UPDATABLE, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            c.violations[key] = f"is not a field that can be updated ({hint}one of {', '.join(UPDATABLE)})"
            continue
        checked: object
        if kind is bool:
            checked = c.flag(key, value)
        elif kind is int:
            checked = c.number(key, value, 0, 65535)
        else:
            checked = c.text(key, value)
        if key in CREDENTIALS:
            setattr(request.credentials, key, checked)
            request.update_mask.paths.append(f"credentials.{key}")
        else:
            setattr(request, key, checked)
            request.update_mask.paths.append(key)
    c.done()
    return request


# -- grpc.health.v1, without its generated modules ----------------------------
# HealthCheckRequest {string service = 1} and HealthCheckResponse {ServingStatus status = 1}
# have the wire format of StringValue and Int32Value (field 1, string / varint): the
# well-known wrappers encode and decode them. tests/service/test_client.py checks this
# against the vendored grpc/health/v1/health.proto descriptor.

HEALTH_CHECK = "/grpc.health.v1.Health/Check"
SERVING_STATUS = {0: "UNKNOWN", 1: "SERVING", 2: "NOT_SERVING", 3: "SERVICE_UNKNOWN"}


def health_request(service: str) -> bytes:
    c = Checker()
    request = StringValue(value=c.text("service", service))
    c.done()
    raw: bytes = request.SerializeToString()
    return raw


def health_status(raw: bytes) -> str:
    value = Int32Value.FromString(raw).value
    return SERVING_STATUS.get(value, f"UNKNOWN_{value}")
