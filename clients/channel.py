"""What both clients share about reaching the service: the address, the token, TLS, call metadata."""

from __future__ import annotations

import os
from dataclasses import dataclass

import grpc

from serverprep.clients.defaults import DEFAULT_ADDRESS, ENV_ADDRESS, ENV_TLS_CA, ENV_TLS_CERT, ENV_TLS_KEY, ENV_TOKEN
from serverprep.clients.errors import InvalidArgumentError

#: Attempts of a log stream cut off as too slow, or by a restarting service, before giving up.
STREAM_RESUME_ATTEMPTS = 5


def _env(name: str) -> str | None:
    """An environment variable, with an empty or blank value counting as unset."""
    value = os.environ.get(name, "").strip()
    return value or None


def resolve_address(address: str | None) -> str:
    """``address``, else $SERVERPREP_ADDRESS, else 127.0.0.1:50051; blank values count as unset."""
    return (address or "").strip() or _env(ENV_ADDRESS) or DEFAULT_ADDRESS


def _read(kind: str, path: str | None) -> bytes | None:
    if not path:
        return None
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise InvalidArgumentError.local({kind: f"cannot read {path}: {e.strerror}"}) from None


@dataclass(frozen=True)
class Connection:
    """Where the service is and how to talk to it, resolved once from arguments and the environment."""

    address: str
    token: str
    credentials: grpc.ChannelCredentials | None

    @classmethod
    def resolve(
        cls, address: str | None, token: str | None, tls_ca: str | None, tls_cert: str | None, tls_key: str | None
    ) -> Connection:
        if token is not None and not isinstance(token, str):
            raise InvalidArgumentError.local({"token": f"must be a string, not {type(token).__name__}"})
        token = (token if token is not None else _env(ENV_TOKEN) or "").strip()
        if any(c in token for c in "\r\n\0"):
            raise InvalidArgumentError.local({"token": "must be one line"})
        tls_ca, tls_cert, tls_key = tls_ca or _env(ENV_TLS_CA), tls_cert or _env(ENV_TLS_CERT), tls_key or _env(ENV_TLS_KEY)
        if bool(tls_cert) != bool(tls_key):
            raise InvalidArgumentError.local({"tls_key" if tls_cert else "tls_cert": "a client certificate and its key go together"})
        credentials = None
        if tls_ca or tls_cert:
            credentials = grpc.ssl_channel_credentials(
                root_certificates=_read("tls_ca", tls_ca), private_key=_read("tls_key", tls_key),
                certificate_chain=_read("tls_cert", tls_cert),
            )
        return cls(resolve_address(address), token, credentials)

    @property
    def metadata(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.token}"),) if self.token else ()
