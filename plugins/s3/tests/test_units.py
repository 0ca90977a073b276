"""Pure parts: AES-256-GCM layout and streaming decryption, the circuit breaker's state machine."""

from __future__ import annotations

import os

import pytest
from prometheus_client import CollectorRegistry
from sora_plugin_s3.breaker import CLOSED, HALF_OPEN, OPEN, BreakerMetrics, BreakerOpen, CircuitBreaker
from sora_plugin_s3.crypto import DecryptError, StreamDecryptor, decrypt, encrypt

KEY = bytes(range(32))


def test_encrypt_layout_and_round_trip() -> None:
    data = os.urandom(1000)
    blob = encrypt(KEY, data)
    assert len(blob) == 12 + len(data) + 16
    assert decrypt(KEY, blob) == data
    assert encrypt(KEY, data)[:12] != blob[:12]  # a fresh nonce each time


@pytest.mark.parametrize("chunk", [1, 5, 12, 13, 16, 17, 4096, 100_000])
def test_stream_decryption_in_any_chunking(chunk: int) -> None:
    data = os.urandom(30_000)
    blob = encrypt(KEY, data)
    decryptor = StreamDecryptor(KEY)
    out = b"".join(decryptor.update(blob[i:i + chunk]) for i in range(0, len(blob), chunk))
    assert out + decryptor.finish() == data


def test_tampered_truncated_or_wrong_key_objects_are_refused() -> None:
    blob = bytearray(encrypt(KEY, b"hello world"))
    blob[15] ^= 1
    with pytest.raises(DecryptError):
        decrypt(KEY, bytes(blob))
    decryptor = StreamDecryptor(KEY)
    decryptor.update(bytes(blob))
    with pytest.raises(DecryptError):
        decryptor.finish()
    with pytest.raises(DecryptError):
        decrypt(bytes(32), encrypt(KEY, b"x"))
    short = StreamDecryptor(KEY)
    short.update(b"\x00" * 20)
    with pytest.raises(DecryptError):
        short.finish()


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _breaker(registry: CollectorRegistry, clock: Clock) -> CircuitBreaker:
    return CircuitBreaker("get", BreakerMetrics(registry), min_requests=4, failure_ratio=0.5, window=10,
                          open_timeout=30, half_open_max=1, clock=clock)


def test_breaker_opens_refuses_probes_and_closes() -> None:
    registry, clock = CollectorRegistry(), Clock()
    breaker = _breaker(registry, clock)
    for ok in (True, False, True):
        breaker.allow()
        breaker.record(ok)
    assert breaker.state == CLOSED  # 3 requests: below the minimum
    breaker.allow()
    breaker.record(False)  # 4 requests, 50 % failed
    assert breaker.state == OPEN and breaker.refusing()
    assert registry.get_sample_value("sora_s3_breaker_state", {"operation": "get"}) == 2
    with pytest.raises(BreakerOpen):
        breaker.allow()
    assert registry.get_sample_value("sora_s3_breaker_rejected_total", {"operation": "get"}) == 1
    clock.now = 31
    breaker.allow()  # one trial
    assert breaker.state == HALF_OPEN
    with pytest.raises(BreakerOpen):
        breaker.allow()  # only one trial in flight
    breaker.record(False)
    assert breaker.state == OPEN
    clock.now = 62
    breaker.allow()
    breaker.record(True)
    assert breaker.state == CLOSED and breaker.healthy
    assert registry.get_sample_value("sora_s3_breaker_state", {"operation": "get"}) == 0


def test_breaker_window_forgets_old_failures() -> None:
    registry, clock = CollectorRegistry(), Clock()
    breaker = _breaker(registry, clock)
    for _ in range(3):
        breaker.allow()
        breaker.record(False)
    clock.now = 11  # a new window
    breaker.allow()
    breaker.record(False)
    assert breaker.state == CLOSED


def test_the_cache_drops_leftover_temporary_files_and_keeps_its_entries(tmp_path: os.PathLike[str]) -> None:
    from pathlib import Path

    from sora_kernel.api import BlobCache

    root = Path(tmp_path) / "cache"
    first = BlobCache(root, 1 << 20, registry=CollectorRegistry())
    source = Path(tmp_path) / "body"
    source.write_bytes(b"x" * 100)
    assert first.adopt(7, b"\x01" * 32, source) and not source.exists()
    (root / ".download-7-abcd-1234").write_bytes(b"partial")
    again = BlobCache(root, 1 << 20, registry=CollectorRegistry())
    assert again.stats()["entries"] == 1 and again.size == 100
    assert not (root / ".download-7-abcd-1234").exists()
    path = again.lookup(7, b"\x01" * 32)
    assert path is not None and path.read_bytes() == b"x" * 100
    big = Path(tmp_path) / "big"
    big.write_bytes(b"y" * (6 << 20))
    assert not again.adopt(8, b"\x02" * 32, big) and big.exists()  # over the object cap: left in place
