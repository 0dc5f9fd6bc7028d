"""Clients of the serverprep service: a typed Python client and the ``serverprep`` CLI."""

from serverprep.clients.client import Client, ServerprepClientError

__all__ = ["Client", "ServerprepClientError"]
