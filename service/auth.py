"""Who may call the API: TLS and mutual TLS credentials, a bearer token, and the exposure check."""

from __future__ import annotations

import hmac
import ipaddress
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc

from serverprep.service import metrics
from serverprep.service.errors import InsecureListen, Unauthenticated
from serverprep.service.rpcerrors import to_status

log = logging.getLogger("serverprep.auth")

# Health checks stay open so that load balancers and container runtimes can probe.
OPEN_METHODS = ("/grpc.health.v1.Health/",)


def is_loopback(listen: str) -> bool:
    host = listen.rsplit(":", 1)[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_exposure(listen: str, *, tls: bool, token: bool, insecure: bool) -> None:
    """Refuse to serve a non-loopback address in the clear and without a token, unless told to."""
    if is_loopback(listen) or tls or token or insecure:
        return
    raise InsecureListen(
        f"refusing to listen on {listen} without TLS or a token: anyone who can reach it could run commands "
        "as root on your servers. Give --tls-cert/--tls-key, --token-file (or $SERVERPREP_TOKEN), or --insecure."
    )


def server_credentials(cert: Path, key: Path, client_ca: Path | None) -> grpc.ServerCredentials:
    return grpc.ssl_server_credentials(
        [(key.read_bytes(), cert.read_bytes())],
        root_certificates=client_ca.read_bytes() if client_ca else None,
        require_client_auth=client_ca is not None,
    )


class TokenInterceptor(grpc.aio.ServerInterceptor):
    """Requires ``authorization: Bearer <token>`` on every call but health checks (unary and streaming)."""

    def __init__(self, token: str):
        self._expected = f"Bearer {token}".encode()

    def _allowed(self, details: grpc.HandlerCallDetails) -> bool:
        if details.method.startswith(OPEN_METHODS):
            return True
        for key, value in details.invocation_metadata or ():
            if key == "authorization":
                given = value.encode() if isinstance(value, str) else value
                return hmac.compare_digest(given, self._expected)
        return False

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        if handler is None or self._allowed(details):
            return handler
        metrics.REJECTED.labels("UNAUTHENTICATED").inc()
        log.warning("rejected a call to %s: missing or wrong bearer token", details.method,
                    extra={"method": details.method, "reason": "UNAUTHENTICATED"})
        status = to_status(Unauthenticated("missing or wrong bearer token (metadata 'authorization: Bearer <token>')"))

        async def deny(request: Any, context: grpc.aio.ServicerContext) -> Any:
            await context.abort_with_status(status)

        async def deny_stream(request: Any, context: grpc.aio.ServicerContext) -> Any:
            await context.abort_with_status(status)
            yield  # pragma: no cover - makes this an async generator

        kw = {"request_deserializer": handler.request_deserializer, "response_serializer": handler.response_serializer}
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(deny, **kw)
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(deny_stream, **kw)
        if handler.stream_unary:
            return grpc.stream_unary_rpc_method_handler(deny, **kw)
        return grpc.stream_stream_rpc_method_handler(deny_stream, **kw)
