"""The example plugin is installable and its hook runs in a real kernel."""

from __future__ import annotations

import imaplib
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from sora_kernel.api import Recipient
from sora_kernel.testing import installed_plugins

PLUGIN_DIR = Path(__file__).resolve().parents[1]


def test_builds_a_wheel_with_the_entry_point(tmp_path: Path) -> None:
    source = tmp_path / "src"
    shutil.copytree(PLUGIN_DIR, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "tests"))
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
         str(tmp_path), str(source)], check=True, capture_output=True)
    wheel = next(tmp_path.glob("sora_example_header-*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        entry_points = next(n for n in archive.namelist() if n.endswith("entry_points.txt"))
        text = archive.read(entry_points).decode()
    assert "[sora.plugins]" in text and "example_header = sora_example_header.plugin" in text


def test_installed_plugin_is_listed_from_metadata() -> None:
    info = installed_plugins()["example_header"]
    assert info.distribution == "sora-example-header"
    assert info.hooks == ("sora_config_sections", "sora_delivery_headers", "sora_imap_capabilities",
                          "sora_imap_commands")


def test_delivery_gets_the_configured_header(sora_server) -> None:
    srv = sora_server(plugins=["example_header"], run_services=False,
                      config={"example_header": {"name": "X-Test-Plugin", "value": "it ran"}})
    account = srv.create_account("bob@example.com")
    recipient = Recipient(account.id, "bob@example.com", "bob@example.com")
    outcomes = srv.call(lambda: srv.kernel.delivery.deliver(
        sender="a@example.net", recipients=[recipient], raw=b"Subject: hi\r\n\r\nbody\r\n"))
    assert outcomes[0].kind == "stored"
    inbox = srv.call(srv.store.get_mailbox, account.id, "INBOX")
    row = srv.call(lambda: srv.store.fetch(inbox.id, [(1, 1)]))[0]
    raw = srv.call(srv.store.read_message, account.id, row.content_hash)
    assert b"\r\nX-Test-Plugin: it ran\r\n" in raw
    assert raw.startswith(b"Return-Path: <a@example.net>\r\nDelivered-To: bob@example.com\r\n")


def test_extends_imap_through_the_imap_plugins_own_hooks(sora_server, monkeypatch) -> None:
    monkeypatch.setitem(imaplib.Commands, "XEXAMPLE", ("NONAUTH", "AUTH", "SELECTED"))
    srv = sora_server(plugins=["imap", "example_header"], config={"example_header": {"value": "yes"}})
    srv.create_account("carol@example.com", "pw")
    client = imaplib.IMAP4(*srv.addr("imap"))
    try:
        with pytest.raises(imaplib.IMAP4.error, match="Unknown command"):  # extension commands need a login
            client.xatom("XEXAMPLE")
        client.login("carol@example.com", "pw")
        assert b"XEXAMPLE" in client.capability()[1][0].split()
        status, _ = client.xatom("XEXAMPLE")
        assert status == "OK"
        assert client.untagged_responses.pop("XEXAMPLE") == [b'"X-Sora-Example: yes"']
    finally:
        client.logout()


def test_loads_without_imap(sora_server) -> None:
    srv = sora_server(plugins=["lmtp", "example_header"], run_services=False)
    assert "example_header" in srv.kernel.plugins.names
