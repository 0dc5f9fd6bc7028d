"""What every command shares: exit codes, errors, and the options that say how to reach the service."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from serverprep.clients.client import Client
from serverprep.clients.defaults import DEFAULT_ADDRESS, ENV_ADDRESS

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class CliError(Exception):
    """A refusal or failure to report on stderr, with the exit status to end with."""

    def __init__(self, message: str, code: int = EXIT_FAILED):
        super().__init__(message)
        self.code = code


def client_options(*, in_subcommand: bool) -> argparse.ArgumentParser:
    """The options of every command that talks to the service, accepted before or after the command.

    A subcommand's copy leaves unset flags alone, so that a flag before the command still counts.
    """
    parent = argparse.ArgumentParser(add_help=False, argument_default=argparse.SUPPRESS if in_subcommand else None)
    group = parent.add_argument_group("connection")
    group.add_argument("--address",
                       help=f"service address host:port (default: ${ENV_ADDRESS} or {DEFAULT_ADDRESS})")
    group.add_argument("--token-file", help="file with the bearer token (default: $SERVERPREP_TOKEN)")
    group.add_argument("--tls-ca", help="CA certificate (PEM) to verify the service with (default: $SERVERPREP_TLS_CA)")
    group.add_argument("--tls-cert", help="client certificate for mutual TLS (default: $SERVERPREP_TLS_CERT)")
    group.add_argument("--tls-key", help="client key for mutual TLS (default: $SERVERPREP_TLS_KEY)")
    return parent


def address(args: argparse.Namespace) -> str:
    return args.address or os.environ.get(ENV_ADDRESS) or DEFAULT_ADDRESS


def connect(args: argparse.Namespace) -> Client:
    token = None
    if args.token_file:
        try:
            token = Path(args.token_file).read_text().strip()
        except OSError as e:
            raise CliError(f"cannot read token file {args.token_file}: {e.strerror}", EXIT_USAGE) from None
    try:
        return Client(address(args), token=token, tls_ca=args.tls_ca, tls_cert=args.tls_cert, tls_key=args.tls_key)
    except OSError as e:
        raise CliError(f"cannot read TLS file: {e.filename}: {e.strerror}", EXIT_USAGE) from None
