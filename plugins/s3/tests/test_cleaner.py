"""The S3 cleaner: unreferenced blobs go, referenced and restorable ones stay, a concurrent delivery of
the same bytes never loses its body."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anyio
import pytest
from s3_support import ADDRESS, MotoS3, message, uploaded_all, wait_for

from sora_kernel.api import TemporaryStoreError
from sora_kernel.testing import SoraTestServer


class Env:
    """A server with alice's INBOX at hand."""

    def __init__(self, server: SoraTestServer, moto: MotoS3) -> None:
        self.server = server
        self.moto = moto
        self.store = server.kernel.store
        self.blobs = server.kernel.blobs
        self.account = server.call(self.store.find_account, ADDRESS)
        self.inbox = server.call(self.store.get_mailbox, self.account.id, "INBOX")
        from sora_plugin_s3.worker import Cleaner

        self.cleaner = Cleaner(self.blobs)

    def append(self, raw: bytes) -> Any:
        return self.server.call(lambda: self.store.append(self.account.id, self.inbox.id, raw, normalized=True))

    def expunge(self, uid: int) -> None:
        self.server.call(lambda: self.store.expunge(self.account.id, self.inbox.id, [(uid, uid)],
                                                    only_deleted=False))

    def purge(self) -> int:
        """The kernel's cleaner: rows expunged before now go (it asks the backend to delete their blobs)."""
        return int(self.server.call(self.store.purge_expunged, 0.0))

    def sweep(self, fence: float) -> int:
        return int(self.server.call(lambda: self.cleaner.sweep(fence=fence)))

    def key(self, content_hash: bytes) -> str:
        return f"{self.account.id}/{content_hash.hex()}"

    def keys(self) -> list[str]:
        return self.moto.keys(self.blobs.settings.bucket)

    def row(self, content_hash: bytes) -> Any:
        return self.server.call(self.store.uploads.lookup, self.account.id, content_hash)


def _env(s3_server: Callable[..., SoraTestServer], moto: MotoS3) -> Env:
    return Env(s3_server(), moto)


def test_an_unreferenced_blob_is_deleted_after_the_fence(s3_server: Callable[..., SoraTestServer],
                                                         moto_s3: MotoS3) -> None:
    env = _env(s3_server, moto_s3)
    result = env.append(message("gone"))
    uploaded_all(env.server)
    env.expunge(result.uid)
    assert env.sweep(fence=0) == 0  # expunged but restorable: kept
    assert env.purge() == 1  # the kernel's cleaner asks the backend: stored just now, inside the fence
    assert env.keys() == [env.key(result.content_hash)]
    assert env.sweep(fence=3600) == 0
    assert env.sweep(fence=0) == 1
    assert env.keys() == []
    assert env.row(result.content_hash) is None
    assert env.blobs.cache.stats()["entries"] == 0


def test_a_blob_another_message_references_stays(s3_server: Callable[..., SoraTestServer],
                                                 moto_s3: MotoS3) -> None:
    env = _env(s3_server, moto_s3)
    raw = message("twice")
    first = env.append(raw)
    env.append(raw)
    uploaded_all(env.server)
    env.expunge(first.uid)
    env.purge()
    assert env.sweep(fence=0) == 0
    assert env.keys() == [env.key(first.content_hash)]
    env.blobs.cache.purge()
    assert env.server.call(env.store.read_message, env.account.id, first.content_hash) == raw


def test_storing_the_bytes_again_inside_the_fence_keeps_the_blob(s3_server: Callable[..., SoraTestServer],
                                                                 moto_s3: MotoS3) -> None:
    """The window between a delivery's put and its message row: the touch protects it."""
    env = _env(s3_server, moto_s3)
    raw = message("again")
    first = env.append(raw)
    uploaded_all(env.server)
    env.expunge(first.uid)
    env.purge()
    # a new delivery of the same bytes has stored its body but not yet committed its message row
    env.server.call(env.blobs.put, env.account.id, first.content_hash, raw)
    assert env.sweep(fence=60) == 0
    second = env.append(raw)
    assert env.sweep(fence=0) == 0  # referenced again
    env.blobs.cache.purge()
    assert env.server.call(env.store.read_message, env.account.id, second.content_hash) == raw


def test_a_delivery_racing_the_cleaner_for_the_same_bytes_keeps_its_body(
        s3_server: Callable[..., SoraTestServer], moto_s3: MotoS3) -> None:
    """The cleaner holds the row lock while it deletes the object; a delivery of the same bytes arriving
    then waits, finds the row gone, and stages a fresh copy that is uploaded afterwards."""
    env = _env(s3_server, moto_s3)
    raw = message("race")
    first = env.append(raw)
    uploaded_all(env.server)
    env.expunge(first.uid)
    env.purge()
    uploads = env.store.uploads

    async def race() -> dict[str, Any]:
        entered = anyio.Event()
        outcome: dict[str, Any] = {}

        async def delete_when_the_delivery_waits(blob: Any) -> None:
            entered.set()
            with anyio.fail_after(10):
                while await uploads.waiting_on_locks() == 0:
                    await anyio.sleep(0.005)
            await env.blobs.delete_object(blob)

        async def sweep() -> None:
            outcome["deleted"] = await uploads.delete_unreferenced(delete_when_the_delivery_waits, fence=0)

        async def deliver() -> None:
            await entered.wait()
            outcome["append"] = await env.store.append(env.account.id, env.inbox.id, raw, normalized=True)

        async with anyio.create_task_group() as tg:
            tg.start_soon(sweep)
            tg.start_soon(deliver)
        return outcome

    outcome = env.server.call(race)
    assert outcome["deleted"] == 1
    assert outcome["append"].content_hash == first.content_hash
    assert env.row(first.content_hash).state in ("pending", "uploaded")
    uploaded_all(env.server)
    assert env.keys() == [env.key(first.content_hash)]
    env.blobs.cache.purge()
    assert env.server.call(env.store.read_message, env.account.id, first.content_hash) == raw


def test_the_cleaner_waits_while_s3_is_down(s3_server: Callable[..., SoraTestServer], moto_s3: MotoS3) -> None:
    env = _env(s3_server, moto_s3)
    result = env.append(message("down"))
    uploaded_all(env.server)
    env.expunge(result.uid)
    env.purge()
    moto_s3.stop()
    with pytest.raises(TemporaryStoreError, match="S3 delete failed"):
        env.sweep(fence=0)
    assert env.row(result.content_hash) is not None
    moto_s3.start()
    wait_for(lambda: env.sweep(fence=0) == 1, what="the cleaner to delete after S3 returns")
    assert env.keys() == []
