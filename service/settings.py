"""Every setting of ``serverprep serve``, once: its flag, its environment variable and its default."""

from __future__ import annotations

import argparse
import dataclasses
import os
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from serverprep.clients.defaults import DEFAULT_ADDRESS
from serverprep.service.errors import InvalidSetting

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "serverprep"


def _setting(default: Any = None, *, env: str, help: str, factory: Callable[[], Any] | None = None,
             flag: str | None = None, parse: Callable[[str], Any] | None = None, choices: tuple[str, ...] = ()) -> Any:
    meta = {"env": env, "help": help, "flag": flag, "parse": parse, "choices": choices}
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


def _flag_bool(text: str) -> bool:
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"{text!r} is not a boolean (use 1 or 0)")


def _optional_path(text: str) -> Path | None:
    return Path(text) if text else None


@dataclass(frozen=True)
class Settings:
    """The service's settings. Defaults here are the only definition of each default."""

    listen: str = _setting(DEFAULT_ADDRESS, env="SERVERPREP_LISTEN", help="host:port to serve the API on")
    database_url: str = _setting(
        "", env="SERVERPREP_DATABASE_URL", flag="--database",
        help="peewee database URL, e.g. postgresql://user:pw@host/db (default: SQLite in the data directory)",
    )
    data_dir: Path = _setting(env="SERVERPREP_DATA_DIR", factory=default_data_dir, parse=Path,
                              help="directory of the SQLite database and secret.key")
    max_concurrent: int = _setting(16, env="SERVERPREP_MAX_CONCURRENT", help="preparations run at once; more wait PENDING")
    log_level: str = _setting("INFO", env="SERVERPREP_LOG_LEVEL", choices=LOG_LEVELS, parse=str.upper,
                              help="least severe service log level shown")
    log_format: str = _setting("text", env="SERVERPREP_LOG_FORMAT", choices=("text", "json"),
                               help="service log as readable text, or one JSON object per line")
    metrics_listen: str = _setting("", env="SERVERPREP_METRICS_LISTEN",
                                   help="host:port to serve Prometheus metrics on, e.g. 127.0.0.1:9464 (off when empty)")
    tls_cert: Path | None = _setting(None, env="SERVERPREP_SERVER_TLS_CERT", parse=_optional_path,
                                     help="server certificate (PEM); enables TLS")
    tls_key: Path | None = _setting(None, env="SERVERPREP_SERVER_TLS_KEY", parse=_optional_path,
                                    help="server private key (PEM)")
    tls_client_ca: Path | None = _setting(None, env="SERVERPREP_SERVER_TLS_CLIENT_CA", parse=_optional_path,
                                          help="require client certificates signed by this CA (mutual TLS)")
    token_file: Path | None = _setting(None, env="SERVERPREP_TOKEN_FILE", parse=_optional_path,
                                       help="file with the bearer token every call but health must carry")
    token: str = _setting("", env="SERVERPREP_TOKEN", flag="", help="the bearer token itself (environment only)")
    insecure: bool = _setting(False, env="SERVERPREP_INSECURE", parse=_flag_bool,
                              help="allow a non-loopback --listen without TLS or token")
    replica: str = _setting(env="SERVERPREP_REPLICA", factory=socket.gethostname,
                            help="this replica's name: unique among services sharing a database, stable across restarts")
    stale_after: float = _setting(30.0, env="SERVERPREP_STALE_AFTER",
                                  help="seconds without a heartbeat before another replica takes a replica's work over")
    shutdown_grace: float = _setting(20.0, env="SERVERPREP_SHUTDOWN_GRACE",
                                     help="seconds running steps get to finish on SIGTERM before they are interrupted")
    stream_backlog: int = _setting(10_000, env="SERVERPREP_STREAM_BACKLOG",
                                   help="log entries each running preparation keeps in memory for live readers "
                                        "(a reader further behind reads them from the database)")
    stream_backlog_bytes: int = _setting(4 * 1024 * 1024, env="SERVERPREP_STREAM_BACKLOG_BYTES",
                                         help="characters of log text each running preparation keeps in memory at most "
                                              "(fewer entries than --stream-backlog when its lines are long)")
    max_unstored_bytes: int = _setting(
        64 * 1024 * 1024, env="SERVERPREP_MAX_UNSTORED_BYTES",
        help="bytes of log entries waiting to be stored, across all preparations (text and about 200 per line); "
             "past it, reading command output pauses until the database catches up",
    )
    stream_message_bytes: int = _setting(
        1024 * 1024, env="SERVERPREP_STREAM_MESSAGE_BYTES",
        help="bytes of log entries in one StreamLogs message (a single entry always fits; clients accept 4 MiB by default)",
    )
    max_log_lines: int = _setting(100_000, env="SERVERPREP_MAX_LOG_LINES",
                                  help="lines of command output one preparation stores; more are counted, not stored")
    max_log_bytes: int = _setting(64 * 1024 * 1024, env="SERVERPREP_MAX_LOG_BYTES",
                                  help="bytes of command output one preparation stores; more are counted, not stored")
    max_connections: int = _setting(
        0, env="SERVERPREP_MAX_CONNECTIONS",
        help="API connections at once (0: as many as the open-file limit allows after a reserve for SSH and the database)",
    )
    handshake_timeout: float = _setting(10.0, env="SERVERPREP_HANDSHAKE_TIMEOUT",
                                        help="seconds a new API connection has to complete its handshake before it is dropped")
    connection_idle_timeout: float = _setting(300.0, env="SERVERPREP_CONNECTION_IDLE_TIMEOUT",
                                              help="seconds an API connection without a call is kept open")
    connection_max_age: float = _setting(3600.0, env="SERVERPREP_CONNECTION_MAX_AGE",
                                         help="seconds after which an API connection is asked to close (streams get 5 more minutes, then resume)")
    max_streams_per_connection: int = _setting(4096, env="SERVERPREP_MAX_STREAMS_PER_CONNECTION",
                                               help="calls at once on one API connection")
    retain_last: int = _setting(50, env="SERVERPREP_RETAIN_LAST",
                                help="preparations kept per server (0: no count limit); the latest and active ones always stay")
    retain_days: float = _setting(0.0, env="SERVERPREP_RETAIN_DAYS",
                                  help="days a preparation is kept (0: no age limit); the latest and active ones always stay")
    prune_interval: float = _setting(600.0, env="SERVERPREP_PRUNE_INTERVAL",
                                     help="seconds between applications of the retention policy")
    connect_timeout: float = _setting(15.0, env="SERVERPREP_CONNECT_TIMEOUT", help="seconds to open an SSH connection and log in")
    max_connecting: int = _setting(64, env="SERVERPREP_MAX_CONNECTING",
                                   help="SSH connections being opened at once (key exchange and login); more wait their turn")
    keepalive_interval: float = _setting(10.0, env="SERVERPREP_KEEPALIVE_INTERVAL",
                                         help="seconds between SSH keepalives to a server")
    keepalive_count_max: int = _setting(3, env="SERVERPREP_KEEPALIVE_COUNT", flag="--keepalive-count",
                                        help="missed keepalives after which a connection is lost")
    kill_grace: float = _setting(5.0, env="SERVERPREP_KILL_GRACE",
                                 help="seconds between SIGTERM and SIGKILL for a remote command being stopped")
    facts_timeout: float = _setting(60.0, env="SERVERPREP_FACTS_TIMEOUT",
                                    help="seconds the read-only facts round trip may take")
    facts_max_bytes: int = _setting(1024 * 1024, env="SERVERPREP_FACTS_MAX_BYTES",
                                    help="bytes the facts round trip may print before it is stopped (FACTS_FAILED)")
    max_concurrent_plans: int = _setting(4, env="SERVERPREP_MAX_CONCURRENT_PLANS",
                                         help="Plan calls (dry runs) at once; more are refused with RESOURCE_EXHAUSTED")

    @property
    def url(self) -> str:
        from serverprep.service.store import default_url

        return self.database_url or default_url(self.data_dir)

    @property
    def heartbeat_interval(self) -> float:
        """Seconds between heartbeats: often enough that a live replica is never taken for silent."""
        return min(5.0, self.stale_after / 4)

    # -- building -----------------------------------------------------------

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Defaults, then the environment, then ``overrides``."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            text = environ.get(f.metadata["env"])
            if text is not None and text != "":
                values[f.name] = _parse(f, text, f.metadata["env"])
        values.update(overrides)
        return cls(**values).checked()

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser, only: tuple[str, ...] = ()) -> None:
        """One flag per setting (or per setting named in ``only``); each flag's help names its
        environment variable and default."""
        defaults = cls()
        for f in dataclasses.fields(cls):
            if only and f.name not in only:
                continue
            flag = f.metadata["flag"]
            if flag == "":
                continue
            flag = flag or "--" + f.name.replace("_", "-")
            default = getattr(defaults, f.name)
            shown = "off" if default is False else "none" if default in (None, "") else default
            help_text = f"{f.metadata['help']} (${f.metadata['env']}; default: {shown})"
            if f.type in ("bool", bool):
                parser.add_argument(flag, dest=f.name, action="store_const", const=True, default=None, help=help_text)
            else:
                parser.add_argument(flag, dest=f.name, default=None, metavar=f.name.upper(), help=help_text)

    @classmethod
    def from_args(cls, args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> Settings:
        """Defaults, then the environment, then the flags given."""
        given: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            value = getattr(args, f.name, None)
            if value is not None:
                given[f.name] = value if isinstance(value, bool) else _parse(f, value, "--" + f.name.replace("_", "-"))
        settings = cls.from_env(environ, **given)
        if settings.token_file is not None:
            settings = dataclasses.replace(settings, token=_read_token(settings.token_file))
        return settings.checked()

    def checked(self) -> Settings:
        """Refuse settings that cannot work, naming each problem."""
        problems = []
        if self.max_concurrent < 1:
            problems.append("--max-concurrent must be at least 1")
        for name in ("max_log_lines", "max_log_bytes", "facts_max_bytes", "max_concurrent_plans", "max_streams_per_connection",
                     "max_connecting"):
            if getattr(self, name) < 1:
                problems.append(f"--{name.replace('_', '-')} must be at least 1")
        if self.stream_backlog < 1:
            problems.append("--stream-backlog must be at least 1")
        if self.max_unstored_bytes < 1024 * 1024:
            problems.append("--max-unstored-bytes must be at least 1048576")
        if self.stream_backlog_bytes < 64 * 1024:
            problems.append("--stream-backlog-bytes must be at least 65536")
        if not 64 * 1024 <= self.stream_message_bytes <= 3 * 1024 * 1024:
            problems.append("--stream-message-bytes must be between 65536 and 3145728 (clients accept 4 MiB)")
        for name in ("stale_after", "connect_timeout", "keepalive_interval", "kill_grace", "facts_timeout",
                     "handshake_timeout", "connection_idle_timeout", "connection_max_age", "prune_interval"):
            if getattr(self, name) <= 0:
                problems.append(f"--{name.replace('_', '-')} must be more than 0")
        if self.retain_last < 0 or self.retain_days < 0:
            problems.append("--retain-last and --retain-days must not be negative (0: no limit)")
        if self.max_connections < 0:
            problems.append("--max-connections must not be negative (0: automatic)")
        if self.shutdown_grace < 0 or self.keepalive_count_max < 1:
            problems.append("--shutdown-grace must not be negative and --keepalive-count at least 1")
        if bool(self.tls_cert) != bool(self.tls_key):
            problems.append("--tls-cert and --tls-key go together")
        if self.tls_client_ca and not self.tls_cert:
            problems.append("--tls-client-ca needs --tls-cert and --tls-key")
        for path in (self.tls_cert, self.tls_key, self.tls_client_ca):
            if path is not None and not path.is_file():
                problems.append(f"no such file: {path}")
        if problems:
            raise InvalidSetting("; ".join(problems))
        return self


def _parse(f: dataclasses.Field[Any], text: Any, where: str) -> Any:
    parse = f.metadata["parse"] or {"int": int, "float": float, "str": str}.get(str(f.type), str)
    try:
        value = parse(text) if isinstance(text, str) else text
    except ValueError as e:
        raise InvalidSetting(f"{where}: cannot read {text!r}: {e}") from None
    choices = f.metadata["choices"]
    if choices and value not in choices:
        raise InvalidSetting(f"{where}: {text!r} is not one of {', '.join(choices)}")
    return value


def _read_token(path: Path) -> str:
    try:
        token = path.read_text().strip()
    except OSError as e:
        raise InvalidSetting(f"cannot read token file {path}: {e.strerror}") from None
    if not token:
        raise InvalidSetting(f"token file {path} is empty")
    return token
