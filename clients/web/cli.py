"""``serverprep web``: the command that runs the gateway, added to the CLI through the serverprep.cli entry point."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import ssl
import sys
from pathlib import Path
from typing import Any, TextIO

from serverprep.clients.cli.common import EXIT_OK, EXIT_USAGE, CliError, address, option
from serverprep.clients.web.options import RefusedListen, WebOptions, check_exposure, is_loopback, split_listen

ENV_LISTEN = "SERVERPREP_WEB_LISTEN"
ENV_TOKEN = "SERVERPREP_WEB_TOKEN"
ENV_TOKEN_FILE = "SERVERPREP_WEB_TOKEN_FILE"

EXAMPLES = """examples:
  serverprep web                                       # http://127.0.0.1:8080/, the service at $SERVERPREP_ADDRESS
  serverprep web --listen 127.0.0.1:9000 --address 10.0.0.2:50051 --token-file ~/.serverprep-token
  serverprep web --listen 0.0.0.0:8443 --web-token-file /etc/serverprep/web-token \\
      --web-tls-cert web.pem --web-tls-key web-key.pem --allow-host prep.example.org

The page shows every server's latest preparation, live; a server's steps and log; Prepare, Retry
and Cancel. The service's token (--token-file, $SERVERPREP_TOKEN) stays in the gateway: browsers
never see it. A non-loopback --listen needs --web-token-file: people log in with that token once and
get a session cookie (HttpOnly, SameSite=Strict)."""


def add_commands(sub: Any, client_options: argparse.ArgumentParser) -> None:
    """Entry point of the ``serverprep.cli`` group: the ``web`` command."""
    p = sub.add_parser("web", parents=[client_options], help="serve a live web view of every server's preparation",
                       description="Serve a web page that shows the whole fleet's preparations live, as a client of the "
                                   "service (connection flags as for every command).",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    w = p.add_argument_group("web")
    w.add_argument("--listen", default=os.environ.get(ENV_LISTEN) or "127.0.0.1:8080", metavar="HOST:PORT",
                   help=f"where the page is served (default: ${ENV_LISTEN}, or 127.0.0.1:8080; port 0 picks a free one)")
    w.add_argument("--web-token-file", metavar="FILE",
                   help=f"file with the token people log in with (default: ${ENV_TOKEN_FILE}, or the token itself in "
                        f"${ENV_TOKEN}); required for a non-loopback --listen")
    w.add_argument("--web-tls-cert", metavar="FILE", help="serve HTTPS with this certificate (PEM)")
    w.add_argument("--web-tls-key", metavar="FILE", help="... and this key (PEM)")
    w.add_argument("--allow-host", action="append", default=[], metavar="NAME",
                   help="a host name browsers may use to reach the gateway (behind a proxy); repeatable")
    w.add_argument("--refresh", type=float, default=5.0, metavar="SECONDS",
                   help="seconds between sweeps of every server's latest preparation (default %(default)s)")
    w.add_argument("--max-streams", type=int, default=48, metavar="N",
                   help="active preparations followed live with StreamLogs at once; others are swept (default %(default)s)")
    w.add_argument("--max-browsers", type=int, default=32, metavar="N",
                   help="browsers following the fleet at once (default %(default)s)")
    w.add_argument("--max-log-streams", type=int, default=16, metavar="N",
                   help="logs relayed to browsers at once (default %(default)s)")
    w.add_argument("--browser-backlog", type=int, default=64, metavar="EVENTS",
                   help="fleet events queued for one browser before it is dropped (default %(default)s; it reconnects)")
    w.add_argument("--write-timeout", type=float, default=10.0, metavar="SECONDS",
                   help="a browser that takes no data for this long is dropped (default %(default)s)")
    p.set_defaults(run=run)


def _positive(name: str, value: float) -> None:
    if value <= 0:
        raise CliError(f"--{name} must be more than 0, not {value:g}", EXIT_USAGE)


def _read_secret(path: str, flag: str) -> str:
    try:
        text = Path(path).read_text().strip()
    except OSError as e:
        raise CliError(f"cannot read {flag} {path}: {e.strerror}", EXIT_USAGE) from None
    if not text:
        raise CliError(f"{flag} {path} is empty", EXIT_USAGE)
    return text


def web_token(args: argparse.Namespace) -> str | None:
    path = args.web_token_file or os.environ.get(ENV_TOKEN_FILE, "").strip()
    if path:
        return _read_secret(path, "--web-token-file")
    return os.environ.get(ENV_TOKEN, "").strip() or None


def tls_context(cert: str | None, key: str | None) -> ssl.SSLContext | None:
    if not cert and not key:
        return None
    if not (cert and key):
        raise CliError("--web-tls-cert and --web-tls-key go together", EXIT_USAGE)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as e:
        raise CliError(f"cannot load --web-tls-cert/--web-tls-key: {e}", EXIT_USAGE) from None
    return context


def options(args: argparse.Namespace) -> WebOptions:
    """The gateway's options from the command line, every refusal a one-line CliError."""
    try:
        host, port = split_listen(args.listen)
        token = web_token(args)
        check_exposure(host, login=token is not None)
    except RefusedListen as e:
        raise CliError(str(e), EXIT_USAGE, reason="INSECURE_LISTEN" if "refusing" in str(e) else "INVALID_ARGUMENT") from None
    for name in ("refresh", "max_streams", "max_browsers", "max_log_streams", "browser_backlog", "write_timeout"):
        _positive(name.replace("_", "-"), getattr(args, name))
    service_token = _read_secret(args.token_file, "--token-file") if option(args, "token_file") else None
    timeout = option(args, "timeout", 30.0)
    _positive("timeout", timeout)
    connection = {"address": address(args), "timeout": timeout, "token": service_token, "tls_ca": option(args, "tls_ca"),
                  "tls_cert": option(args, "tls_cert"), "tls_key": option(args, "tls_key")}
    return WebOptions(
        listen_host=host, listen_port=port, web_token=token, ssl_context=tls_context(args.web_tls_cert, args.web_tls_key),
        allowed_hosts=frozenset(h.strip().lower() for h in args.allow_host if h.strip()), refresh=args.refresh,
        max_streams=args.max_streams, max_browsers=args.max_browsers, max_log_streams=args.max_log_streams,
        browser_backlog=args.browser_backlog, write_timeout=args.write_timeout, connection=connection,
    )


def run(args: argparse.Namespace, out: TextIO) -> int:
    o = options(args)
    if o.web_token and not o.ssl_context and not is_loopback(o.listen_host):
        print("serverprep web: warning: the login token and session cookie travel unencrypted; give --web-tls-cert/"
              "--web-tls-key or put a TLS proxy in front", file=sys.stderr)
    return asyncio.run(_serve(o, out))


async def _serve(o: WebOptions, out: TextIO) -> int:
    try:
        from serverprep.clients.web.app import Gateway
    except ImportError as e:
        raise CliError(f"serverprep web needs the web extra ({e.name} is missing): pip install 'serverprep-client[web]'") from None
    gateway = Gateway(o)
    try:
        await gateway.start()
    except OSError as e:
        await gateway.stop()
        raise CliError(f"cannot listen on {o.listen_host}:{o.listen_port}: {e.strerror or e}") from None
    except Exception:
        await gateway.stop()
        raise
    print(f"serverprep web: {gateway.url} (service {o.connection['address']})", file=out, flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await gateway.stop()
    return EXIT_OK
