"""JA4 fingerprints: the spec's published vectors, ClientHellos from Python's ssl with fixed settings,
the fingerprint on the connection and in the session line (implicit TLS and STARTTLS), and
``[[tls.client_filters]]`` refusing or tagging clients."""

from __future__ import annotations

import hashlib
import poplib
import socket
import ssl
import struct
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog

from sora_kernel.errors import ConfigError
from sora_kernel.net.ja4 import (
    HelloError,
    client_hello_length,
    hello_message,
    is_grease,
    ja4,
    ja4_raw,
    parse_client_filters,
    parse_client_hello,
)

# ------------------------------------------------------------------ building ClientHellos by hand


def _u16s(values: list[int]) -> bytes:
    return b"".join(struct.pack("!H", v) for v in values)


def _vec(data: bytes, size: int) -> bytes:
    return len(data).to_bytes(size, "big") + data


def encode_hello(ciphers: list[int], extensions: list[tuple[int, bytes]], *, version: int = 0x0303,
                 record_size: int = 16384) -> bytes:
    """TLS records carrying a ClientHello with these ciphers and extensions (in order)."""
    body = (struct.pack("!H", version) + bytes(32) + _vec(bytes(32), 1) + _vec(_u16s(ciphers), 2) + b"\x01\x00"
            + _vec(b"".join(struct.pack("!H", kind) + _vec(data, 2) for kind, data in extensions), 2))
    message = b"\x01" + _vec(body, 3)
    records = b""
    for i in range(0, len(message), record_size):
        chunk = message[i:i + record_size]
        records += b"\x16\x03\x01" + _vec(chunk, 2)
    return records


def sni(name: str) -> bytes:
    """server_name extension data."""
    return _vec(b"\x00" + _vec(name.encode(), 2), 2)


def alpn(*names: bytes) -> bytes:
    """ALPN extension data."""
    return _vec(b"".join(_vec(n, 1) for n in names), 2)


SPEC_CIPHERS = [0x1301, 0x1302, 0x1303, 0xC02B, 0xC02F, 0xC02C, 0xC030, 0xCCA9, 0xCCA8, 0xC013, 0xC014, 0x009C,
                0x009D, 0x002F, 0x0035]
SPEC_EXTENSIONS = [0x001B, 0x0000, 0x0033, 0x0010, 0x4469, 0x0017, 0x002D, 0x000D, 0x0005, 0x0023, 0x0012, 0x002B,
                   0xFF01, 0x000B, 0x000A, 0x0015]
SPEC_SIGNATURES = [0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601]


def spec_hello(*, grease: bool = True, signatures: bool = True, record_size: int = 16384) -> bytes:
    """The ClientHello of the JA4 specification's example (JA4.md), GREASE values added."""
    data = {0x0000: sni("example.com"), 0x0010: alpn(b"h2", b"http/1.1"),
            0x000D: _vec(_u16s(SPEC_SIGNATURES), 2), 0x002B: _vec(_u16s([0x2A2A, 0x0304, 0x0303]), 1)}
    extensions = [(kind, data.get(kind, b"")) for kind in SPEC_EXTENSIONS if signatures or kind != 0x000D]
    ciphers = SPEC_CIPHERS
    if grease:
        ciphers = [0x0A0A, *SPEC_CIPHERS]
        extensions = [(0x1A1A, b""), *extensions, (0xFAFA, b"\x00")]
    return encode_hello(ciphers, extensions, version=0x0303, record_size=record_size)


def fingerprint(records: bytes) -> str:
    """JA4 of TLS records holding a ClientHello."""
    length = client_hello_length(records)
    assert length is not None
    return ja4(parse_client_hello(hello_message(records[:length])))


# ------------------------------------------------------------------ published vectors


def test_the_specifications_example() -> None:
    records = spec_hello()
    hello = parse_client_hello(hello_message(records))
    assert hello.server_name == "example.com" and hello.alpn == (b"h2", b"http/1.1")
    assert ja4(hello) == "t13d1516h2_8daaf6152771_e5627efa2ab1"
    assert ja4(hello, original=True) == "t13d1516h2_acb858a92679_18f69afefd3d"
    assert ja4_raw(hello) == (
        "t13d1516h2_002f,0035,009c,009d,1301,1302,1303,c013,c014,c02b,c02c,c02f,c030,cca8,cca9_"
        "0005,000a,000b,000d,0012,0015,0017,001b,0023,002b,002d,0033,4469,ff01_"
        "0403,0804,0401,0503,0805,0501,0806,0601")
    assert ja4_raw(hello, original=True) == (
        "t13d1516h2_1301,1302,1303,c02b,c02f,c02c,c030,cca9,cca8,c013,c014,009c,009d,002f,0035_"
        "001b,0000,0033,0010,4469,0017,002d,000d,0005,0023,0012,002b,ff01,000b,000a,0015_"
        "0403,0804,0401,0503,0805,0501,0806,0601")
    # GREASE changes nothing; a hello split over several records reads the same
    assert fingerprint(spec_hello(grease=False)) == fingerprint(spec_hello(record_size=100)) == ja4(hello)


def test_without_signature_algorithms_the_string_has_no_underscore() -> None:
    hello = parse_client_hello(hello_message(spec_hello(signatures=False)))
    # the spec: "0005,000a,000b,0012,...,ff01 = 6d807ffa2a79" is the list *with* 000d; ours lacks it
    sorted_list = ",".join(f"{e:04x}" for e in sorted(SPEC_EXTENSIONS) if e not in (0x0000, 0x0010, 0x000D))
    assert ja4(hello).endswith("_" + hashlib.sha256(sorted_list.encode()).hexdigest()[:12])
    assert ja4(hello).startswith("t13d1515h2_")
    assert hashlib.sha256(b"0005,000a,000b,000d,0012,0015,0017,001b,0023,002b,002d,0033,4469,ff01"
                          ).hexdigest()[:12] == "6d807ffa2a79"  # the spec's own number for that string


def test_browser_vector_hashes() -> None:
    # a published Chrome 143 capture (JA4 t13d1516h2_8daaf6152771_d8a2da3f94cd): its raw lists
    ciphers = [0x1301, 0x1302, 0x1303, 0xC02B, 0xC02F, 0xC02C, 0xC030, 0xCCA9, 0xCCA8, 0xC013, 0xC014, 0x009C,
               0x009D, 0x002F, 0x0035]
    order = [0x002D, 0x0033, 0x0010, 0xFE0D, 0x0017, 0x44CD, 0x0000, 0x000B, 0x000A, 0x002B, 0xFF01, 0x0023,
             0x0012, 0x0005, 0x000D, 0x001B]
    data = {0x0000: sni("tls.browserleaks.com"), 0x0010: alpn(b"h2", b"http/1.1"),
            0x000D: _vec(_u16s(SPEC_SIGNATURES), 2), 0x002B: _vec(_u16s([0x0304, 0x0303]), 1)}
    records = encode_hello(ciphers, [(k, data.get(k, b"")) for k in order])
    hello = parse_client_hello(hello_message(records))
    assert ja4(hello) == "t13d1516h2_8daaf6152771_d8a2da3f94cd"
    assert ja4(hello, original=True) == "t13d1516h2_acb858a92679_f96a17c57971"


def test_prefix_rules() -> None:
    no_sni = encode_hello([0x002F], [(0x0010, alpn(b"imap"))], version=0x0303)
    assert fingerprint(no_sni).startswith("t12i0101ip_")
    odd_alpn = encode_hello([0x002F, 0x0A0A], [(0x0010, alpn(b"\xabxyz\xcd"))], version=0x0302)
    assert fingerprint(odd_alpn).startswith("t11i0101ad_")  # non-alphanumeric: hex 'a'b..c'd'
    nothing = encode_hello([], [], version=0x0301)
    assert fingerprint(nothing) == "t10i000000_000000000000_000000000000"
    assert is_grease(0x0A0A) and is_grease(0xFAFA) and not is_grease(0x0A0B)


def test_truncated_and_foreign_input() -> None:
    records = spec_hello()
    assert client_hello_length(records[:3]) is None
    assert client_hello_length(records[:-1]) is None
    assert client_hello_length(records + b"more") == len(records)
    with pytest.raises(HelloError):
        client_hello_length(b"GET / HTTP/1.1\r\n")
    message = hello_message(records)
    with pytest.raises(HelloError):
        parse_client_hello(message[:-3] + b"\x00\x05\xff")  # an extension longer than the hello


def python_hello(**settings: Any) -> bytes:
    """The ClientHello records Python's ssl sends with these settings (MemoryBIO, no socket)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    if "ciphers" in settings:
        context.set_ciphers(settings["ciphers"])
    context.maximum_version = settings.get("max_version", ssl.TLSVersion.MAXIMUM_SUPPORTED)
    if "alpn" in settings:
        context.set_alpn_protocols(settings["alpn"])
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    sslobj = context.wrap_bio(incoming, outgoing, server_hostname=settings.get("server_name"))
    with pytest.raises(ssl.SSLWantReadError):
        sslobj.do_handshake()
    return outgoing.read()


def test_python_clients_with_fixed_settings() -> None:
    tls12 = fingerprint(python_hello(max_version=ssl.TLSVersion.TLSv1_2, ciphers="ECDHE-ECDSA-AES128-GCM-SHA256"))
    # one cipher suite plus the renegotiation SCSV (00ff), no SNI, no ALPN
    assert tls12.startswith("t12i02") and tls12[8:10] == "00"
    assert tls12.split("_")[1] == hashlib.sha256(b"00ff,c02b").hexdigest()[:12]
    tls13 = fingerprint(python_hello(server_name="mail.example.com", alpn=["imap"]))
    assert tls13.startswith("t13d") and tls13[8:10] == "ip"
    assert fingerprint(python_hello(server_name="mail.example.com", alpn=["imap"])) == tls13  # stable


# ------------------------------------------------------------------ on real connections


@pytest.fixture
def captured() -> Iterator[list[dict[str, Any]]]:
    """Every structlog event of the test, the server thread's included."""
    with structlog.testing.capture_logs() as entries:
        yield entries


def sessions(entries: list[dict[str, Any]], count: int, deadline: float = 10.0) -> list[dict[str, Any]]:
    """The first ``count`` POP3 session lines, waiting for them."""
    end = time.monotonic() + deadline
    while True:
        found = [e for e in list(entries) if e["event"] == "session" and e.get("protocol") == "pop3"]
        if len(found) >= count:
            return found
        assert time.monotonic() < end, f"{len(found)} of {count} sessions ended"
        time.sleep(0.02)


def client_context(**settings: Any) -> ssl.SSLContext:
    """A client context with the settings of :func:`python_hello`."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    if "ciphers" in settings:
        context.set_ciphers(settings["ciphers"])
    context.maximum_version = settings.get("max_version", ssl.TLSVersion.MAXIMUM_SUPPORTED)
    if "alpn" in settings:
        context.set_alpn_protocols(settings["alpn"])
    return context


def greet(port: int, **settings: Any) -> bytes:
    """Implicit TLS: the first line the server sends."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, \
            client_context(**settings).wrap_socket(raw, server_hostname=settings.get("server_name")) as tls:
        return tls.recv(1024)


def test_fingerprint_logged_and_counted_for_implicit_tls_and_stls(
        sora_server: Any, sora_certificate: tuple[Path, Path], captured: list[dict[str, Any]]) -> None:
    cert, key = sora_certificate
    srv = sora_server(plugins=["pop3"], config={"tls": {"cert_file": str(cert), "key_file": str(key)},
                                                "pop3": {"tls_addr": "127.0.0.1:0"}})
    settings = {"server_name": "localhost", "alpn": ["pop3"]}
    expected = fingerprint(python_hello(**settings))
    assert greet(srv.port("pop3", tls=True), **settings).startswith(b"+OK")
    client = poplib.POP3("127.0.0.1", srv.port("pop3"), timeout=10)
    client.stls(client_context(**settings))
    client.quit()
    first, second = sessions(captured, 2)
    assert first["ja4"] == expected
    assert second["ja4"] == fingerprint(python_hello(alpn=["pop3"]))  # poplib sends no SNI for an IP
    assert second["ja4"].startswith("t13i") and expected.startswith("t13d")
    for value in (first["ja4"], second["ja4"]):
        assert srv.kernel.registry.get_sample_value("sora_tls_client_hellos_total",
                                                    {"protocol": "pop3", "ja4": value}) == 1


def test_client_filters_refuse_and_tag(sora_server: Any, sora_certificate: tuple[Path, Path],
                                       captured: list[dict[str, Any]]) -> None:
    cert, key = sora_certificate
    old = {"max_version": ssl.TLSVersion.TLSv1_2,
           "ciphers": "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256"}
    old_fp = fingerprint(python_hello(**old))
    new_fp = fingerprint(python_hello(server_name="localhost"))
    filters = [{"ja4": ["^t12i"], "action": "refuse", "reason": "TLS 1.2 without SNI"},
               {"ja4": [f"^{new_fp[:10]}", "nomatch"], "action": "tag", "tag": "modern"}]
    srv = sora_server(plugins=["pop3"], config={"tls": {"cert_file": str(cert), "key_file": str(key),
                                                        "client_filters": filters},
                                                "pop3": {"tls_addr": "127.0.0.1:0"}})
    port = srv.port("pop3", tls=True)
    with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
        greet(port, **old)
    assert greet(port, server_name="localhost").startswith(b"+OK")
    assert greet(port, **{**old, "server_name": "localhost"}).startswith(b"+OK")  # t12d: not refused
    lines = sessions(captured, 3)
    refused = [e for e in lines if e["ja4"] == old_fp]
    assert refused and refused[0]["refused"] == "TLS 1.2 without SNI"
    tagged = [e for e in lines if e["ja4"] == new_fp]
    assert tagged and tagged[0]["tags"] == ["modern"]
    assert srv.kernel.registry.get_sample_value("sora_tls_client_filtered_total",
                                                {"protocol": "pop3", "action": "refuse"}) == 1


def test_bad_filter_rules_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="#1: ja4"):
        parse_client_filters([{"action": "refuse"}])
    with pytest.raises(ConfigError, match="#2: action"):
        parse_client_filters([{"ja4": ["x"], "action": "tag", "tag": "t"}, {"ja4": ["x"], "action": "drop"}])
    with pytest.raises(ConfigError, match="needs a tag"):
        parse_client_filters([{"ja4": "x"}])
    with pytest.raises(ConfigError, match="regular expression"):
        parse_client_filters([{"ja4": ["("], "action": "refuse"}])
    with pytest.raises(ConfigError, match="unknown key"):
        parse_client_filters([{"ja4": ["x"], "action": "refuse", "disable_caps": ["IDLE"]}])
