"""A full blob store answers LMTP 452 4.3.1, leaves no temp file, and recovers without a restart."""

from __future__ import annotations

import os
import shutil
import smtplib
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import generate_latest


@pytest.fixture
def small_disk(sora_server: Any) -> Iterator[tuple[Any, Path]]:
    """A server whose blob folder is a 128 KiB tmpfs (real ENOSPC, no mock)."""
    srv = sora_server(plugins=["lmtp"])
    root = Path(srv.kernel.blobs.root)
    root.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=128k", "tmpfs", str(root)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        message = f"mounting a tmpfs needs root: {mounted.stderr.strip()}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message + " (run the suite as root, as CI does)")
    try:
        yield srv, root
    finally:
        subprocess.run(["umount", "-l", str(root)], check=False)


def _send(srv: Any, size: int, subject: str) -> dict[str, tuple[int, bytes]]:
    body = (b"x" * 76 + b"\r\n") * (size // 78)
    with smtplib.LMTP("127.0.0.1", srv.port("lmtp")) as client:
        try:
            return client.sendmail("s@example.org", ["full@example.com"],
                                   f"Subject: {subject}\r\n\r\n".encode() + body)
        except smtplib.SMTPDataError as exc:  # the one recipient's reply to DATA
            return {"full@example.com": (exc.smtp_code, exc.smtp_error)}


def test_disk_full_is_452_and_recovers(small_disk: tuple[Any, Path], caplog: pytest.LogCaptureFixture) -> None:
    srv, root = small_disk
    account = srv.create_account("full@example.com")
    refused = _send(srv, 400_000, "too big for the disk")
    assert refused == {"full@example.com": (452, b"4.3.1 <full@example.com> Insufficient system storage, "
                                                 b"try again later")}
    leftovers = [p for p in root.rglob("*") if p.is_file()]
    assert leftovers == []  # no temp file, no half blob
    assert "blob store cannot write" in caplog.text and "ENOSPC" in caplog.text
    assert shutil.disk_usage(root).free > 64 * 1024
    assert _send(srv, 2_000, "fits") == {}  # space is there again: accepted, no restart
    inbox = srv.call(srv.store.get_mailbox, account.id, "INBOX")
    assert inbox.message_count == 1
    metrics = generate_latest(srv.kernel.registry).decode()
    assert 'sora_deliveries_total{result="storage"} 1.0' in metrics
