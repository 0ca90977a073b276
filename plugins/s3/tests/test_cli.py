"""``sora uploads status``, ``sora cache stats|purge``, ``sora verify s3 [--fix]``: the real CLI against a
running server's database, bucket and data directory."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from s3_support import ADDRESS, MotoS3, message, status, uploaded_all, wait_for

from sora_kernel.testing import SoraTestServer


def _config(tmp_path: Path, server: SoraTestServer) -> Path:
    s3 = server.kernel.blobs.settings
    path = tmp_path / "cli.toml"
    path.write_text(f"""
[server]
hostname = "{server.kernel.hostname}"
data_dir = "{server.kernel.data_dir}"
[database]
dsn = "{server.kernel.dsn}"
[storage]
backend = "s3"
[plugins]
enabled = ["s3"]
[log]
level = "warning"
format = "json"
[s3]
endpoint = "{s3.endpoint}"
bucket = "{s3.bucket}"
access_key = "testing"
secret_key = "testing"
delete_fence = "0s"
""")
    return path


def _sora(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(Path(sys.executable).parent / "sora"), "--config", str(config), *args],
                          capture_output=True, text=True, timeout=120)


def _json(result: subprocess.CompletedProcess[str]) -> Any:
    return json.loads(result.stdout[result.stdout.index("{"):])


def test_uploads_status_and_cache_commands(s3_server: Callable[..., SoraTestServer], moto_s3: MotoS3,
                                           tmp_path: Path) -> None:
    server = s3_server()
    store = server.kernel.store
    account = server.call(store.find_account, ADDRESS)
    inbox = server.call(store.get_mailbox, account.id, "INBOX")
    server.call(lambda: store.append(account.id, inbox.id, message("one"), normalized=True))
    uploaded_all(server)
    moto_s3.stop()
    server.call(lambda: store.append(account.id, inbox.id, message("two"), normalized=True))
    config = _config(tmp_path, server)
    result = _sora(config, "uploads", "status", "--json")
    assert result.returncode == 0, result.stderr
    shown = _json(result)
    assert (shown["pending"], shown["uploaded"], shown["failed"]) == (1, 1, 0)
    assert shown["oldest_pending_seconds"] >= 0
    assert [n["node"] for n in shown["nodes"]] == ["test.local"]
    text = _sora(config, "uploads", "status")
    assert "pending   1" in text.stdout and "node      test.local" in text.stdout
    stats = _json(_sora(config, "cache", "stats"))
    assert stats["entries"] == 1 and stats["bytes"] > 0
    purged = _sora(config, "cache", "purge")
    assert purged.returncode == 0 and "purged 1 cached bodies" in purged.stdout
    assert _json(_sora(config, "cache", "stats"))["entries"] == 0
    moto_s3.start()
    uploaded_all(server)


def test_verify_s3_finds_and_fixes_missing_objects_and_orphans(
        s3_server: Callable[..., SoraTestServer], moto_s3: MotoS3, tmp_path: Path) -> None:
    server = s3_server()
    store = server.kernel.store
    bucket = server.kernel.blobs.settings.bucket
    account = server.call(store.find_account, ADDRESS)
    inbox = server.call(store.get_mailbox, account.id, "INBOX")
    kept = server.call(lambda: store.append(account.id, inbox.id, message("kept"), normalized=True))
    lost = server.call(lambda: store.append(account.id, inbox.id, message("lost"), normalized=True))
    uploaded_all(server)
    lost_key = f"{account.id}/{lost.content_hash.hex()}"
    moto_s3.client().delete_object(Bucket=bucket, Key=lost_key)  # the cache still has a copy
    orphan_key = f"{account.id}/{'ab' * 32}"
    moto_s3.client().put_object(Bucket=bucket, Key=orphan_key, Body=b"nobody's")
    config = _config(tmp_path, server)

    report = _sora(config, "verify", "s3")
    assert report.returncode == 1
    found = _json(report)
    assert [m["key"] for m in found["missing"]] == [lost_key]
    assert [o["key"] for o in found["orphans"]] == [orphan_key]

    fixed = _sora(config, "verify", "s3", "--fix")
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    result = _json(fixed)
    assert result["missing"][0]["fixed"] and result["orphans"][0]["deleted"]
    wait_for(lambda: lost_key in moto_s3.keys(bucket) and status(server).pending == 0,
             what="the requeued body to be uploaded again")
    assert sorted(moto_s3.keys(bucket)) == sorted([lost_key, f"{account.id}/{kept.content_hash.hex()}"])
    clean = _sora(config, "verify", "s3")
    assert clean.returncode == 0 and _json(clean)["missing"] == [] and _json(clean)["orphans"] == []
