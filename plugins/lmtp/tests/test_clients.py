"""Real clients against the LMTP listener: smtplib.LMTP, TLS, delivery actions from another
plugin, shutdown, and the benchmark (library and ``sora bench lmtp`` command)."""

from __future__ import annotations

import asyncio
import json
import smtplib
import socket
import ssl
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
import typer
from sora_plugin_lmtp import plugin
from sora_plugin_lmtp.bench import run_bench
from typer.testing import CliRunner

from sora_kernel.api import ActionKind, Delivery, DeliveryAction, hookimpl


def test_smtplib_lmtp(sora_server: Any, stored: Any) -> None:
    srv = sora_server(plugins=["lmtp"])
    a = srv.create_account("a@example.com")
    message = EmailMessage()
    message["From"] = "Sender <s@example.org>"
    message["To"] = "a@example.com"
    message["Subject"] = "with attachment"
    message.set_content("Hello,\n.\nsee attached.\n")
    message.add_attachment(bytes(range(256)) * 40, maintype="application", subtype="octet-stream",
                           filename="blob.bin")
    with smtplib.LMTP("127.0.0.1", srv.port("lmtp")) as client:
        refused = client.send_message(message, to_addrs=["a@example.com", "ghost@example.com"])
        assert refused == {"ghost@example.com": (550, b"5.1.1 <ghost@example.com> No such user here")}
        assert client.sendmail("", ["A@example.com"], b"Subject: second\r\n\r\nbody\r\n") == {}
        assert client.has_extn("chunking") and client.has_extn("size")
        with pytest.raises(smtplib.SMTPRecipientsRefused):
            client.sendmail("s@example.org", ["ghost@example.com"], b"x")
    first, second = stored(srv, a)
    assert b"Subject: with attachment" in first and b'filename="blob.bin"' in first
    assert b"\r\n.\r\nsee attached." in first  # dot-stuffed by smtplib, unstuffed here
    assert second.startswith(b"Return-Path: <>\r\n") and second.endswith(b"\r\nbody\r\n")


class FilterPlugin:
    """Stands in for Sieve: files ``+junk`` mail, rejects ``+reject``, discards ``+drop``."""

    @hookimpl
    def sora_delivery_actions(self, kernel: Any, delivery: Delivery) -> list[DeliveryAction] | None:
        """Actions by subaddress."""
        detail = delivery.recipient.detail
        if detail == "junk":
            return [DeliveryAction(ActionKind.FILEINTO, mailbox="Junk")]
        if detail == "reject":
            return [DeliveryAction(ActionKind.REJECT, reason="Not wanted here")]
        if detail == "drop":
            return [DeliveryAction(ActionKind.DISCARD)]
        return None


def test_delivery_actions_from_another_plugin(sora_server: Any, transcript: Any, stored: Any) -> None:
    srv = sora_server(plugins=["lmtp"], extra_plugins=[("testsieve", FilterPlugin())])
    a = srv.create_account("a@example.com")
    c = transcript(srv.port("lmtp"))
    c.hello()
    c.send(b"MAIL FROM:<s@example.org>\r\nRCPT TO:<a+junk@example.com>\r\nRCPT TO:<a+reject@example.com>\r\n"
           b"RCPT TO:<a+drop@example.com>\r\nRCPT TO:<a@example.com>\r\nDATA\r\n")
    assert [c.reply() for _ in range(6)][-1].startswith(b"354")
    c.send(b"Subject: filtered\r\n\r\nbody\r\n.\r\n")
    replies = [c.reply() for _ in range(4)]
    assert replies[0].startswith(b"250 2.0.0 <a+junk@example.com> Ok")
    assert replies[1] == b"550 5.7.1 <a+reject@example.com> Not wanted here\r\n"
    assert replies[2].startswith(b"250 2.0.0 <a+drop@example.com> Ok")
    assert replies[3].startswith(b"250 2.0.0 <a@example.com> Ok")
    assert len(stored(srv, a, "Junk")) == 1
    assert len(stored(srv, a, "INBOX")) == 1


@pytest.fixture(scope="session")
def certificate(sora_certificate: tuple[Path, Path]) -> tuple[Path, Path]:
    """The kernel's shared self-signed test certificate."""
    return sora_certificate


def _client_context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def test_starttls_and_implicit_tls(sora_server: Any, certificate: tuple[Path, Path], stored: Any) -> None:
    cert, key = certificate
    srv = sora_server(plugins=["lmtp"], config={"tls": {"cert_file": str(cert), "key_file": str(key)},
                                                "lmtp": {"tls_addr": "127.0.0.1:0"}})
    a = srv.create_account("a@example.com")
    with smtplib.LMTP("127.0.0.1", srv.port("lmtp")) as client:
        client.ehlo()
        assert client.has_extn("starttls")
        assert client.starttls(context=_client_context())[0] == 220
        client.ehlo()
        assert not client.has_extn("starttls")
        client.sendmail("s@example.org", ["a@example.com"], b"Subject: over starttls\r\n\r\nx\r\n")

    raw = socket.create_connection(("127.0.0.1", srv.port("lmtp", tls=True)), timeout=10)
    with _client_context().wrap_socket(raw, server_hostname="localhost") as tls:
        reader = tls.makefile("rb")
        assert reader.readline() == b"220 test.local LMTP Sora ready\r\n"
        tls.sendall(b"LHLO mta.test\r\nMAIL FROM:<s@example.org>\r\nRCPT TO:<a@example.com>\r\nDATA\r\n")
        lines = [reader.readline() for _ in range(10)]
        assert b"250-STARTTLS\r\n" not in lines and lines[-1].startswith(b"354")
        tls.sendall(b"Subject: over implicit tls\r\n\r\nx\r\n.\r\n")
        assert reader.readline().startswith(b"250 2.0.0 <a@example.com> Ok")
    first, second = stored(srv, a)
    assert b"over starttls" in first and b"over implicit tls" in second


def test_shutdown_says_goodbye(sora_server: Any, transcript: Any) -> None:
    srv = sora_server(plugins=["lmtp"])
    c = transcript(srv.port("lmtp"))
    c.hello()
    srv.portal.call(srv.kernel.shutdown)
    assert c.reply() == b"421 4.3.2 test.local Service shutting down, try again later\r\n"
    assert c.closed()


def test_bench_against_sora(sora_server: Any, stored: Any) -> None:
    srv = sora_server(plugins=["lmtp"])
    a = srv.create_account("a@example.com")
    b = srv.create_account("b@example.com")
    port = srv.port("lmtp")
    figures = asyncio.run(run_bench("127.0.0.1", port, ["a@example.com", "b@example.com"],
                                    messages=20, concurrency=3))
    assert figures["errors"] == 0 and figures["delivered"] == 20, figures
    chunked = asyncio.run(run_bench("127.0.0.1", port, ["a@example.com", "b@example.com"],
                                    messages=6, concurrency=2, per_message=2, chunking=True, seed=2))
    assert chunked["errors"] == 0 and chunked["delivered"] == 12, chunked
    assert len(stored(srv, a)) == 16 and len(stored(srv, b)) == 16

    app, bench = typer.Typer(), typer.Typer()
    app.add_typer(bench, name="bench")
    plugin.sora_cli(app, bench)
    result = CliRunner().invoke(app, ["bench", "lmtp", "--host", "127.0.0.1", "--port", str(port),
                                      "--recipients", "a@example.com,ghost@example.com",
                                      "--messages", "4", "--concurrency", "2", "--seed", "3"])
    assert result.exit_code == 1  # the unknown recipient counts as errors
    text = result.stdout  # the server thread's log lines may be interleaved before the JSON
    output, _ = json.JSONDecoder().raw_decode(text[text.index('{\n  "server"'):])
    assert output["delivered"] == 2 and output["errors"] == 2
    assert set(output["latency_ms"]) == {"p50", "p99", "max"}
    assert {"messages_per_s", "mb_per_s"} <= set(output)
