"""``sora bench store``: append throughput of the mail store API."""

from __future__ import annotations

import secrets
import time
from typing import Any

import anyio


def make_message(index: int, size: int) -> bytes:
    """A plain message of about ``size`` bytes, unique per index."""
    head = (f"From: Bench <bench@example.com>\r\nTo: user@example.com\r\nSubject: bench {index}\r\n"
            f"Message-ID: <bench-{index}-{secrets.token_hex(4)}@example.com>\r\n"
            "Date: Mon, 1 Jan 2024 00:00:00 +0000\r\nContent-Type: text/plain\r\n\r\n").encode()
    line = b"The quick brown fox jumps over the lazy dog. 0123456789 abcdefghij\r\n"
    body = line * max(1, (size - len(head)) // len(line))
    return head + body


async def run_store_bench(kernel: Any, *, messages: int, mailboxes: int, size: int) -> dict[str, Any]:
    """Append ``messages`` messages spread over ``mailboxes`` concurrent writers."""
    store = kernel.store
    address = f"bench-{secrets.token_hex(4)}@bench.invalid"
    account = await store.create_account(address)
    targets = [await store.create_mailbox(account.id, f"bench{i}") for i in range(mailboxes)]
    latencies: list[float] = []
    per_box = messages // mailboxes

    async def writer(mailbox_id: int, offset: int) -> None:
        for i in range(per_box):
            raw = make_message(offset + i, size)
            started = time.perf_counter()
            await store.append(account.id, mailbox_id, raw)
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    async with anyio.create_task_group() as tg:
        for n, mailbox in enumerate(targets):
            tg.start_soon(writer, mailbox.id, n * per_box)
    elapsed = time.perf_counter() - started
    latencies.sort()
    total = len(latencies)
    await store.delete_account(account.id)
    return {
        "benchmark": "store-append",
        "messages": total,
        "mailboxes": mailboxes,
        "message_size": size,
        "seconds": round(elapsed, 3),
        "messages_per_second": round(total / elapsed, 1) if elapsed else None,
        "p50_ms": round(latencies[total // 2] * 1000, 2) if total else None,
        "p99_ms": round(latencies[min(total - 1, int(total * 0.99))] * 1000, 2) if total else None,
    }
