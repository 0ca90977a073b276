"""Operator commands of `sora` (stats, mailboxes, messages, account lifecycle) against a database a
running server shares, as an operator runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest


def sora(*args: str, config: Path, timeout: float = 120, input: str | None = None
         ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sora_cli.main", "--config", str(config), *args],
                          capture_output=True, text=True, env=dict(os.environ), timeout=timeout, input=input)


def ok(*args: str, config: Path) -> str:
    result = sora(*args, config=config)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.fixture
def configured(tmp_path: Path, sora_dsn: str) -> Path:
    config = tmp_path / "sora.toml"
    result = sora("init", "--data-dir", str(tmp_path / "data"), config=config)
    assert result.returncode == 0, result.stderr
    text = config.read_text().replace('dsn = ""', f'dsn = "{sora_dsn}"', 1)
    config.write_text(text.replace("[auth_rate_limit]\n", "[auth_rate_limit]\nenabled = true\n", 1)
                      .replace("\nenabled = false\n# Failures of one user", "\n# Failures of one user", 1))
    return config


def test_stats_auth_and_unblock(configured: Path, sora_dsn: str, sora_server: Any) -> None:
    empty = json.loads(ok("stats", "auth", "--json", config=configured))
    assert empty == {"enabled": True, "tiers": {}, "blocked": []}
    srv = sora_server(dsn=sora_dsn, config={"auth_rate_limit": {"enabled": True, "delay_initial": "0s"}})
    for n in range(5):
        srv.call(srv.kernel.ratelimit.failed, "imap", f"Ann+{n}@example.com", "192.0.2.7")
    info = json.loads(ok("stats", "auth", "--json", config=configured))
    assert info["tiers"]["ip"] == {"tracked": 1, "blocked": 0, "failures": 5}
    assert info["tiers"]["ip_user"] == {"tracked": 1, "blocked": 1, "failures": 5}
    assert [b["key"] for b in info["blocked"]] == ["pair:192.0.2.7|ann@example.com"]
    text = ok("stats", "auth", config=configured)
    assert "blocked  pair:192.0.2.7|ann@example.com" in text
    assert ok("stats", "unblock", "pair:192.0.2.7|ann@example.com", config=configured).startswith("unblocked")
    assert json.loads(ok("stats", "auth", "--json", config=configured))["blocked"] == []
    again = sora("stats", "unblock", "pair:192.0.2.7|ann@example.com", config=configured)
    assert again.returncode == 1 and "not tracked" in again.stderr


def test_mailboxes_and_messages(configured: Path, sora_dsn: str, sora_server: Any) -> None:
    srv = sora_server(dsn=sora_dsn)
    srv.create_account("ann@example.com", "pw")
    ok("mailboxes", "create", "--email", "ann@example.com", "--name", "Projects/2026", config=configured)
    names = [m["name"] for m in json.loads(ok("mailboxes", "list", "--email", "ann@example.com", "--json",
                                              config=configured))]
    assert {"INBOX", "Projects", "Projects/2026"} <= set(names)
    dup = sora("mailboxes", "create", "--email", "ann@example.com", "--name", "Projects/2026", config=configured)
    assert dup.returncode == 1 and "exists" in dup.stderr and "Traceback" not in dup.stderr
    ok("mailboxes", "rename", "--email", "ann@example.com", "--old-name", "Projects", "--new-name", "Work",
       config=configured)
    listed = ok("mailboxes", "list", "--email", "ann@example.com", config=configured)
    assert "Work/2026" in listed and "Projects" not in listed
    ok("mailboxes", "unsubscribe", "--email", "ann@example.com", "--name", "Work/2026", config=configured)
    subscribed = json.loads(ok("mailboxes", "list", "--email", "ann@example.com", "--subscribed", "--json",
                               config=configured))
    assert "Work/2026" not in [m["name"] for m in subscribed]
    ok("mailboxes", "subscribe", "--email", "ann@example.com", "--name", "Work/2026", config=configured)
    refused = sora("mailboxes", "delete", "--email", "ann@example.com", "--name", "Work/2026", config=configured)
    assert refused.returncode == 1 and "--confirm" in refused.stderr
    ok("mailboxes", "delete", "--email", "ann@example.com", "--name", "Work/2026", "--confirm", config=configured)
    unknown = sora("mailboxes", "list", "--email", "zed@example.com", config=configured)
    assert unknown.returncode == 1 and "no account with address zed@example.com" in unknown.stderr

    account = srv.call(srv.store.find_account, "ann@example.com")
    inbox = srv.call(srv.store.get_mailbox, account.id, "INBOX")
    for n in range(3):
        srv.call(srv.store.append, account.id, inbox.id, f"Subject: m{n}\r\n\r\nbody {n}\r\n".encode())
    srv.call(srv.store.expunge, account.id, inbox.id, [(1, 2)], only_deleted=False)
    deleted = json.loads(ok("messages", "list-deleted", "--email", "ann@example.com", "--json", config=configured))
    assert sorted(d["subject"] for d in deleted) == ["m0", "m1"]
    assert sora("messages", "restore", "--email", "ann@example.com", "--mailbox", "INBOX",
                config=configured).returncode == 1  # needs --confirm
    first = [d["id"] for d in deleted if d["subject"] == "m0"]
    assert ok("messages", "restore", "--email", "ann@example.com", "--ids", str(first[0]),
              config=configured).strip() == "restored 1 messages"
    assert ok("messages", "restore", "--email", "ann@example.com", "--mailbox", "INBOX", "--confirm",
              config=configured).strip() == "restored 1 messages"
    assert srv.call(srv.store.get_mailbox, account.id, "INBOX").message_count == 3


def test_accounts_list_domain_restore_purge(configured: Path, sora_dsn: str, sora_server: Any) -> None:
    srv = sora_server(dsn=sora_dsn)
    srv.create_account("ann@example.com", "pw")
    srv.create_account("bob@other.org", "pw")
    account = srv.call(srv.store.find_account, "bob@other.org")
    inbox = srv.call(srv.store.get_mailbox, account.id, "INBOX")
    srv.call(srv.store.append, account.id, inbox.id, b"Subject: x\r\n\r\nbody\r\n")
    listed = json.loads(ok("accounts", "list", "--domain", "OTHER.org", "--json", config=configured))
    assert [a["address"] for a in listed] == ["bob@other.org"]
    not_deleted = sora("accounts", "restore", "--email", "bob@other.org", config=configured)
    assert not_deleted.returncode == 1 and "not deleted" in not_deleted.stderr
    live = sora("accounts", "purge", "--email", "bob@other.org", "--confirm", config=configured)
    assert live.returncode == 1 and "not deleted" in live.stderr
    ok("accounts", "delete", "--email", "bob@other.org", config=configured)
    ok("accounts", "restore", "--email", "bob@other.org", config=configured)
    assert srv.login("bob@other.org", "pw") is not None
    ok("accounts", "delete", "--email", "bob@other.org", config=configured)
    assert sora("accounts", "purge", "--email", "bob@other.org", config=configured).returncode == 1
    purged = ok("accounts", "purge", "--email", "bob@other.org", "--confirm", config=configured)
    assert "(1 message bodies)" in purged
    assert srv.call(srv.store.find_account, "bob@other.org", include_deleted=True) is None
    assert json.loads(ok("accounts", "list", "--domain", "other.org", "--json", "--deleted",
                         config=configured)) == []


def test_connections_list_kick_and_stats(configured: Path, sora_dsn: str, sora_server: Any) -> None:
    import socket
    import time

    srv = sora_server(plugins=["imap"], dsn=sora_dsn,
                      config={"connections": {"sync_interval": "50ms", "heartbeat": "200ms"}})
    srv.create_account("ann@example.com", "pw")
    sock = socket.create_connection(srv.addr("imap"), timeout=10)
    reader = sock.makefile("rb")
    reader.readline()
    sock.sendall(b"a LOGIN ann@example.com pw\r\n")
    assert reader.readline().startswith(b"a OK")
    deadline = time.monotonic() + 10
    while not json.loads(ok("connections", "list", "--user", "ann@example.com", "--json", config=configured)):
        assert time.monotonic() < deadline
    listed = json.loads(ok("connections", "list", "--json", config=configured))
    assert [(c["protocol"], c["user"]) for c in listed] == [("imap", "ann@example.com")]
    assert "ann@example.com" in ok("connections", "list", "--protocol", "imap", config=configured)
    stats = json.loads(ok("stats", "connections", "--json", config=configured))
    assert stats["total"] == 1 and stats["by_protocol"] == {"imap": 1}
    assert sora("connections", "kick", config=configured).returncode == 1
    assert sora("connections", "kick", "--all", config=configured).returncode == 1
    assert ok("connections", "kick", "--user", "ann@example.com", config=configured).strip() == \
        "kick requested for 1 connections"
    assert reader.readline().startswith(b"* BYE")
    reader.close()
    sock.close()


def test_auth_hash_password(tmp_path: Path) -> None:
    from sora_kernel.auth import verify_password

    result = sora("auth", "hash-password", "--password-stdin", config=tmp_path / "none.toml", input="s3cret\n")
    assert result.returncode == 0, result.stderr
    assert verify_password("s3cret", result.stdout.strip()) and not verify_password("x", result.stdout.strip())


def test_health_endpoint_on_the_metrics_listener(configured: Path, sora_dsn: str) -> None:
    import signal
    import socket
    import time
    import urllib.error
    import urllib.request

    from sora_cli.health_http import database_check, health_body

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = dict(os.environ, SORA_SERVER__WORKERS="1", SORA_METRICS__ADDR=f"127.0.0.1:{port}",
               SORA_PLUGINS__ENABLED="example_header")
    err_path = configured.parent / "serve.err"
    with err_path.open("w") as err_file:
        proc = subprocess.Popen([sys.executable, "-m", "sora_cli.main", "--config", str(configured), "serve"],
                                env=env, stdout=subprocess.DEVNULL, stderr=err_file)
    try:
        body: dict[str, Any] = {}
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as reply:
                    body = json.loads(reply.read())
                    break
            except urllib.error.HTTPError as exc:  # 503 while the worker starts
                body = json.loads(exc.read())
            except OSError:
                pass
            time.sleep(0.1)
        assert body.get("status") == "ok", (body, err_path.read_text()[-2000:])
        assert body["components"]["workers"]["detail"] == "1/1 alive, 1 ready"
        assert body["components"]["database"]["detail"].startswith("PostgreSQL 18")
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        assert "sora_workers_up 1.0" in metrics
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    status, degraded = health_body({"database": database_check("postgresql://postgres@127.0.0.1:1/none", 0.5)})
    assert status == 503 and degraded["status"] == "degraded" and not degraded["components"]["database"]["ok"]


def test_purge_domain_credentials_show_version(configured: Path, sora_dsn: str, sora_server: Any) -> None:
    srv = sora_server(dsn=sora_dsn)
    for address in ("a@gone.org", "b@gone.org", "c@stays.org"):
        account = srv.create_account(address, "pw")
        inbox = srv.call(srv.store.get_mailbox, account.id, "INBOX")
        srv.call(srv.store.append, account.id, inbox.id, f"Subject: {address}\r\n\r\nbody\r\n".encode())
    ok("credentials", "add", "--email", "c@stays.org", "--address", "alias@gone.org", config=configured)
    shown = json.loads(ok("credentials", "show", "--address", "alias@gone.org", "--json", config=configured))
    assert shown["account"] == "c@stays.org" and shown["primary"] is False
    assert sora("accounts", "purge-domain", "--domain", "gone.org", config=configured).returncode == 1
    out = ok("accounts", "purge-domain", "--domain", "Gone.org", "--confirm", config=configured)
    # c@stays.org only has an alias in gone.org: it stays
    assert out.strip() == "purged 2 accounts of gone.org (2 message bodies)"
    assert [a.primary_address for a in srv.call(srv.store.list_accounts, include_deleted=True)] == ["c@stays.org"]
    versions = json.loads(ok("version", "--json", config=configured))
    assert "sora-kernel" in versions and versions["sora-plugin-admin-api"] == "0.1.0"
