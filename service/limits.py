"""Descriptors: how many API connections the service can take while keeping enough for its own work."""

from __future__ import annotations

import logging
import resource

from serverprep.service.errors import InvalidSetting
from serverprep.service.settings import Settings

log = logging.getLogger(__name__)

#: Descriptors for the database, the listening socket, log files, the event loop and Python itself.
BASE_RESERVE = 64
#: Per running preparation: its SSH connection, the second one of verify_docker, and one to spare.
PER_PREPARATION = 3
#: Never fewer API connections than this, or the service is not worth starting.
MIN_CONNECTIONS = 16


def open_file_limit() -> int:
    """Raise the soft limit of open files to the hard one (the kernel's allowance), and return it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass
    return soft


def reserve(settings: Settings) -> int:
    """Descriptors kept for outgoing SSH, Plans and the database, whatever clients do."""
    return BASE_RESERVE + PER_PREPARATION * settings.max_concurrent + 2 * settings.max_concurrent_plans


def max_connections(settings: Settings) -> int:
    """The cap on API connections: the setting, or what the open-file limit allows after the reserve."""
    limit = open_file_limit()
    room = limit - reserve(settings)
    if settings.max_connections:
        if settings.max_connections > room:
            raise InvalidSetting(
                f"--max-connections {settings.max_connections} does not fit: the open-file limit is {limit} and "
                f"{reserve(settings)} are kept for SSH and the database (raise ulimit -n, or lower --max-concurrent)"
            )
        return settings.max_connections
    if room < MIN_CONNECTIONS:
        raise InvalidSetting(
            f"the open-file limit {limit} leaves {room} descriptors for API connections after {reserve(settings)} kept for "
            f"--max-concurrent {settings.max_concurrent}: raise ulimit -n, or lower --max-concurrent"
        )
    return room


def server_options(settings: Settings) -> list[tuple[str, int]]:
    """gRPC server options that bound what clients can hold: connections, handshakes, idle and old ones, streams."""
    cap = max_connections(settings)
    log.info("API connections: at most %d (open-file limit %d, %d kept for SSH and the database)",
             cap, open_file_limit(), reserve(settings))
    return [
        ("grpc.max_allowed_incoming_connections", cap),
        ("grpc.server_handshake_timeout_ms", int(settings.handshake_timeout * 1000)),
        ("grpc.max_connection_idle_ms", int(settings.connection_idle_timeout * 1000)),
        ("grpc.max_connection_age_ms", int(settings.connection_max_age * 1000)),
        ("grpc.max_connection_age_grace_ms", 300_000),
        ("grpc.max_concurrent_streams", settings.max_streams_per_connection),
        # Ask idle peers for a sign of life every minute; a peer may ping at most every 10 s.
        ("grpc.keepalive_time_ms", 60_000),
        ("grpc.keepalive_timeout_ms", 20_000),
        ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
        ("grpc.http2.max_ping_strikes", 2),
    ]
