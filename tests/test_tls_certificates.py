"""Certificates by SNI from files, ALPN per protocol, minimum version, hot reload (file change, SIGHUP)
for implicit TLS and STARTTLS: real ssl clients against the POP3 listeners."""

from __future__ import annotations

import datetime
import poplib
import socket
import ssl
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from sora_kernel.errors import ConfigError
from sora_kernel.net.certificates import CertificateSet, FileCertificates, read_certificate


def make_certificate(folder: Path, stem: str, names: list[str], *, cn: str | None = None) -> tuple[Path, Path]:
    """A self-signed P-256 certificate for ``names`` (subjectAltName DNS); PEM files in ``folder``."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn or (names[0] if names else stem))])
    now = datetime.datetime.now(datetime.UTC)
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
               .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(days=2)))
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
    cert = builder.sign(key, hashes.SHA256())
    cert_file, key_file = folder / f"{stem}.pem", folder / f"{stem}.key"
    # write to a temporary name and rename, as a certificate manager does
    for path, data in ((key_file, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                    serialization.NoEncryption())),
                       (cert_file, cert.public_bytes(serialization.Encoding.PEM))):
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(data)
        tmp.replace(path)
    return cert_file, key_file


def served(port: int, server_name: str | None, *, alpn: list[str] | None = None,
           max_version: ssl.TLSVersion | None = None) -> tuple[str, str | None]:
    """(first DNS name of the certificate served, ALPN selected) for one implicit-TLS handshake."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    if alpn:
        context.set_alpn_protocols(alpn)
    if max_version is not None:
        context.maximum_version = max_version
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, \
            context.wrap_socket(raw, server_hostname=server_name) as tls:
        der = tls.getpeercert(binary_form=True)
        assert der is not None
        return leaf_name(der), tls.selected_alpn_protocol()


def leaf_name(der: bytes) -> str:
    """The first subjectAltName DNS name of a DER certificate."""
    cert = x509.load_der_x509_certificate(der)
    return str(cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
               .get_values_for_type(x509.DNSName)[0])


def poll(check: Callable[[], bool], deadline: float = 10.0) -> None:
    """Wait for ``check()`` to hold (a reload is seen by the next handshakes)."""
    end = time.monotonic() + deadline
    while not check():
        assert time.monotonic() < end, "condition not reached before the deadline"
        time.sleep(0.02)


@pytest.fixture
def certs(tmp_path: Path) -> dict[str, tuple[Path, Path]]:
    """mail.example.com (default), *.example.org and imap.example.net, each its own certificate."""
    return {
        "default": make_certificate(tmp_path, "default", ["mail.example.com"]),
        "wild": make_certificate(tmp_path, "wild", ["*.example.org"]),
        "net": make_certificate(tmp_path, "net", ["imap.example.net", "pop.example.net"]),
    }


def tls_config(certs: dict[str, tuple[Path, Path]], **extra: Any) -> dict[str, dict[str, Any]]:
    """POP3 with both listeners; [tls] with the three certificates."""
    default, wild, net = certs["default"], certs["wild"], certs["net"]
    tls = {"cert_file": str(default[0]), "key_file": str(default[1]),
           "certificates": [{"cert_file": str(wild[0]), "key_file": str(wild[1])},
                            {"cert_file": str(net[0]), "key_file": str(net[1])}], **extra}
    return {"tls": tls, "pop3": {"tls_addr": "127.0.0.1:0"}}


# ------------------------------------------------------------------ the set itself, without sockets


def test_set_matches_exact_then_wildcard_then_default(certs: dict[str, tuple[Path, Path]], tmp_path: Path) -> None:
    loaded = [read_certificate(*certs[k]) for k in ("default", "wild", "net")]
    chosen = CertificateSet(loaded)
    assert chosen.match("MAIL.example.com.") is loaded[0]
    assert chosen.match("imap.example.org") is loaded[1]
    assert chosen.match("example.org") is loaded[0]  # a wildcard covers one label, not the parent
    assert chosen.match("a.b.example.org") is loaded[0]
    assert chosen.match("pop.example.net") is loaded[2]
    assert chosen.match(None) is loaded[0]
    assert chosen.match("unknown.test") is loaded[0]
    assert CertificateSet(loaded, "x.example.org").match(None) is loaded[1]
    with pytest.raises(ConfigError, match="default_name"):
        CertificateSet(loaded, "nothing.test")
    cn_only = read_certificate(*make_certificate(tmp_path, "cn", [], cn="legacy.example.com"))
    assert cn_only.names == ("legacy.example.com",)
    renamed = read_certificate(*certs["net"], names=["other.test"])
    assert renamed.names == ("other.test",)


def test_bad_files_are_config_errors_naming_the_file(certs: dict[str, tuple[Path, Path]], tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate")
    with pytest.raises(ConfigError, match=r"garbage\.pem"):
        read_certificate(garbage, certs["default"][1])
    with pytest.raises(ConfigError, match="cannot load"):  # key of another certificate
        read_certificate(certs["default"][0], certs["wild"][1])
    section = {"cert_file": "", "key_file": "", "default_name": "", "min_version": "1.2", "watch_interval": 0,
               "certificates": [{"cert_file": str(certs["wild"][0])}]}
    with pytest.raises(ConfigError, match=r"\[\[tls.certificates\]\] #1"):
        FileCertificates(section)


def test_failed_reload_keeps_serving_the_previous_certificates(certs: dict[str, tuple[Path, Path]]) -> None:
    section = {"cert_file": str(certs["default"][0]), "key_file": str(certs["default"][1]), "default_name": "",
               "min_version": "1.2", "watch_interval": 0, "certificates": []}
    files = FileCertificates(section)
    before = files.current()
    certs["default"][0].write_text("half-written")
    assert files.reload() is False
    assert files.current() is before


# ------------------------------------------------------------------ real handshakes


def test_sni_selects_the_certificate_and_alpn_is_the_protocols(sora_server: Any,
                                                                certs: dict[str, tuple[Path, Path]]) -> None:
    srv = sora_server(plugins=["pop3"], config=tls_config(certs))
    port = srv.port("pop3", tls=True)
    assert served(port, "mail.example.com")[0] == "mail.example.com"
    assert served(port, "imap.example.org")[0] == "*.example.org"
    assert served(port, "pop.example.net")[0] == "imap.example.net"
    assert served(port, None)[0] == "mail.example.com"
    assert served(port, "unknown.test")[0] == "mail.example.com"
    # ALPN: the POP3 listener agrees to pop3 only, and a client without ALPN still connects
    assert served(port, "pop.example.net", alpn=["imap", "pop3"]) == ("imap.example.net", "pop3")
    assert served(port, "pop.example.net", alpn=["imap"])[1] is None
    assert served(port, None, alpn=None)[1] is None
    # TLS 1.2 is accepted by default ([tls] min_version = "1.2")
    assert served(port, None, max_version=ssl.TLSVersion.TLSv1_2)[0] == "mail.example.com"
    assert srv.kernel.tls_context(protocol="pop3").minimum_version == ssl.TLSVersion.TLSv1_2


def test_default_name_and_minimum_tls_13(sora_server: Any, certs: dict[str, tuple[Path, Path]]) -> None:
    srv = sora_server(plugins=["pop3"], config=tls_config(certs, default_name="pop.example.net", min_version="1.3"))
    port = srv.port("pop3", tls=True)
    assert served(port, None)[0] == "imap.example.net"
    assert served(port, None, max_version=ssl.TLSVersion.TLSv1_3)[0] == "imap.example.net"
    with pytest.raises(ssl.SSLError):
        served(port, None, max_version=ssl.TLSVersion.TLSv1_2)


def stls_served(port: int, server_name: str | None) -> str:
    """The certificate POP3 STLS serves for ``server_name``."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    client = poplib.POP3("127.0.0.1", port, timeout=10)
    try:
        client._tls_established = False  # type: ignore[attr-defined]
        resp = client._shortcmd("STLS")  # type: ignore[attr-defined]
        assert resp.startswith(b"+OK")
        client.sock = context.wrap_socket(client.sock, server_hostname=server_name)
        client.file = client.sock.makefile("rb")
        der = client.sock.getpeercert(binary_form=True)
        assert der is not None
        assert client.capa()  # the session goes on over TLS
        return leaf_name(der)
    finally:
        client.quit()


def test_file_change_is_served_without_a_signal(sora_server: Any, certs: dict[str, tuple[Path, Path]],
                                                tmp_path: Path) -> None:
    srv = sora_server(plugins=["pop3"], config=tls_config(certs, watch_interval="50ms"))
    tls_port, plain_port = srv.port("pop3", tls=True), srv.port("pop3")
    assert served(tls_port, "x.example.org")[0] == "*.example.org"
    assert stls_served(plain_port, "x.example.org") == "*.example.org"
    # the wildcard certificate is renewed in place with one more name
    make_certificate(tmp_path, "wild", ["renewed.example.org", "*.example.org"])
    poll(lambda: served(tls_port, "x.example.org")[0] == "renewed.example.org")
    assert stls_served(plain_port, "x.example.org") == "renewed.example.org"


def test_sighup_reload_applies_to_implicit_tls_and_starttls(sora_server: Any, certs: dict[str, tuple[Path, Path]],
                                                            tmp_path: Path) -> None:
    srv = sora_server(plugins=["pop3"], config=tls_config(certs, watch_interval=0))
    tls_port, plain_port = srv.port("pop3", tls=True), srv.port("pop3")
    assert served(tls_port, None)[0] == "mail.example.com"
    make_certificate(tmp_path, "default", ["new.example.com", "mail.example.com"])
    assert served(tls_port, None)[0] == "mail.example.com"  # watching is off: no change without the signal
    srv.kernel.reload_tls()  # what the SIGHUP handler of `sora serve` calls
    assert served(tls_port, None)[0] == "new.example.com"
    assert stls_served(plain_port, None) == "new.example.com"
