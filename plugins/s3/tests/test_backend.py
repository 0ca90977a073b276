"""The s3 backend against moto's server: spool, upload, cache, cold reads, dedup, encryption, large bodies."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import blake3
import pytest
from s3_support import ADDRESS, MotoS3, counter, message, uploaded_all, wait_for

from sora_kernel.api import NotFound
from sora_kernel.testing import SoraTestServer


def _append(server: SoraTestServer, raw: bytes, address: str = ADDRESS) -> Any:
    store = server.kernel.store
    account = server.call(store.find_account, address)
    inbox = server.call(store.get_mailbox, account.id, "INBOX")
    return account.id, server.call(lambda: store.append(account.id, inbox.id, raw, normalized=True))


def _read(server: SoraTestServer, account_id: int, content_hash: bytes) -> bytes:
    return server.call(server.kernel.store.read_message, account_id, content_hash)


def test_a_delivery_is_spooled_then_uploaded_and_moved_into_the_cache(
        s3_server: Callable[..., SoraTestServer], moto_s3: MotoS3) -> None:
    server = s3_server()
    blobs = server.kernel.blobs
    raw = message("one")
    account_id, result = _append(server, raw)
    key = f"{account_id}/{result.content_hash.hex()}"
    uploaded_all(server)
    assert moto_s3.keys(blobs.settings.bucket) == [key]
    assert moto_s3.object(blobs.settings.bucket, key) == raw
    assert not blobs.spool_path(account_id, result.content_hash).exists()
    assert blobs.cache.stats()["entries"] == 1
    assert _read(server, account_id, result.content_hash) == raw
    assert counter(server, "sora_s3_reads_total", source="cache") == 1
    assert counter(server, "sora_s3_uploads_total", result="uploaded") == 1
    row = server.call(server.kernel.store.uploads.lookup, account_id, result.content_hash)
    assert (row.state, row.object_key, row.size) == ("uploaded", key, len(raw))


def test_a_cold_read_comes_from_s3_and_is_cached(s3_server: Callable[..., SoraTestServer]) -> None:
    server = s3_server()
    blobs = server.kernel.blobs
    raw = message("cold")
    account_id, result = _append(server, raw)
    uploaded_all(server)
    assert blobs.cache.purge() == 1
    assert _read(server, account_id, result.content_hash) == raw
    assert counter(server, "sora_s3_reads_total", source="s3") == 1
    assert counter(server, "sora_blob_cache_misses_total") >= 1
    assert _read(server, account_id, result.content_hash) == raw
    assert counter(server, "sora_s3_reads_total", source="cache") == 1
    assert counter(server, "sora_s3_reads_total", source="s3") == 1


def test_a_body_not_yet_uploaded_is_read_from_the_spool(s3_server: Callable[..., SoraTestServer],
                                                        moto_s3: MotoS3) -> None:
    server = s3_server()
    moto_s3.stop()
    raw = message("spooled")
    account_id, result = _append(server, raw)
    assert server.kernel.blobs.spool_path(account_id, result.content_hash).read_bytes() == raw
    assert _read(server, account_id, result.content_hash) == raw
    assert counter(server, "sora_s3_reads_total", source="spool") == 1
    moto_s3.start()
    uploaded_all(server)


def test_the_same_bytes_are_uploaded_once_per_account(s3_server: Callable[..., SoraTestServer],
                                                      moto_s3: MotoS3) -> None:
    server = s3_server()
    server.create_account("carol@example.com", "secret")
    raw = message("shared")
    alice, first = _append(server, raw)
    uploaded_all(server)
    _, second = _append(server, raw)
    carol, third = _append(server, raw, "carol@example.com")
    uploaded_all(server)
    assert first.content_hash == second.content_hash == third.content_hash
    assert moto_s3.keys(server.kernel.blobs.settings.bucket) == sorted(
        [f"{alice}/{first.content_hash.hex()}", f"{carol}/{first.content_hash.hex()}"])
    assert counter(server, "sora_s3_uploads_total", result="uploaded") == 2
    assert not server.kernel.blobs.spool_path(alice, first.content_hash).exists()


def test_encrypted_objects_are_nonce_ciphertext_tag_and_read_back(
        s3_server: Callable[..., SoraTestServer], moto_s3: MotoS3) -> None:
    key = bytes(range(32))
    server = s3_server(encrypt=True, encryption_key=key.hex())
    blobs = server.kernel.blobs
    raw = message("secret", size=200_000)
    account_id, result = _append(server, raw)
    assert result.content_hash == blake3.blake3(raw).digest()  # the hash is over the plaintext
    uploaded_all(server)
    stored = moto_s3.object(blobs.settings.bucket, f"{account_id}/{result.content_hash.hex()}")
    assert len(stored) == 12 + len(raw) + 16
    assert raw[:100] not in stored
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    assert AESGCM(key).decrypt(stored[:12], stored[12:], None) == raw
    blobs.cache.purge()
    assert _read(server, account_id, result.content_hash) == raw
    assert counter(server, "sora_s3_reads_total", source="s3") == 1


def test_encrypt_without_a_key_is_a_config_error(sora_server: Callable[..., SoraTestServer],
                                                   moto_s3: MotoS3) -> None:
    from s3_support import s3_config

    from sora_kernel.api import ConfigError

    with pytest.raises(ConfigError, match="encryption_key"):
        sora_server(plugins=["s3"], config=s3_config(moto_s3, encrypt=True))


def test_a_large_body_streams_from_s3_without_entering_the_cache(
        s3_server: Callable[..., SoraTestServer]) -> None:
    server = s3_server(cache_max_object="64KiB")
    blobs = server.kernel.blobs
    raw = message("large", size=300_000)
    account_id, result = _append(server, raw)
    uploaded_all(server)
    assert blobs.cache.stats()["entries"] == 0  # too large for the cache: the spool copy was dropped

    async def chunks() -> list[bytes]:
        return [chunk async for chunk in blobs.stream(account_id, result.content_hash, 65536)]

    parts = server.call(chunks)
    assert b"".join(parts) == raw
    assert max(len(p) for p in parts) <= 65536
    assert blobs.cache.stats()["entries"] == 0
    assert not list(blobs.cache_root.glob(".download-*"))  # the temporary file is gone
    assert counter(server, "sora_s3_reads_total", source="s3") == 1


def test_an_unknown_body_is_not_found(s3_server: Callable[..., SoraTestServer]) -> None:
    server = s3_server()
    with pytest.raises(NotFound):
        _read(server, 1, b"\x01" * 32)


def test_health_check_and_breaker_metrics(s3_server: Callable[..., SoraTestServer], moto_s3: MotoS3) -> None:
    server = s3_server()
    ok, detail = server.call(server.kernel.blobs.check)
    assert ok, detail
    moto_s3.stop()
    for _ in range(3):
        ok, detail = server.call(server.kernel.blobs.check)
        assert not ok
    assert counter(server, "sora_s3_breaker_state", operation="get") == 2
    assert "circuit open" in server.call(server.kernel.blobs.check)[1]
    moto_s3.start()
    wait_for(lambda: server.call(server.kernel.blobs.check)[0], what="the breaker to close")
    assert counter(server, "sora_s3_breaker_state", operation="get") == 0
