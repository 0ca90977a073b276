"""The supervisor restarts a dead embedded PostgreSQL: kill -9 of the postmaster under ``sora serve``
loses no acknowledged message and deliveries work again without restarting Sora (issue #25)."""

from __future__ import annotations

import imaplib
import os
import signal
import smtplib
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path


def sora(*args: str, config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sora_cli.main", "--config", str(config), *args],
                          capture_output=True, text=True, timeout=120)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _deliver(port: int, subject: str) -> bool:
    try:
        with smtplib.LMTP("127.0.0.1", port, timeout=10) as client:
            client.sendmail("s@example.org", ["e@example.com"], f"Subject: {subject}\r\n\r\nbody\r\n".encode())
        return True
    except (OSError, smtplib.SMTPException):
        return False


def _metrics(port: int) -> str:
    try:
        return urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
    except OSError:
        return ""


def test_killed_embedded_postgres_comes_back(tmp_path: Path) -> None:
    config = tmp_path / "sora.toml"
    assert sora("init", "--data-dir", str(tmp_path / "data"), config=config).returncode == 0
    created = sora("accounts", "create", "--email", "e@example.com", "--password", "pw", config=config)
    assert created.returncode == 0, created.stderr
    lmtp, imap, metrics = free_port(), free_port(), free_port()
    env = dict(os.environ, SORA_SERVER__WORKERS="1", SORA_METRICS__ADDR=f"127.0.0.1:{metrics}",
               SORA_PLUGINS__ENABLED="lmtp,imap", SORA_LMTP__ADDR=f"127.0.0.1:{lmtp}",
               SORA_IMAP__ADDR=f"127.0.0.1:{imap}", SORA_LOG__FORMAT="json")
    errors = tmp_path / "serve.err"
    with errors.open("w") as err_file:
        proc = subprocess.Popen([sys.executable, "-m", "sora_cli.main", "--config", str(config), "serve"],
                                env=env, stdout=subprocess.DEVNULL, stderr=err_file)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not ("sora_embedded_postgres_up 1.0" in _metrics(metrics)
                                                   and _deliver(lmtp, "before")):
            assert proc.poll() is None, errors.read_text()
            time.sleep(0.2)
        assert "sora_embedded_postgres_up 1.0" in _metrics(metrics), errors.read_text()[-3000:]
        pid = int((tmp_path / "data" / "pg" / "postmaster.pid").read_text().split()[0])
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 60
        body = ""
        while time.monotonic() < deadline:
            body = _metrics(metrics)
            if "sora_embedded_postgres_restarts_total 1.0" in body and _deliver(lmtp, "after"):
                break
            time.sleep(0.3)
        else:
            raise AssertionError(f"not back: {body[-500:]}\n{errors.read_text()[-3000:]}")
        assert "sora_embedded_postgres_up 1.0" in body
        log = errors.read_text()
        assert "embedded PostgreSQL stopped; restarting" in log and "embedded PostgreSQL restarted" in log
        client = imaplib.IMAP4("127.0.0.1", imap)
        client.login("e@example.com", "pw")
        client.select("INBOX", readonly=True)
        _, found = client.search(None, "ALL")
        subjects = []
        for number in found[0].split():
            _, data = client.fetch(number, "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
            subjects.append(data[0][1].strip().decode())
        client.logout()
        assert subjects == ["Subject: before", "Subject: after"]  # the acknowledged one survived, once
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
