"""Cache warm-up after an IMAP login: the newest messages of the listed mailboxes are read into the
local cache in the background, at most once per account and ``warmup_every``.

The login hook only queues the account (a bounded in-memory channel; a full queue drops the request,
the warm-up is an optimisation); the ``s3-warmup`` service of each worker process reads the queue.
"""

from __future__ import annotations

import time
from typing import Any

import anyio
import structlog
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from sora_kernel.api import NotFound, TemporaryStoreError

from .backend import S3BlobStore

log = structlog.get_logger("sora.s3")


class Warmup:
    """Queue of accounts to warm and the service that warms them."""

    def __init__(self, store: S3BlobStore) -> None:
        self.store = store
        self.settings = store.settings
        self._send: MemoryObjectSendStream[int]
        self._receive: MemoryObjectReceiveStream[int]
        self._send, self._receive = anyio.create_memory_object_stream[int](64)
        self._last: dict[int, float] = {}

    def request(self, account_id: int) -> None:
        """Queue an account (called from the login hook; never blocks)."""
        last = self._last.get(account_id)
        if last is not None and time.monotonic() - last < self.settings.warmup_every:
            return
        self._last[account_id] = time.monotonic()
        try:
            self._send.send_nowait(account_id)
        except anyio.WouldBlock:
            log.info("cache warm-up queue full; skipped", account=account_id)

    async def run(self, *, task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
        """Warm queued accounts until cancelled."""
        task_status.started()
        async for account_id in self._receive:
            try:
                await self.warm(account_id)
            except Exception:
                log.exception("cache warm-up failed", account=account_id)

    async def warm(self, account_id: int) -> int:
        """Read the newest ``warmup_messages`` of each warm-up mailbox; returns bodies read."""
        store = self.store.kernel.store
        count = 0
        for name in self.settings.warmup_mailboxes:
            mailbox = await store.get_mailbox(account_id, name)
            if mailbox is None:
                continue
            uids, _ = await store.message_uids(mailbox.id)
            newest = uids[-self.settings.warmup_messages:]
            if not newest:
                continue
            rows = await store.fetch(mailbox.id, [(newest[0], newest[-1])])
            for row in rows:
                if row.expunged:
                    continue
                try:
                    await self.store.get(account_id, row.content_hash)
                    count += 1
                except (NotFound, TemporaryStoreError) as exc:
                    log.info("cache warm-up stopped", account=account_id, error=str(exc))
                    return count
        log.info("cache warmed", account=account_id, bodies=count)
        return count
