"""Hot-path contracts as ``typing.Protocol`` classes: what backends and connections provide."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol, runtime_checkable


@runtime_checkable
class BlobStore(Protocol):
    """Content-addressed message bodies, keyed by (account, BLAKE3 hash).

    ``put`` returns only once the bytes are durable; storing the same bytes twice keeps one blob.
    """

    name: str

    async def put(self, account_id: int, content_hash: bytes, data: bytes) -> None:
        """Store bytes durably (no-op when the blob already exists)."""
        ...

    async def get(self, account_id: int, content_hash: bytes) -> bytes:
        """The whole blob; raises NotFound when missing."""
        ...

    def stream(self, account_id: int, content_hash: bytes, chunk_size: int = 65536) -> AsyncIterator[bytes]:
        """The blob in chunks, without holding it all in memory."""
        ...

    async def exists(self, account_id: int, content_hash: bytes) -> bool:
        """Whether the blob is stored."""
        ...

    async def delete(self, account_id: int, content_hash: bytes) -> None:
        """Remove a blob (the caller checked nothing references it)."""
        ...

    async def check(self) -> tuple[bool, str]:
        """Health: (ok, detail)."""
        ...


class ConnectionInfo(Protocol):
    """What connection hooks see about a client connection."""

    id: str
    protocol: str
    remote_ip: str
    remote_port: int
    local_port: int
    tls: bool
    username: str
