"""Real loopback peers for relay tests: an aiosmtpd MTA with switchable answers and a tiny HTTP endpoint."""

from __future__ import annotations

import asyncio
import email
import json
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session


def free_port() -> int:
    """An ephemeral loopback port (aiosmtpd's Controller needs a concrete one)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(predicate: Callable[[], Any], timeout: float = 20.0, what: str = "condition") -> Any:
    """Poll until ``predicate()`` is truthy (returned), failing after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


@dataclass
class Received:
    """One message the MTA accepted."""

    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    helo: str
    login: str

    @property
    def message(self) -> email.message.Message:
        """The parsed message."""
        return email.message_from_bytes(self.data)


@dataclass
class SinkHandler:
    """aiosmtpd handler: ``mode`` is accept, tempfail (451), permfail (550), rcpt550, drop or hold; partial
    refuses recipients starting with ``later`` (450) and ``gone`` (550) and takes the others.

    ``hold``: the first ``hold_after`` messages are accepted, later ones wait at DATA until ``release`` is
    set, then get 451 and are not recorded (the remote never committed them).
    """

    mode: str = "accept"
    hold_after: int = 0
    received: list[Received] = field(default_factory=list)
    connections: int = 0
    held: int = 0
    release: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_EHLO(self, server: SMTP, session: Session, envelope: Envelope, hostname: str,
                          responses: list[str]) -> list[str]:
        with self.lock:
            self.connections += 1
        session.host_name = hostname
        return responses

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str,
                          rcpt_options: list[str]) -> str:
        if self.mode == "rcpt550" or (self.mode == "partial" and address.startswith("gone")):
            return "550 5.1.1 No such user here"
        if self.mode == "partial" and address.startswith("later"):
            return "450 4.2.1 Mailbox busy"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        mode = self.mode
        if mode == "tempfail":
            return "451 4.3.0 Try again later"
        if mode == "permfail":
            return "554 5.7.1 Message refused"
        if mode == "drop":
            assert server.transport is not None
            server.transport.abort()
            return "421 closing"
        if mode == "hold" and len(self.received) >= self.hold_after:
            with self.lock:
                self.held += 1
            while not self.release.is_set():
                await asyncio.sleep(0.02)
            return "451 4.3.0 The server restarted, try again"
        auth = session.auth_data
        login = auth.decode() if isinstance(auth, bytes) else ""
        with self.lock:
            self.received.append(Received(envelope.mail_from or "", list(envelope.rcpt_tos),
                                          bytes(envelope.original_content or b""), session.host_name or "",
                                          login))
        return "250 2.0.0 Ok: queued"

    def message_ids(self) -> list[str]:
        """Message-ID of every accepted message, in order."""
        with self.lock:
            return [str(r.message["Message-ID"]) for r in self.received]


class SmtpSink:
    """A running aiosmtpd server on 127.0.0.1 (plain, STARTTLS with AUTH, or implicit TLS)."""

    def __init__(self, *, tls: ssl.SSLContext | None = None, starttls: ssl.SSLContext | None = None,
                 users: dict[str, str] | None = None) -> None:
        self.handler = SinkHandler()
        self.port = free_port()
        users = users or {}

        def authenticate(server: SMTP, session: Session, envelope: Envelope, mechanism: str,
                         auth_data: Any) -> AuthResult:
            if isinstance(auth_data, LoginPassword) and users.get(auth_data.login.decode()) == \
                    auth_data.password.decode():
                return AuthResult(success=True, auth_data=auth_data.login)
            return AuthResult(success=False, handled=False)

        kwargs: dict[str, Any] = {"hostname": "127.0.0.1", "port": self.port, "decode_data": False}
        if tls is not None:
            kwargs["ssl_context"] = tls
        if starttls is not None:
            kwargs.update(tls_context=starttls, require_starttls=True)
        if users:
            kwargs.update(authenticator=authenticate, auth_required=True)
        self.controller = Controller(self.handler, **kwargs)
        self.controller.start()

    @property
    def addr(self) -> str:
        """``host:port`` for ``[relay] smtp_host``."""
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        """Stop the server."""
        self.handler.release.set()
        if self.controller._thread is not None:
            self.controller.stop()


@dataclass
class HttpSink:
    """A ThreadingHTTPServer on 127.0.0.1 recording POSTs and answering ``status``."""

    status: int = 200
    requests: list[tuple[dict[str, str], Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length))
                sink.requests.append(({k.lower(): v for k, v in self.headers.items()}, body))
                answer = json.dumps({"ok": sink.status < 300}).encode()
                self.send_response(sink.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        """The endpoint URL."""
        return f"http://127.0.0.1:{self.server.server_address[1]}/deliver"

    def stop(self) -> None:
        """Stop the server."""
        self.server.shutdown()
        self.server.server_close()


def message(subject: str, *, sender: str = "alice@example.com", to: str = "bob@example.net",
            message_id: str | None = None) -> bytes:
    """A small RFC 5322 message with a unique Message-ID."""
    mid = message_id or f"<{subject.replace(' ', '-')}.{time.monotonic_ns()}@example.com>"
    return (f"From: {sender}\r\nTo: {to}\r\nSubject: {subject}\r\nMessage-ID: {mid}\r\n"
            f"Date: Wed, 02 Dec 2026 12:00:00 +0000\r\n\r\nHello {subject}.\r\n").encode()
