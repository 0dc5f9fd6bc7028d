"""Remote commands as data, and the one place where they become shell text."""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field

#: Secret text → the name of the shell variable that holds it on the server. When commands are
#: rendered with such references, a secret never appears in the script: the script reads it from
#: standard input, and only environment variables of the command that needs it carry it.
SecretRefs = Mapping[str, str]
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def quote(word: str, refs: SecretRefs | None = None) -> str:
    """``word`` as one shell word; secrets in it become references to their variables."""
    for value, name in sorted((refs or {}).items(), key=lambda item: -len(item[0])):
        if value and value in word:
            return f'"${{{name}}}"'.join(quote(part, refs) for part in word.split(value))
    return shlex.quote(word)


def _holds_secret(text: str, refs: SecretRefs | None) -> bool:
    return any(value and value in text for value in (refs or {}))


@dataclass(frozen=True)
class Command:
    """One program run with arguments (never parsed by a shell), with optional environment.

    >>> Command(("apt-get", "install", "-y", "docker.io"), env={"DEBIAN_FRONTEND": "noninteractive"}).render()
    'env DEBIAN_FRONTEND=noninteractive apt-get install -y docker.io'
    """

    argv: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.argv:
            raise ValueError("a command needs a program")
        object.__setattr__(self, "argv", tuple(self.argv))

    def render(self, refs: SecretRefs | None = None) -> str:
        """Shell text that runs this command. With ``refs``, environment values holding a secret
        are set by the shell (``NAME="$REF" program``, in no process's arguments) and a secret
        in the arguments is refused: arguments are visible to every user of the server."""
        for arg in self.argv:
            if _holds_secret(arg, refs):
                raise ValueError(f"{self.argv[0]}: a secret would be in a command line; pass it in env")
        words = [shlex.quote(a) for a in self.argv]
        plain = {k: v for k, v in self.env.items() if not _holds_secret(v, refs)}
        if plain:
            words = ["env", *(shlex.quote(f"{k}={v}") for k, v in sorted(plain.items())), *words]
        hidden = [f"{k}={quote(v, refs)}" for k, v in sorted(self.env.items()) if k not in plain]
        for name, _ in sorted(self.env.items()):
            if not _ENV_NAME.fullmatch(name):
                raise ValueError(f"{name!r} is not an environment variable name")
        return " ".join([*hidden, *words])

    def display(self) -> str:
        """Like render(), with credentials in URLs (proxies) masked: for logs."""
        return mask_credentials(self.render())


# scheme://user:password@ → scheme://***@
_URL_CREDENTIALS = re.compile(r"([a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s']+@")


def mask_credentials(text: str) -> str:
    """Hide the user:password part of every URL in ``text``."""
    return _URL_CREDENTIALS.sub(r"\1***@", text)


@dataclass(frozen=True)
class Shell:
    """A fixed shell snippet written by a driver; every variable part goes in ``args``.

    ``args`` become the snippet's positional parameters (``"$1"``, ``"$@"``), so text
    that came from a user or a server is quoted once, here, and never spliced in. It runs in a
    subshell of the step's shell (its variables, ``cd`` and ``exit`` stay inside; ``$0`` is not
    its own): a fork, not a new shell program to load, for every check and snippet.

    >>> Shell('id -nG "$1" | grep -qw docker', args=("alice",)).render()
    '(set -- alice; id -nG "$1" | grep -qw docker\\n)'
    """

    script: str
    args: tuple[str, ...] = ()
    description: str = ""
    env: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "args", tuple(self.args))

    def render(self, refs: SecretRefs | None = None) -> str:
        """Shell text that runs the snippet. The script that holds it is a command line on the
        server (``sh -c``), so a secret may be in ``env`` (set from its variable), never in ``args``."""
        for arg in self.args:
            if _holds_secret(arg, refs):
                raise ValueError("a shell snippet's argument holds a secret, which would be in a command line; pass it in env")
        parts = []
        for name, value in sorted(self.env.items()):
            if not _ENV_NAME.fullmatch(name):
                raise ValueError(f"{name!r} is not an environment variable name")
            parts.append(f"export {name}={quote(value, refs)}")
        if self.args:
            parts.append(" ".join(["set --", *(shlex.quote(a) for a in self.args)]))
        # The newline ends a comment on the snippet's last line before the subshell closes.
        return "(" + "; ".join([*parts, self.script]) + "\n)"

    def display(self) -> str:
        return self.description or mask_credentials(self.render())


@dataclass(frozen=True)
class WriteFile:
    """Write ``content`` to ``path`` (mode ``mode``) atomically through a temporary file."""

    path: str
    content: str
    mode: str = "0644"

    def render(self, refs: SecretRefs | None = None) -> str:
        script = 'tmp="$1.serverprep.$$" && printf "%s" "$3" > "$tmp" && chmod "$2" "$tmp" && mv -f "$tmp" "$1"'
        return Shell(script, (self.path, self.mode, self.content)).render(refs)

    def display(self) -> str:
        return f"write {self.path} (mode {self.mode}, {len(self.content.encode())} bytes)"


RemoteCommand = Command | Shell | WriteFile

