"""STARTTLS and the implicit-TLS listener, with the kernel's shared test certificate."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from sieve_support import ADDRESS, PASSWORD, SieveClient, Wire, plain, start_env

from sora_kernel.testing import SoraTestServer


def _tls_config(cert: tuple[Path, Path], **managesieve: object) -> dict[str, dict[str, object]]:
    return {"tls": {"cert_file": str(cert[0]), "key_file": str(cert[1])}, "managesieve": dict(managesieve)}


def test_starttls_then_capabilities_again_and_plain_allowed(
        sora_server: Callable[..., SoraTestServer], sora_certificate: tuple[Path, Path]) -> None:
    env = start_env(sora_server, _tls_config(sora_certificate, secure_networks=[]))
    wire = env.wire()
    assert b'"STARTTLS"\r\n' in wire.greeting and b'"SASL" "SCRAM-SHA-256"\r\n' in wire.greeting
    assert wire.cmd(f'AUTHENTICATE "PLAIN" "{plain()}"').startswith(b"NO (ENCRYPT-NEEDED)")
    wire.send("STARTTLS\r\n")
    assert wire.line() == b'OK "Begin TLS negotiation now."\r\n'
    wire.starttls()
    after = wire.response()
    assert after.endswith(b'OK "TLS negotiation successful."\r\n')
    assert b"STARTTLS" not in after and b'"SASL" "SCRAM-SHA-256 PLAIN LOGIN"\r\n' in after
    assert wire.cmd("STARTTLS") == b'NO "TLS is already active."\r\n'
    wire.login()
    assert wire.cmd('PUTSCRIPT "a" "keep;"') == b'OK "Putscript completed."\r\n'


def test_starttls_drops_pipelined_plaintext(
        sora_server: Callable[..., SoraTestServer], sora_certificate: tuple[Path, Path]) -> None:
    env = start_env(sora_server, _tls_config(sora_certificate))
    wire = env.wire()
    wire.send(f'STARTTLS\r\nAUTHENTICATE "PLAIN" "{plain()}"\r\n')  # injected before the handshake
    assert wire.line() == b'OK "Begin TLS negotiation now."\r\n'
    wire.starttls()
    assert wire.response().endswith(b'OK "TLS negotiation successful."\r\n')
    assert wire.cmd("LISTSCRIPTS") == b'NO "LISTSCRIPTS is not valid before authentication."\r\n'


def test_implicit_tls_listener(sora_server: Callable[..., SoraTestServer],
                               sora_certificate: tuple[Path, Path]) -> None:
    env = start_env(sora_server, _tls_config(sora_certificate, tls_addr="127.0.0.1:0", secure_networks=[]))
    port = env.srv.port("managesieve", tls=True)
    wire = Wire(port, tls=True)
    assert wire.greeting.endswith(b'OK "Sora ManageSieve server ready."\r\n')
    assert b"STARTTLS" not in wire.greeting and b'"SASL" "SCRAM-SHA-256 PLAIN LOGIN"\r\n' in wire.greeting
    wire.login()
    client = SieveClient("127.0.0.1", port, tls=True)
    assert client.authenticate_plain(ADDRESS, PASSWORD).ok
    assert client.putscript("s", "keep;").ok
    assert client.listscripts() == [("s", False)]
