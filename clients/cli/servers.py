"""``serverprep servers``: register, change, list, show and remove servers."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, TextIO

from serverprep.clients.cli import render
from serverprep.clients.cli.common import EXIT_OK, EXIT_USAGE, CliError, print_json, server_argument, wants_json
from serverprep.clients.cli.terminal import visible
from serverprep.clients.client import Client

#: The first word of an OpenSSH public key (plain, security-key and certificate types).
KEY_TYPE_PREFIXES = ("ssh-", "ecdsa-sha2-", "sk-ssh-", "sk-ecdsa-sha2-", "rsa-sha2-")


def _is_key_type(word: str) -> bool:
    return word.startswith(KEY_TYPE_PREFIXES)


def host_key_from(text: str) -> tuple[str, str]:
    """``(key, host field)`` from what ``--host-key`` got: ``TYPE BASE64`` or an ``ssh-keyscan`` / known_hosts line.

    ``host ssh-ed25519 AAAA...`` and ``[host]:2222 ssh-ed25519 AAAA... comment`` give
    ``ssh-ed25519 AAAA...``; comment lines (``# host:22 SSH-2.0-...``) are ignored; several keys
    are refused, since only one can be pinned.
    """
    keys = []
    for line in text.splitlines():
        words = line.split()
        if not words or words[0].startswith("#"):
            continue
        if words[0].startswith("@"):
            raise CliError(f"--host-key: a {words[0]} line is not a host key; pass the server's own key", EXIT_USAGE)
        host = ""
        if not _is_key_type(words[0]) and len(words) >= 3 and _is_key_type(words[1]):
            host, words = words[0], words[1:]
        if len(words) < 2 or not _is_key_type(words[0]):
            raise CliError(f"--host-key: expected 'TYPE BASE64' or an ssh-keyscan line ('HOST TYPE BASE64'), got {line[:80]!r}",
                           EXIT_USAGE)
        keys.append((f"{words[0]} {words[1]}", host))
    if not keys:
        raise CliError("--host-key is empty: pass 'TYPE BASE64', e.g. from ssh-keyscan -t ed25519 HOST", EXIT_USAGE)
    if len(keys) > 1:
        types = ", ".join(k.split()[0] for k, _ in keys)
        raise CliError(f"--host-key got {len(keys)} keys ({types}); one is pinned: choose one, e.g. ssh-keyscan -t ed25519 HOST",
                       EXIT_USAGE)
    return keys[0]


def _host_of(field: str) -> str:
    """``[host]:port`` or ``host`` (known_hosts' spelling), without brackets and port."""
    if field.startswith("[") and "]" in field:
        return field[1 : field.index("]")]
    return field


def _checked_host_key(args: argparse.Namespace) -> str:
    if not args.host_key:
        return ""
    key, field = host_key_from(args.host_key)
    host = getattr(args, "host", None)
    names = [_host_of(n) for n in field.split(",")] if field and not field.startswith("|") else []
    if names and host and host not in names:
        print(f"serverprep: warning: the --host-key line is for {field}, not for --host {host}", file=sys.stderr)
    return key


def _read_secret_lines(args: argparse.Namespace) -> tuple[str, str]:
    wanted = [name for name in ("password", "sudo_password") if getattr(args, f"{name}_stdin")]
    if not wanted:
        return "", ""
    if sys.stdin.isatty():
        import getpass

        values = {n: getpass.getpass(f"{n.replace('_', ' ')}: ") for n in wanted}
    else:
        lines = sys.stdin.read().splitlines()
        if len(lines) < len(wanted):
            raise CliError(f"expected {len(wanted)} line(s) on standard input: {', '.join(wanted)}", EXIT_USAGE)
        values = dict(zip(wanted, lines, strict=False))
    return values.get("password", ""), values.get("sudo_password", "")


def _key_file(path: str) -> str:
    try:
        return Path(path).expanduser().read_text()
    except (OSError, UnicodeDecodeError) as e:
        why = e.strerror if isinstance(e, OSError) else "not a text file"
        raise CliError(f"cannot read key file {path}: {why}", EXIT_USAGE) from None


def _show(server: Any, args: argparse.Namespace, out: TextIO, verb: str) -> int:
    if wants_json(args):
        print_json(render.server_json(server), out)
    else:
        print((f"{verb} " if verb else "") + render.server_line(server).rstrip(), file=out)
    return EXIT_OK


def servers_add(client: Client, args: argparse.Namespace, out: TextIO) -> int:
    host_key = _checked_host_key(args)
    key = _key_file(args.key_file) if args.key_file else ""
    password, sudo_password = _read_secret_lines(args)
    server = client.create_server(
        args.name, host=args.host, port=args.port, user=args.user, private_key=key, password=password,
        sudo_password=sudo_password, host_key=host_key, accept_new_host_key=args.accept_new_host_key,
    )
    return _show(server, args, out, "added")


def servers_update(client: Client, args: argparse.Namespace, out: TextIO) -> int:
    changes: dict[str, Any] = {name: getattr(args, name) for name in ("host", "port", "user") if getattr(args, name) is not None}
    if args.host_key is not None:
        changes["host_key"] = _checked_host_key(args)
    if args.accept_new_host_key:
        changes["accept_new_host_key"] = True
    if args.key_file:
        changes["private_key"] = _key_file(args.key_file)
    password, sudo_password = _read_secret_lines(args)
    if args.password_stdin:
        changes["password"] = password
    if args.sudo_password_stdin:
        changes["sudo_password"] = sudo_password
    if not changes:
        raise CliError("nothing to change: give --host, --port, --user, --key-file, --password-stdin, "
                       "--sudo-password-stdin, --host-key or --accept-new-host-key", EXIT_USAGE)
    return _show(client.update_server(args.name, **changes), args, out, "updated")


def servers_list(client: Client, args: argparse.Namespace, out: TextIO) -> int:
    if wants_json(args):
        print_json([render.server_json(s) for s in client.list_servers()], out)
        return EXIT_OK
    for s in client.list_servers():
        print(visible(s.name) if args.names else render.server_line(s), file=out)
    return EXIT_OK


def servers_show(client: Client, args: argparse.Namespace, out: TextIO) -> int:
    return _show(client.get_server(args.name), args, out, "")


def servers_rm(client: Client, args: argparse.Namespace, out: TextIO) -> int:
    client.delete_server(args.name)
    if wants_json(args):
        print_json({"removed": args.name}, out)
    else:
        print(f"removed {args.name}", file=out)
    return EXIT_OK


ADD_EXAMPLES = """examples:
  serverprep servers add web1 --host 203.0.113.10 --user admin --key-file ~/.ssh/id_ed25519 \\
      --host-key "$(ssh-keyscan -t ed25519 203.0.113.10 2>/dev/null)"
  serverprep servers add web2 --host web2.example.com --port 2222 --user deploy \\
      --key-file deploy_key --accept-new-host-key
  printf '%s\\n' "$SUDO_PW" | serverprep servers add db1 --host 10.0.0.7 --user admin \\
      --key-file id_ed25519 --sudo-password-stdin --accept-new-host-key"""

UPDATE_EXAMPLES = """examples:
  serverprep servers update web1 --host 203.0.113.11
  serverprep servers update web1 --host-key "$(ssh-keyscan -t ed25519 203.0.113.11 2>/dev/null)"
  serverprep servers update web1 --accept-new-host-key      # after a reinstall: pin the next key seen
  printf '%s\\n' "$NEW_PW" | serverprep servers update web1 --sudo-password-stdin"""


def add_parsers(sub: Any, parents: list[argparse.ArgumentParser], bind: Any, make: Any) -> None:
    """``servers`` and its actions; ``make`` creates a parser with help, description and examples."""
    servers = make(sub, "servers", "register and inspect the servers to prepare",
                   "examples:\n  serverprep servers list\n  serverprep servers add web1 --host 203.0.113.10 --user admin "
                   "--key-file ~/.ssh/id_ed25519 --accept-new-host-key\n  serverprep servers rm web1", parents)
    ssub = servers.add_subparsers(dest="servers_command", required=True, metavar="ACTION", title="actions",
                                  help="what to do with servers")

    add = make(ssub, "add", "register a server", ADD_EXAMPLES, parents)
    add.add_argument("name", help="a name for the server (letters, digits, '.', '_', '-')")
    _connection_arguments(add, required=True)
    trust = add.add_mutually_exclusive_group(required=True)
    trust.add_argument("--host-key", metavar="KEY",
                       help="the server's host key: 'TYPE BASE64', or an ssh-keyscan line as it is ('HOST TYPE BASE64')")
    trust.add_argument("--accept-new-host-key", action="store_true",
                       help="trust the key seen on the first connection, then pin it")
    bind(add, servers_add)

    update = make(ssub, "update", "change a server's address, login or pinned host key", UPDATE_EXAMPLES, parents)
    server_argument(update, "the server to change")
    _connection_arguments(update, required=False)
    trust = update.add_mutually_exclusive_group()
    trust.add_argument("--host-key", metavar="KEY", help="pin this key: 'TYPE BASE64', or an ssh-keyscan line as it is")
    trust.add_argument("--accept-new-host-key", action="store_true", help="forget the pinned key; pin the next one seen")
    bind(update, servers_update)

    lst = make(ssub, "list", "list the registered servers",
               "examples:\n  serverprep servers list\n  serverprep servers list --names | xargs -n1 serverprep status\n"
               "  serverprep servers list -o json | jq -r '.[] | select(.has_sudo_password) | .name'", parents)
    lst.add_argument("--names", action="store_true", help="print only the names, one per line")
    bind(lst, servers_list)
    for name, text, handler, example in (
        ("show", "show a server (never its credentials)", servers_show, "serverprep servers show web1 -o json"),
        ("rm", "remove a server and its history", servers_rm, "serverprep servers rm web1"),
    ):
        p = make(ssub, name, text, f"examples:\n  {example}", parents)
        server_argument(p, "the server's name")
        bind(p, handler)


def _connection_arguments(p: argparse.ArgumentParser, *, required: bool) -> None:
    p.add_argument("--host", required=required, help="host name or IP address the service reaches the server's SSH at")
    p.add_argument("--port", type=int, default=22 if required else None, help="SSH port (default 22)")
    p.add_argument("--user", required=required, help="the SSH user; needs root or sudo, and gets Docker access")
    p.add_argument("--key-file", metavar="FILE", help="private key file to log in with (stored encrypted in the service)")
    p.add_argument("--password-stdin", action="store_true", help="read the SSH password from standard input")
    p.add_argument("--sudo-password-stdin", action="store_true",
                   help="read the sudo password from standard input (the line after the SSH password)")
