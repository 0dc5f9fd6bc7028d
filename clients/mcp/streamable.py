"""The streamable HTTP transport: loopback unless a token of its own guards it, Host/Origin checked, bounded by the SDK's limits."""

from __future__ import annotations

import hmac
import ipaddress
import json
import sys
from typing import Any

import uvicorn
from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from starlette.types import ASGIApp, Receive, Scope, Send

PATH = "/mcp"
#: Bounds of the endpoint: the tools' arguments are a few short strings and numbers; a handful of agents use it at once.
MAX_REQUEST_BYTES = 64 * 1024
MAX_SESSIONS = 100
SESSION_IDLE_SECONDS = 15 * 60


class HttpRefused(ValueError):
    """An --http address or token this server will not serve with."""


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:PORT`` for IPv6) as a host and a port."""
    host, sep, port_text = text.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not sep or not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise HttpRefused(f"--http wants HOST:PORT, e.g. 127.0.0.1:8765, not {text!r}")
    return host, int(port_text)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_exposure(host: str, token: str | None) -> None:
    """Refuse to listen beyond loopback without a token: whoever reaches the endpoint can prepare every registered server."""
    if not is_loopback(host) and not token:
        raise HttpRefused(
            f"refusing to serve MCP on {host}, which is not a loopback address, without a token of its own: anyone who "
            "reaches it could prepare every registered server with this process's serverprep credentials. Give "
            "--http-token-file FILE (or $SERVERPREP_MCP_TOKEN) so clients must send 'Authorization: Bearer <token>', and "
            "put TLS in front of it (a reverse proxy), or listen on 127.0.0.1")


class RequireBearer:
    """ASGI middleware: every HTTP request carries ``Authorization: Bearer <token>`` (compared in constant time)."""

    def __init__(self, app: ASGIApp, token: str):
        self.app = app
        self.expected = f"Bearer {token}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            given = dict(scope["headers"]).get(b"authorization", b"")
            if not hmac.compare_digest(given, self.expected):
                body = json.dumps({"error": {"reason": "UNAUTHENTICATED",
                                             "message": "this MCP endpoint wants 'Authorization: Bearer <token>'"}}).encode()
                await send({"type": "http.response.start", "status": 401,
                            "headers": [(b"content-type", b"application/json"), (b"www-authenticate", b"Bearer")]})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)


def security(host: str, port: int) -> TransportSecuritySettings | None:
    """Host and Origin checks against DNS rebinding (a web page that makes a browser talk to a local port)."""
    if not is_loopback(host):
        return None  # a token guards it; the names it is reached by are the operator's to know
    hosts = ["127.0.0.1", "localhost", "[::1]"]
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=[f"{h}:{port}" for h in hosts],
        allowed_origins=[f"http://{h}:{port}" for h in hosts],
    )


def app(server: MCPServer[Any], host: str, port: int, token: str | None) -> ASGIApp:
    starlette = server.streamable_http_app(
        streamable_http_path=PATH, transport_security=security(host, port), host=host, max_request_body_size=MAX_REQUEST_BYTES,
        max_sessions=MAX_SESSIONS, session_idle_timeout=SESSION_IDLE_SECONDS,
    )
    return RequireBearer(starlette, token) if token else starlette


async def serve(server: MCPServer[Any], host: str, port: int, token: str | None) -> None:
    check_exposure(host, token)
    config = uvicorn.Config(app(server, host, port, token), host=host, port=port, log_level="warning", access_log=False,
                            lifespan="on")
    where = f"[{host}]" if ":" in host else host
    print(f"serverprep mcp: streamable HTTP on http://{where}:{port}{PATH}"
          + ("" if token else " (no token: any local user and process can use it)"), file=sys.stderr, flush=True)
    await uvicorn.Server(config).serve()
