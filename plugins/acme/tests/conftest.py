"""Fixtures for the ACME plugin: Debian's ``pebble`` ACME test server on loopback, with
``pebble-challtestsrv`` as its DNS server (every name resolves to 127.0.0.1)."""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import shutil
import socket
import ssl
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

INSTALL = "apt-get install -y pebble (Debian's ACME test server; .ci/run installs it)"


@dataclass(frozen=True)
class Pebble:
    """A running pebble: its directory URL, the CA file for its API, the root of what it issues."""

    directory: str
    api_ca_file: Path
    root_file: Path
    http_port: int
    tls_port: int


def _free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _api_certificate(folder: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pebble test API")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = folder / "api.pem", folder / "api.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


def _get(url: str, ca_file: Path) -> bytes:
    context = ssl.create_default_context(cafile=str(ca_file))
    with urllib.request.urlopen(url, context=context, timeout=5) as response:
        return bytes(response.read())


@pytest.fixture(scope="session")
def pebble(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pebble]:
    """pebble and its DNS on free loopback ports; fails under CI when pebble is missing, else skips."""
    if not shutil.which("pebble") or not shutil.which("pebble-challtestsrv"):
        if os.environ.get("CI"):
            pytest.fail(f"pebble is not installed: {INSTALL}")
        pytest.skip(f"pebble is not installed: {INSTALL}")
    folder = tmp_path_factory.mktemp("pebble")
    cert_file, key_file = _api_certificate(folder)
    api_port, management_port, http_port, tls_port = (_free_port() for _ in range(4))
    dns_port, dns_management = _free_port(socket.SOCK_DGRAM), _free_port()
    config = folder / "pebble.json"
    config.write_text(json.dumps({"pebble": {
        "listenAddress": f"127.0.0.1:{api_port}", "managementListenAddress": f"127.0.0.1:{management_port}",
        "certificate": str(cert_file), "privateKey": str(key_file), "httpPort": http_port, "tlsPort": tls_port,
        "ocspResponderURL": "", "externalAccountBindingRequired": False}}))
    log_dns, log_pebble = (folder / "dns.log").open("wb"), (folder / "pebble.log").open("wb")
    dns = subprocess.Popen(
        ["pebble-challtestsrv", "-dns01", f"127.0.0.1:{dns_port}", "-http01", "", "-https01", "", "-tlsalpn01", "",
         "-management", f"127.0.0.1:{dns_management}", "-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""],
        stdout=log_dns, stderr=subprocess.STDOUT)
    env = {**os.environ, "PEBBLE_VA_NOSLEEP": "1", "PEBBLE_WFE_NONCEREJECT": "0", "PEBBLE_AUTHZREUSE": "0"}
    server = subprocess.Popen(["pebble", "-config", str(config), "-dnsserver", f"127.0.0.1:{dns_port}",
                               "-strict=false"], stdout=log_pebble, stderr=subprocess.STDOUT, env=env)
    try:
        directory = f"https://127.0.0.1:{api_port}/dir"
        deadline = time.monotonic() + 30
        while True:
            try:
                _get(directory, cert_file)
                root = _get(f"https://127.0.0.1:{management_port}/roots/0", cert_file)
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError("pebble did not start: " + (folder / "pebble.log").read_text()) from None
                time.sleep(0.05)
        root_file = folder / "root.pem"
        root_file.write_bytes(root)
        yield Pebble(directory, cert_file, root_file, http_port, tls_port)
    finally:
        for process in (server, dns):
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
        log_dns.close()
        log_pebble.close()
