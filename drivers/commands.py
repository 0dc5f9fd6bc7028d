"""Remote commands as data, and the one place where they become shell text."""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field


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

    def render(self) -> str:
        words = [shlex.quote(a) for a in self.argv]
        if self.env:
            assigns = [shlex.quote(f"{k}={v}") for k, v in sorted(self.env.items())]
            words = ["env", *assigns, *words]
        return " ".join(words)

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
    that came from a user or a server is quoted once, here, and never spliced in.

    >>> Shell('id -nG "$1" | grep -qw docker', args=("alice",)).render()
    'sh -c \\'id -nG "$1" | grep -qw docker\\' sh alice'
    """

    script: str
    args: tuple[str, ...] = ()
    description: str = ""
    env: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "args", tuple(self.args))

    def render(self) -> str:
        return Command(("sh", "-c", self.script, "sh", *self.args), env=self.env).render()

    def display(self) -> str:
        return self.description or mask_credentials(self.render())


@dataclass(frozen=True)
class WriteFile:
    """Write ``content`` to ``path`` (mode ``mode``) atomically through a temporary file."""

    path: str
    content: str
    mode: str = "0644"

    def render(self) -> str:
        script = 'tmp="$1.serverprep.$$" && printf "%s" "$3" > "$tmp" && chmod "$2" "$tmp" && mv -f "$tmp" "$1"'
        return Shell(script, (self.path, self.mode, self.content)).render()

    def display(self) -> str:
        return f"write {self.path} (mode {self.mode}, {len(self.content.encode())} bytes)"


RemoteCommand = Command | Shell | WriteFile

