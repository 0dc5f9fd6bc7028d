"""Use cases of registered servers: create, read, list, update with a typed change, delete."""

from __future__ import annotations

from serverprep.service import validation as check
from serverprep.service.domain import Server, ServerChange, ServerSpec
from serverprep.service.store import Store


class Servers:
    def __init__(self, store: Store):
        self.store = store

    async def create(self, spec: ServerSpec) -> Server:
        return await self.store.create_server(spec)

    async def get(self, name: str) -> Server:
        """A server, with its newest preparation in brief."""
        return await self.store.get_server(name, latest=True)

    async def page(self, limit: int, after: str = "") -> list[Server]:
        return await self.store.list_servers(limit, after)

    async def update(self, name: str, change: ServerChange) -> Server:
        """Apply ``change``, keeping the rules a server's credentials obey after it.

        The key must still open with its passphrase, and the server keeps a key or a password.
        """
        current = await self.store.get_server(name)
        v = check.Violations()
        key = current.secrets.private_key if change.private_key is None else change.private_key
        passphrase = current.secrets.private_key_passphrase if change.private_key_passphrase is None else change.private_key_passphrase
        if change.private_key is not None or change.private_key_passphrase is not None:
            check.private_key(v, "credentials.private_key", key, passphrase)
        password = current.secrets.password if change.password is None else change.password
        if not key and not password:
            v.add("credentials", "the server would have neither a private key nor a password")
        v.raise_if_any()
        return await self.store.update_server(name, change)

    async def delete(self, name: str) -> None:
        await self.store.delete_server(name)
