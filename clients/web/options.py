"""The gateway's options and the checks on where it may listen (no aiohttp here: the CLI loads it without the extra)."""

from __future__ import annotations

import ipaddress
import ssl
from dataclasses import dataclass, field
from typing import Any


class RefusedListen(ValueError):
    """A listen address the gateway will not serve on as configured."""


@dataclass
class WebOptions:
    """How the gateway serves, and its bounds (see ``serverprep web --help``)."""

    listen_host: str = "127.0.0.1"
    listen_port: int = 8080
    web_token: str | None = None
    ssl_context: ssl.SSLContext | None = None
    allowed_hosts: frozenset[str] = frozenset()
    refresh: float = 5.0
    max_streams: int = 48
    max_browsers: int = 32
    max_log_streams: int = 16
    browser_backlog: int = 64
    write_timeout: float = 10.0
    keepalive: float = 15.0
    log_tail: int = 5000
    #: address, timeout, token and TLS files of the service, as AsyncClient takes them
    connection: dict[str, Any] = field(default_factory=dict)


def is_loopback(host: str) -> bool:
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def split_listen(listen: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:8080`` for IPv6) as host and port, or RefusedListen saying what is wrong."""
    host, sep, port = listen.strip().rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise RefusedListen(f"--listen must be HOST:PORT (e.g. 127.0.0.1:8080), not {listen!r}")
    return host.strip("[]"), int(port)


def check_exposure(host: str, *, login: bool) -> None:
    """Refuse a non-loopback address unless a login protects it: the page can run preparations as root."""
    if not is_loopback(host) and not login:
        raise RefusedListen(
            f"refusing to serve the web view on {host} without a login: anyone who can reach it could prepare, retry "
            "and cancel on your servers. Give --web-token-file (or $SERVERPREP_WEB_TOKEN), or listen on 127.0.0.1.")
