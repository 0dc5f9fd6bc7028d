"""Checks of every field a caller sends; each failure names the field and says what is wrong."""

from __future__ import annotations

import base64
import ipaddress
import json
import math
import re

from serverprep.service import ssh
from serverprep.service.domain import DEFAULT_STEP_TIMEOUT, Options
from serverprep.service.errors import InvalidArgument

# Every pattern is used with fullmatch: "web1\n" is not a name ($ would match before the newline).
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")
HOST_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")
SCOPE_ID = re.compile(r"[A-Za-z0-9_.-]{1,15}")
USER = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,31}")
PREPARATION_ID = re.compile(r"[0-9a-f]{32}")
REQUEST_ID = re.compile(r"[\x21-\x7e]{1,128}")
DOCKER_VERSION = re.compile(r"[0-9]+(\.[0-9]+){0,2}")
REPOSITORY_URL = re.compile(r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~%+/-]*)?")
PROXY_URL = re.compile(r"(https?|socks5h?)://([^\s@/'\"\\]+@)?[A-Za-z0-9.-]+(:[0-9]{1,5})?/?")
NO_PROXY = re.compile(r"[A-Za-z0-9.,:*/_-]{0,1024}")
CHANNELS = ("stable", "test")
MAX_KEY = 16 * 1024
MAX_SECRET = 1024
MAX_PAGE = 500
DEFAULT_PAGE = 50
MAX_STEP_TIMEOUT = 86_400


class Violations:
    """Collects field violations, then raises them together."""

    def __init__(self) -> None:
        self.items: dict[str, str] = {}

    def add(self, field: str, why: str) -> None:
        self.items.setdefault(field, why)

    def raise_if_any(self) -> None:
        if self.items:
            raise InvalidArgument(self.items)


def server_name(v: Violations, field: str, value: str) -> None:
    if not value:
        v.add(field, "is required")
    elif not NAME.fullmatch(value):
        v.add(field, "must be 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit")


def host(v: Violations, field: str, value: str) -> None:
    if not value:
        v.add(field, "is required")
        return
    if len(value) > 253:
        v.add(field, "must be at most 253 characters")
        return
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        address = None
    if address is not None:
        scope = getattr(address, "scope_id", None)
        if scope is not None and not SCOPE_ID.fullmatch(scope):
            v.add(field, "an IPv6 scope id must be an interface name (letters, digits, '.', '_', '-'; at most 15)")
        return
    if not all(HOST_LABEL.fullmatch(label) for label in value.rstrip(".").split(".")):
        v.add(field, "must be a host name or an IP address")


def port(v: Violations, field: str, value: int) -> None:
    if not 0 <= value <= 65535:
        v.add(field, "must be between 1 and 65535 (0 means 22)")


def user(v: Violations, field: str, value: str) -> None:
    if not value:
        v.add(field, "is required")
    elif not USER.fullmatch(value):
        v.add(field, "must be a user name: letters, digits, '_', '.', '-', at most 32, not starting with '-' or a digit")


def secret(v: Violations, field: str, value: str, limit: int = MAX_SECRET) -> None:
    if len(value) > limit:
        v.add(field, f"must be at most {limit} characters")
    elif "\x00" in value:
        v.add(field, "must not contain NUL")


def sudo_password(v: Violations, field: str, value: str) -> None:
    secret(v, field, value)
    if "\n" in value or "\r" in value:
        v.add(field, "must be one line (sudo reads one line)")


def private_key(v: Violations, field: str, value: str, passphrase: str) -> None:
    if not value:
        return
    if len(value) > MAX_KEY:
        v.add(field, f"must be at most {MAX_KEY} characters")
        return
    try:
        ssh.check_private_key(value, passphrase)
    except ValueError as e:
        v.add(field, str(e))


def host_key(v: Violations, field: str, value: str) -> str:
    if len(value) > MAX_KEY:
        v.add(field, f"must be at most {MAX_KEY} characters")
        return ""
    try:
        return ssh.normalize_host_key(value)
    except ValueError as e:
        v.add(field, f"{e} (expected \"TYPE BASE64\", as in ssh-keyscan output)")
        return ""


def options(v: Violations, prefix: str, *, source: str | None, step_timeout: int, docker_version: str, channel: str,
            repository_url: str, http_proxy: str, https_proxy: str, no_proxy: str) -> Options:
    """Checked options of a preparation; ``source`` None means an unknown value was sent."""
    if source is None:
        v.add(f"{prefix}.docker_source", "must be DOCKER_SOURCE_OFFICIAL or DOCKER_SOURCE_DISTRO")
        source = "official"
    if step_timeout > MAX_STEP_TIMEOUT:
        v.add(f"{prefix}.step_timeout_seconds", f"must be at most {MAX_STEP_TIMEOUT}")
    if docker_version:
        if not DOCKER_VERSION.fullmatch(docker_version):
            v.add(f"{prefix}.docker_version", "must be a version such as 27.3.1 or 27.3")
        elif source != "official":
            v.add(f"{prefix}.docker_version", "applies to the official source only")
    if channel and channel not in CHANNELS:
        v.add(f"{prefix}.channel", f"must be one of {', '.join(CHANNELS)}")
    if repository_url and not REPOSITORY_URL.fullmatch(repository_url):
        v.add(f"{prefix}.repository_url", "must be an http(s) URL such as https://mirror.example/docker")
    for name, value in (("http_proxy", http_proxy), ("https_proxy", https_proxy)):
        if value and not PROXY_URL.fullmatch(value):
            v.add(f"{prefix}.{name}", "must be a proxy URL such as http://proxy.example:3128")
    if not NO_PROXY.fullmatch(no_proxy):
        v.add(f"{prefix}.no_proxy", "must be a comma-separated list of hosts, domains or networks")
    return Options(
        docker_source=source, step_timeout=float(step_timeout) if step_timeout else DEFAULT_STEP_TIMEOUT,
        docker_version=docker_version, channel=channel or "stable", repository_url=repository_url,
        http_proxy=http_proxy, https_proxy=https_proxy, no_proxy=no_proxy,
    )


def preparation_id(v: Violations, field: str, value: str) -> None:
    if value and not PREPARATION_ID.fullmatch(value):
        v.add(field, "must be a preparation id (32 hexadecimal digits)")


def request_id(v: Violations, field: str, value: str) -> None:
    if value and not REQUEST_ID.fullmatch(value):
        v.add(field, "must be 1-128 printable ASCII characters without spaces")


def page_size(v: Violations, field: str, value: int) -> int:
    if value < 0:
        v.add(field, "must not be negative")
        return DEFAULT_PAGE
    return min(value or DEFAULT_PAGE, MAX_PAGE)


def encode_token(data: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode()


MAX_TOKEN = 512


def decode_token(v: Violations, field: str, value: str) -> object:
    """A page token this service issued, decoded; anything else is a field violation, never a crash."""
    if not value:
        return None
    try:
        if len(value) > MAX_TOKEN:
            raise ValueError("too long")
        return json.loads(base64.urlsafe_b64decode(value.encode()), parse_constant=_no_constant)
    except (ValueError, UnicodeError, RecursionError, OverflowError, TypeError):
        v.add(field, "is not a page token this service issued")
        return None


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not allowed")


def server_token(v: Violations, field: str, value: str) -> str:
    """The server name a ListServers page token carries."""
    token = decode_token(v, field, value)
    if token is None:
        return ""
    if not isinstance(token, str) or not NAME.fullmatch(token):
        v.add(field, "is not a page token this service issued")
        return ""
    return token


def preparation_token(v: Violations, field: str, value: str) -> tuple[float, str] | None:
    """The (created_at, id) a ListPreparations page token carries."""
    token = decode_token(v, field, value)
    if token is None:
        return None
    try:
        raw, prep_id = token  # type: ignore[misc]
        if isinstance(raw, bool) or not isinstance(raw, (int, float)) or not isinstance(prep_id, str):
            raise ValueError
        created = float(raw)
        if not math.isfinite(created) or not PREPARATION_ID.fullmatch(prep_id):
            raise ValueError
    except (TypeError, ValueError, OverflowError):
        v.add(field, "is not a page token this service issued")
        return None
    return created, prep_id
