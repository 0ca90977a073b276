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


def sora(*args: str, config: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sora_cli.main", "--config", str(config), *args],
                          capture_output=True, text=True, env=dict(os.environ), timeout=timeout)


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
