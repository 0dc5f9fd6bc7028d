"""Parser for os-release(5) files, pure and forgiving in the ways the spec allows."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

_ASSIGNMENT = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=(.*)$")


def parse_os_release(text: str) -> dict[str, str]:
    """Return the variables of an os-release file.

    Values may be bare, double-quoted (with backslash escapes), single-quoted, or a
    mix; comments and blank lines are ignored; malformed lines are skipped, as
    systemd does, rather than failing the whole file.

    >>> parse_os_release('ID=ubuntu\\nPRETTY_NAME="Ubuntu 24.04.1 LTS"\\n# c\\n')
    {'ID': 'ubuntu', 'PRETTY_NAME': 'Ubuntu 24.04.1 LTS'}
    """
    values: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = _ASSIGNMENT.match(line)
        if not match:
            continue
        key, value = match.groups()
        values[key] = _unquote(value)
    return values


def _unquote(value: str) -> str:
    """Shell-like value: "..." (escapes for $ ` " \\), '...' literal, bare words; # starts a comment."""
    out: list[str] = []
    i, n = 0, len(value)
    while i < n:
        ch = value[i]
        if ch == '"':
            i += 1
            while i < n and value[i] != '"':
                if value[i] == "\\" and i + 1 < n and value[i + 1] in '$`"\\':
                    i += 1
                out.append(value[i])
                i += 1
            i += 1  # closing quote, or past the end when unbalanced
        elif ch == "'":
            end = value.find("'", i + 1)
            end = n if end < 0 else end
            out.append(value[i + 1 : end])
            i = end + 1
        elif ch == "\\" and i + 1 < n:
            out.append(value[i + 1])
            i += 2
        elif ch.isspace():
            rest = value[i:].lstrip()
            if not rest or rest.startswith("#"):
                break
            out.append(" ")
            i = n - len(rest)
        elif ch == "#" and not out:
            break
        else:
            out.append(ch)
            i += 1
    return "".join(out)


@dataclass(frozen=True)
class OsRelease:
    """The identifying fields of /etc/os-release that drivers decide on."""

    id: str
    id_like: tuple[str, ...] = ()
    version_id: str = ""
    version_codename: str = ""
    ubuntu_codename: str = ""
    pretty_name: str = ""
    name: str = ""
    fields: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_text(cls, text: str) -> OsRelease:
        return cls.from_fields(parse_os_release(text))

    @classmethod
    def from_fields(cls, fields: Mapping[str, str]) -> OsRelease:
        return cls(
            # The spec: ID defaults to "linux"; IDs are lower case.
            id=fields.get("ID", "linux").strip().lower() or "linux",
            id_like=tuple(fields.get("ID_LIKE", "").lower().split()),
            version_id=fields.get("VERSION_ID", "").strip(),
            version_codename=fields.get("VERSION_CODENAME", "").strip().lower(),
            ubuntu_codename=fields.get("UBUNTU_CODENAME", "").strip().lower(),
            pretty_name=fields.get("PRETTY_NAME", "").strip(),
            name=fields.get("NAME", "").strip(),
            fields=dict(fields),
        )

    @property
    def family(self) -> tuple[str, ...]:
        """ID followed by ID_LIKE: the most specific identity first."""
        return (self.id, *self.id_like)

    @property
    def version_major(self) -> int | None:
        head = self.version_id.split(".", 1)[0]
        return int(head) if head.isdigit() else None

    def describe(self) -> str:
        return self.pretty_name or f"{self.name or self.id} {self.version_id}".strip()
