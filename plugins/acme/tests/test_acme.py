"""The ACME plugin against pebble: issue over HTTP-01, serve over IMAPS (verified by a client trusting
pebble's root), renew, one order at a time (the lock), the fence, and the HTTP-01 responder."""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import pytest
from cryptography import x509
from sora_plugin_acme.plugin import manager_for

from sora_kernel.api import StoreError

DOMAINS = ["mail.sora.test", "imap.sora.test"]


def poll(check: Callable[[], Any], deadline: float = 60.0) -> Any:
    """Wait for ``check()`` to return something true."""
    end = time.monotonic() + deadline
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < end, "condition not reached before the deadline"
        time.sleep(0.05)


def acme_server(sora_server: Any, pebble: Any, *, imaps: bool = True, **acme: Any) -> Any:
    """A server with IMAPS and ACME (HTTP-01 on pebble's validation port)."""
    config = {"acme": {"directory": pebble.directory, "ca_file": str(pebble.api_ca_file), "domains": DOMAINS,
                       "http_addr": f"127.0.0.1:{pebble.http_port}", "refresh_interval": "100ms",
                       "retry_min": "200ms", **acme},
              "imap": {"tls_addr": "127.0.0.1:0" if imaps else ""}}
    return sora_server(plugins=["acme", "imap"], config=config)


def imaps_certificate(port: int, server_name: str, root: str) -> x509.Certificate:
    """The certificate IMAPS serves, verified against pebble's root and the name."""
    context = ssl.create_default_context(cafile=root)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, \
            context.wrap_socket(raw, server_hostname=server_name) as tls:
        assert tls.recv(1024).startswith(b"* OK")
        tls.sendall(b"a1 CAPABILITY\r\n")
        assert b"a1 OK" in tls.recv(4096)
        der = tls.getpeercert(binary_form=True)
        assert der is not None
        return x509.load_der_x509_certificate(der)


def stored(srv: Any) -> Any:
    """The stored certificate of the first domain, or None."""
    return srv.call(srv.kernel.store.certificates.get_certificate, DOMAINS[0])


def test_issue_serve_renew(sora_server: Any, pebble: Any) -> None:
    srv = acme_server(sora_server, pebble)
    first = poll(lambda: stored(srv))
    assert sorted(first.names) == sorted(DOMAINS) and first.renewals == 0
    port = srv.port("imap", tls=True)
    # served by IMAPS once loaded, for both names, verified by a client that trusts pebble's root only
    served = poll(lambda: _try(lambda: imaps_certificate(port, "imap.sora.test", str(pebble.root_file))))
    names = served.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
        x509.DNSName)
    assert sorted(names) == sorted(DOMAINS)
    assert imaps_certificate(port, "mail.sora.test", str(pebble.root_file)).serial_number == served.serial_number
    with pytest.raises(ssl.SSLCertVerificationError):  # the names are checked: other.test is not covered
        imaps_certificate(port, "other.sora.example", str(pebble.root_file))
    manager = manager_for(srv.kernel)
    assert manager is not None
    assert srv.call(manager.check) is False  # valid for years: not due
    assert srv.kernel.registry.get_sample_value("sora_acme_orders_total", {"result": "issued"}) == 1
    days = srv.kernel.registry.get_sample_value("sora_acme_certificate_days_to_expiry", {"name": DOMAINS[0]})
    assert days is not None and days > 30
    # renew_before longer than the validity: due now
    manager.settings = dataclasses.replace(manager.settings, renew_before=100 * 365 * 86400.0)
    assert srv.call(manager.check) is True
    second = stored(srv)
    assert second.renewals == 1 and second.cert_pem != first.cert_pem
    renewed = imaps_certificate(port, "imap.sora.test", str(pebble.root_file))
    assert renewed.serial_number != served.serial_number
    assert x509.load_pem_x509_certificate(second.cert_pem.encode()).serial_number == renewed.serial_number


def _try(func: Callable[[], Any]) -> Any:
    try:
        return func()
    except (ssl.SSLError, OSError):
        return None


def test_one_node_orders_at_a_time_and_a_lost_lock_cannot_save(sora_server: Any, pebble: Any) -> None:
    srv = acme_server(sora_server, pebble, check_interval="1h")
    poll(lambda: stored(srv))
    manager = manager_for(srv.kernel)
    assert manager is not None
    manager.settings = dataclasses.replace(manager.settings, renew_before=100 * 365 * 86400.0)
    certificates = srv.kernel.store.certificates

    async def while_another_node_orders() -> bool | None:
        async with certificates.order_lock() as held:
            assert held is not None
            return await manager.check()

    assert srv.call(while_another_node_orders) is None
    assert stored(srv).renewals == 0

    async def save_after_losing_the_lock() -> None:
        async with certificates.order_lock() as held:
            assert held is not None
            await held.conn.execute("SELECT pg_advisory_unlock_all()")
            await held.save_certificate(DOMAINS[0], DOMAINS, "x", "y", stored_row.not_after, "z")

    stored_row = stored(srv)
    with pytest.raises(StoreError, match="lock was lost"):
        srv.call(save_after_losing_the_lock)
    assert stored(srv).cert_pem == stored_row.cert_pem


def http_get(port: int, path: str) -> bytes:
    """One raw HTTP/1.1 request to the HTTP-01 responder."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: mail.sora.test\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(4096):
            data += chunk
        return data


def test_http01_responder_answers_from_the_database(sora_server: Any, pebble: Any) -> None:
    srv = acme_server(sora_server, pebble, imaps=False, domains=[])  # nothing to order: only the responder runs
    port = pebble.http_port
    certificates = srv.kernel.store.certificates
    srv.call(certificates.put_challenge, "http-01", "tok123", "tok123.thumb")
    answer = poll(lambda: _try(lambda: http_get(port, "/.well-known/acme-challenge/tok123")))
    assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"\r\n\r\ntok123.thumb")
    assert http_get(port, "/.well-known/acme-challenge/nope").startswith(b"HTTP/1.1 404")
    assert http_get(port, "/").startswith(b"HTTP/1.1 404")
    srv.call(certificates.delete_challenge, "http-01", "tok123")
    assert http_get(port, "/.well-known/acme-challenge/tok123").startswith(b"HTTP/1.1 404")


def _sora(config: Any, *args: str) -> Any:
    env = {**os.environ}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    return subprocess.run([sys.executable, "-m", "sora_cli.main", "--config", str(config), *args],
                          capture_output=True, text=True, timeout=120, env=env)


def test_sora_tls_list_show_renew(sora_server: Any, pebble: Any, tmp_path: Any) -> None:
    srv = acme_server(sora_server, pebble, imaps=False)  # its HTTP-01 responder answers the CLI's order
    first = poll(lambda: stored(srv))
    config = tmp_path / "sora.toml"
    dsn = srv.kernel.config.get("database", "dsn")
    config.write_text(f'[server]\ndata_dir = "{tmp_path / "data"}"\n[database]\ndsn = "{dsn}"\n'
                      f'[plugins]\nenabled = ["acme"]\n[acme]\ndirectory = "{pebble.directory}"\n'
                      f'ca_file = "{pebble.api_ca_file}"\ndomains = {json.dumps(DOMAINS)}\nhttp_addr = ""\n')
    listed = _sora(config, "tls", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert [(r["name"], sorted(r["names"]), r["renewals"]) for r in rows] == [(DOMAINS[0], sorted(DOMAINS), 0)]
    assert rows[0]["days_left"] > 30
    assert DOMAINS[0] in _sora(config, "tls", "list").stdout
    assert _sora(config, "tls", "show", DOMAINS[0], "--pem").stdout == first.cert_pem
    shown = json.loads(_sora(config, "tls", "show", DOMAINS[0], "--json").stdout)
    assert shown["issuer"] == pebble.directory and "key" not in json.dumps(shown)
    assert _sora(config, "tls", "show", "nope.test").returncode == 1
    assert _sora(config, "tls", "renew").stdout.strip() == "not due"
    renewed = _sora(config, "tls", "renew", "--force")
    assert renewed.returncode == 0, renewed.stderr
    assert renewed.stdout.strip() == "renewed"
    assert stored(srv).renewals == 1 and stored(srv).cert_pem != first.cert_pem


def test_tls_alpn_01(sora_server: Any, pebble: Any) -> None:
    srv = acme_server(sora_server, pebble, challenge="tls-alpn-01", http_addr="",
                      tls_alpn_addr=f"127.0.0.1:{pebble.tls_port}", domains=["alpn.sora.test"])
    issued = poll(lambda: srv.call(srv.kernel.store.certificates.get_certificate, "alpn.sora.test"))
    assert issued.names == ("alpn.sora.test",)
    leaf = x509.load_pem_x509_certificate(issued.cert_pem.encode())
    assert srv.call(srv.kernel.store.certificates.list_challenges, "tls-alpn-01") == {}  # withdrawn
    port = srv.port("imap", tls=True)
    served = poll(lambda: _try(lambda: imaps_certificate(port, "alpn.sora.test", str(pebble.root_file))))
    assert served.serial_number == leaf.serial_number


def test_without_a_directory_the_plugin_is_inert(sora_server: Any, sora_certificate: Any) -> None:
    cert, key = sora_certificate
    srv = sora_server(plugins=["acme", "imap"], config={"tls": {"cert_file": str(cert), "key_file": str(key)},
                                                        "imap": {"tls_addr": "127.0.0.1:0"}})
    assert manager_for(srv.kernel) is None
    assert not [s for s in srv.kernel.listeners if "acme" in str(s)]
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", srv.port("imap", tls=True)), timeout=10) as raw, \
            context.wrap_socket(raw, server_hostname="localhost") as tls:  # the [tls] file certificate
        assert tls.recv(1024).startswith(b"* OK")
