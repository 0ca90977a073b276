"""The `sora` command: init, config, plugins, accounts, serve — as a user runs it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest


def sora(*args: str, config: Path, env: dict[str, str] | None = None, input: str | None = None,
         timeout: float = 120) -> subprocess.CompletedProcess[str]:
    full_env = dict(os.environ, **(env or {}))
    return subprocess.run([sys.executable, "-m", "sora_cli.main", "--config", str(config), *args],
                          capture_output=True, text=True, env=full_env, input=input, timeout=timeout)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def configured(tmp_path: Path, sora_dsn: str) -> Path:
    config = tmp_path / "sora.toml"
    result = sora("init", "--data-dir", str(tmp_path / "data"), config=config)
    assert result.returncode == 0, result.stderr
    text = config.read_text().replace('dsn = ""', f'dsn = "{sora_dsn}"', 1)
    config.write_text(text)
    return config


def test_init_writes_commented_valid_config(configured: Path) -> None:
    text = configured.read_text()
    assert "# Sora configuration" in text and "[database]" in text and "[plugins]" in text
    result = sora("config", "validate", config=configured)
    assert result.returncode == 0 and "ok" in result.stdout
    again = sora("init", config=configured)
    assert again.returncode == 1 and "exists" in again.stderr


def test_init_config_option_says_where_the_file_goes(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "SORA_CONFIG"}

    def init(*args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "sora_cli.main", "init", *args], cwd=work, capture_output=True,
                              text=True, env=dict(env, **extra), timeout=60)

    target = tmp_path / "etc" / "mail.toml"
    chosen = init("--config", str(target), "--data-dir", "data")
    assert chosen.returncode == 0, chosen.stderr
    assert f"wrote {target}" in chosen.stdout and target.is_file()
    assert not (work / "sora.toml").exists() and not (work / "data").exists()
    via_env = init("--data-dir", str(tmp_path / "data"), SORA_CONFIG=str(tmp_path / "env.toml"))
    assert via_env.returncode == 0 and (tmp_path / "env.toml").is_file() and not (work / "sora.toml").exists()
    default = init()
    assert default.returncode == 0 and f"wrote {work / 'sora.toml'}" in default.stdout
    shown = init("--help", COLUMNS="200")
    assert "--config" in shown.stdout and "$SORA_CONFIG, else ./sora.toml; never into --data-dir" in shown.stdout


def test_config_option_after_the_command(configured: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "sora_cli.main", "config", "validate", "--config", str(configured)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and f"{configured}: ok" in result.stdout


def test_validate_names_key_and_value(tmp_path: Path) -> None:
    config = tmp_path / "sora.toml"
    config.write_text('[server]\nworkers = "many"\n[storage]\nexpunge_grace = "soon"\n')
    result = sora("config", "validate", config=config)
    assert result.returncode == 1
    assert "[server] workers = 'many': expected an integer" in result.stderr
    assert "[storage] expunge_grace = 'soon'" in result.stderr
    assert "Traceback" not in result.stderr


def test_dump_masks_secrets(configured: Path) -> None:
    result = sora("config", "dump", config=configured)
    assert result.returncode == 0
    assert 'dsn = "********"' in result.stdout


def test_plugins_enable_disable_keeps_comments(configured: Path) -> None:
    listed = sora("plugins", "list", config=configured)
    assert listed.returncode == 0
    assert "example_header" in listed.stdout and "sora-example-header" in listed.stdout
    assert sora("plugins", "disable", "example_header", config=configured).returncode == 0
    text = configured.read_text()
    assert "# Sora configuration" in text
    assert '"example_header"' not in text.split("[plugins]")[1].split("[")[0]
    assert sora("plugins", "enable", "example_header", config=configured).returncode == 0
    assert '"example_header"' in configured.read_text()
    missing = sora("plugins", "enable", "nosuch", config=configured)
    assert missing.returncode == 1 and "not installed" in missing.stderr


def test_accounts_and_credentials(configured: Path) -> None:
    created = sora("accounts", "create", "--email", "Carol@Example.com", "--password-stdin",
                   config=configured, input="s3cret\n")
    assert created.returncode == 0, created.stderr
    dup = sora("accounts", "create", "--email", "carol@example.com", "--password", "x", config=configured)
    assert dup.returncode == 1 and "already in use" in dup.stderr and "Traceback" not in dup.stderr
    bad = sora("accounts", "create", "--email", "not-an-address", "--password", "x", config=configured)
    assert bad.returncode == 1 and "not a valid e-mail address" in bad.stderr
    empty = sora("accounts", "create", "--email", "d@example.com", "--password-stdin", config=configured,
                 input="\n")
    assert empty.returncode == 1 and "empty" in empty.stderr
    assert sora("credentials", "add", "--email", "carol@example.com", "--address", "c.alias@example.com",
                config=configured).returncode == 0
    listed = sora("credentials", "list", "--email", "c.alias@example.com", config=configured)
    assert listed.stdout.split() == ["Carol@Example.com", "(primary)", "c.alias@example.com"]
    shown = sora("accounts", "show", "--email", "carol@example.com", config=configured)
    assert '"INBOX": 0' in shown.stdout and '"Trash": 0' in shown.stdout
    assert sora("accounts", "delete", "--email", "carol@example.com", config=configured).returncode == 0
    assert "carol" not in sora("accounts", "list", config=configured).stdout.lower()


def test_health(configured: Path) -> None:
    result = sora("health", config=configured)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok   database: PostgreSQL 18" in result.stdout and "ok   blobs:" in result.stdout


def test_embedded_database_survives_restart(tmp_path: Path) -> None:
    config = tmp_path / "sora.toml"
    assert sora("init", "--data-dir", str(tmp_path / "data"), config=config).returncode == 0
    assert sora("accounts", "create", "--email", "e@example.com", "--password", "pw",
                config=config).returncode == 0
    # the CLI stopped the server it started; the data is still there on the next start
    listed = sora("accounts", "list", config=config)
    assert "e@example.com" in listed.stdout, listed.stderr
    assert (tmp_path / "data" / "pg" / "PG_VERSION").exists()


def test_serve_workers_metrics_and_graceful_stop(configured: Path) -> None:
    metrics_port = free_port()
    env = dict(os.environ, SORA_SERVER__WORKERS="2", SORA_METRICS__ADDR=f"127.0.0.1:{metrics_port}",
               SORA_PLUGINS__ENABLED="example_header", SORA_LOG__FORMAT="json")
    output, errors = configured.parent / "serve.out", configured.parent / "serve.err"
    with output.open("w") as out_file, errors.open("w") as err_file:  # files, so the log can be read while it runs
        proc = subprocess.Popen([sys.executable, "-m", "sora_cli.main", "--config", str(configured), "serve"],
                                env=env, stdout=out_file, stderr=err_file, text=True)
    try:
        # poll for the real state: both workers counted on /metrics and one of them elected leader
        body, err = "", ""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                body = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=2).read().decode()
            except OSError:
                body = ""
            err = errors.read_text()
            workers_seen = "sora_workers_up 2.0" in body and body.count("sora_worker_resident_memory_bytes{") == 2
            if workers_seen and "elected to run node services" in err:
                break
            time.sleep(0.2)
        assert "elected to run node services" in err, err
        assert "sora_workers_up 2.0" in body
        assert body.count("sora_worker_resident_memory_bytes{") == 2 and "sora_worker_cpu_seconds_total{" in body
        assert "process_resident_memory_bytes" in body  # the supervisor's own
        children = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
        assert len(children) == 2
        os.kill(int(children[0]), signal.SIGKILL)  # a dying worker is restarted
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            now = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
            if len(now) == 2 and children[0] not in now:
                break
            time.sleep(0.2)
        assert len(now) == 2 and children[0] not in now
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
        out, err = output.read_text(), errors.read_text()
        assert code == 0, err
        assert "Sora is running with 2 worker(s)" in out
        assert "elected to run node services" in err
        assert "all workers stopped" in err
        assert "worker died; restarting" in err
    finally:
        if proc.poll() is None:
            proc.kill()


def test_db_status_and_migrate(configured: Path) -> None:
    status = sora("db", "status", config=configured)
    assert status.returncode == 0, status.stderr
    assert "applied  kernel/0001_init.sql" in status.stdout
    assert "applied  kernel/0002_mailbox_keywords.sql" in status.stdout
    migrated = sora("db", "migrate", config=configured)
    assert migrated.returncode == 0 and "nothing to apply" in migrated.stdout


def test_serve_refuses_a_port_in_use(configured: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {"SORA_PLUGINS__ENABLED": "imap", "SORA_IMAP__ADDR": f"127.0.0.1:{port}", "SORA_METRICS__ADDR": ""}
        result = sora("serve", config=configured, env=env, timeout=60)
    assert result.returncode == 1
    assert f"[imap] cannot listen on 127.0.0.1:{port}: Address already in use" in result.stderr


def test_accounts_update_password_and_quota(configured: Path) -> None:
    created = sora("accounts", "create", "--email", "u@example.com", "--password", "old", config=configured)
    assert created.returncode == 0
    updated = sora("accounts", "update", "--email", "u@example.com", "--password-stdin", "--quota", "1mb",
                   "--quota-messages", "10", config=configured, input="new\n")
    assert updated.returncode == 0, updated.stderr
    shown = sora("accounts", "show", "--email", "u@example.com", config=configured)
    assert '"quota_bytes": 1048576' in shown.stdout and '"quota_messages": 10' in shown.stdout
    check = sora("config", "validate", config=configured)
    assert check.returncode == 0
    login = subprocess.run(
        [sys.executable, "-c", (
            "import asyncio, sys\n"
            "from sora_kernel.kernel import Kernel, load_config\n"
            "from sora_kernel.types import AuthRequest\n"
            "from pathlib import Path\n"
            "async def main():\n"
            "    config, plugins = load_config(Path(sys.argv[1]))\n"
            "    kernel = Kernel(config, plugins)\n"
            "    await kernel.start(migrate=False)\n"
            "    new = await kernel.authenticate(AuthRequest('test', 'u@example.com', 'new'))\n"
            "    old = await kernel.authenticate(AuthRequest('test', 'u@example.com', 'old'))\n"
            "    await kernel.stop()\n"
            "    print(new is not None, old is None)\n"
            "asyncio.run(main())\n"), str(configured)],
        capture_output=True, text=True, timeout=60)
    assert login.stdout.split() == ["True", "True"], login.stderr
    unlimited = sora("accounts", "update", "--email", "u@example.com", "--quota", "none", config=configured)
    assert unlimited.returncode == 0
    assert '"quota_bytes": null' in sora("accounts", "show", "--email", "u@example.com", config=configured).stdout
    missing = sora("accounts", "update", "--email", "nobody@example.com", "--quota", "1mb", config=configured)
    assert missing.returncode == 1 and "no account" in missing.stderr
