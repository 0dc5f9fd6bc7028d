"""``serverprep mcp``: serve the MCP tools over stdio (what agents launch) or streamable HTTP."""

from __future__ import annotations

import argparse
import asyncio
import os
from pathlib import Path
from typing import Any, TextIO

from serverprep.clients.cli.common import EXIT_OK, EXIT_USAGE, CliError, address, option

ENV_MCP_TOKEN = "SERVERPREP_MCP_TOKEN"
ENV_MCP_TOKEN_FILE = "SERVERPREP_MCP_TOKEN_FILE"

DESCRIPTION = """Serve serverprep's tools to AI agents over the Model Context Protocol: prepare_server,
get_preparation_status, get_preparation_logs, retry_preparation, cancel_preparation, list_servers and
plan_preparation. It is one more client of the service: the connection options and environment are the
CLI's (--address, --token-file, --tls-*, $SERVERPREP_ADDRESS, $SERVERPREP_TOKEN ...). Registering servers
is not among the tools on purpose (credentials do not belong in an agent's context): use
`serverprep servers add`. Needs the mcp extra: pip install 'serverprep-client[mcp]'."""

EXAMPLES = """examples:
  serverprep mcp                                   # stdio: the command an MCP client launches
  serverprep mcp --address 10.0.0.2:50051 --token-file ~/.config/serverprep/token --tls-ca ca.pem
  serverprep mcp --http 127.0.0.1:8765             # streamable HTTP at http://127.0.0.1:8765/mcp
  serverprep mcp --http 0.0.0.0:8765 --http-token-file mcp.token   # beyond loopback only with a token

A client configuration (Claude Desktop's claude_desktop_config.json and most MCP clients):
  {"mcpServers": {"serverprep": {"command": "serverprep", "args": ["mcp"],
                                 "env": {"SERVERPREP_ADDRESS": "127.0.0.1:50051"}}}}"""


def _read_secret(path: str, what: str) -> str:
    try:
        text = Path(path).read_text().strip()
    except OSError as e:
        raise CliError(f"cannot read {what} {path}: {e.strerror}", EXIT_USAGE) from None
    if not text:
        raise CliError(f"{what} {path} is empty", EXIT_USAGE)
    return text


def service_token(args: argparse.Namespace) -> str | None:
    """The bearer token for the serverprep service: --token-file, else $SERVERPREP_TOKEN (read by the client)."""
    path = option(args, "token_file")
    return _read_secret(path, "token file") if path else None


def http_token(args: argparse.Namespace) -> str | None:
    """The token MCP clients must send to the HTTP endpoint: its own, never the service's."""
    path = option(args, "http_token_file") or os.environ.get(ENV_MCP_TOKEN_FILE, "").strip()
    if path:
        return _read_secret(path, "MCP token file")
    token = os.environ.get(ENV_MCP_TOKEN, "").strip()
    return token or None


def _load_sdk() -> Any:
    """The tools module, or a clear refusal when the MCP SDK is missing or shadowed."""
    try:
        import mcp
    except ImportError:
        raise CliError("serverprep mcp needs the MCP SDK: pip install 'serverprep-client[mcp]'", EXIT_USAGE) from None
    if not hasattr(mcp, "ClientSession"):
        # Run from inside clients/, `import mcp` finds serverprep's own package folder before the SDK.
        raise CliError(f"'import mcp' found {mcp.__file__}, not the MCP SDK: run serverprep mcp from another directory",
                       EXIT_USAGE)
    from serverprep.clients.mcp import tools

    return tools


def run(args: argparse.Namespace, out: TextIO) -> int:
    tools = _load_sdk()
    from serverprep.clients.aio import AsyncClient
    from serverprep.clients.errors import InvalidArgumentError
    from serverprep.clients.mcp import streamable

    timeout = option(args, "timeout", 30.0)
    if timeout <= 0:
        raise CliError(f"--timeout must be more than 0 seconds, not {timeout:g}", EXIT_USAGE)
    token = service_token(args)
    listen = None
    mcp_token = None
    if args.http:
        mcp_token = http_token(args)
        try:
            listen = streamable.parse_listen(args.http)
            streamable.check_exposure(listen[0], mcp_token)
        except streamable.HttpRefused as e:
            raise CliError(str(e), EXIT_USAGE) from None
    elif option(args, "http_token_file"):
        raise CliError("--http-token-file goes with --http (stdio needs no token: the client launches this process)",
                       EXIT_USAGE)

    async def serve() -> None:
        try:
            client = AsyncClient(address(args), timeout=timeout, token=token, tls_ca=option(args, "tls_ca"),
                                 tls_cert=option(args, "tls_cert"), tls_key=option(args, "tls_key"))
        except InvalidArgumentError as e:
            raise CliError("; ".join(f"--{k.replace('_', '-')}: {v}" for k, v in e.violations.items()), EXIT_USAGE) from None
        async with client:
            server = tools.build_server(client)
            if listen is None:
                await server.run_stdio_async()
            else:
                await streamable.serve(server, listen[0], listen[1], mcp_token)

    asyncio.run(serve())
    return EXIT_OK


def add_commands(sub: Any, client_options: argparse.ArgumentParser) -> None:
    """Add ``serverprep mcp`` to the ``serverprep`` parser's subcommands."""
    from serverprep.clients.cli.commands import make

    p = make(sub, "mcp", "serve the tools to AI agents over the Model Context Protocol (stdio, or streamable HTTP)",
             EXAMPLES, [client_options])
    p.description = DESCRIPTION
    p.add_argument("--http", metavar="HOST:PORT",
                   help="serve streamable HTTP at http://HOST:PORT/mcp instead of stdio; a loopback address unless "
                        "--http-token-file is given")
    p.add_argument("--http-token-file", metavar="FILE",
                   help=f"a token of the MCP endpoint's own that HTTP clients must send as 'Authorization: Bearer "
                        f"<token>' (default: ${ENV_MCP_TOKEN_FILE}, or the token itself in ${ENV_MCP_TOKEN}); required "
                        "beyond loopback")
    p.set_defaults(run=run)
