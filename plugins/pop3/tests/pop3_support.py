"""POP3 test support: a running server with an account, and a raw-socket transcript client."""

from __future__ import annotations

import socket
import ssl
import struct
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from sora_kernel.testing import SoraTestServer

ADDRESS = "alice@example.com"
PASSWORD = "correct horse"


@dataclass
class Pop3Env:
    """A running server, one account and its INBOX, and the UIDs of the messages put in."""

    srv: SoraTestServer
    account: Any
    inbox: Any
    uids: list[int]
    raws: list[bytes]

    @property
    def port(self) -> int:
        """The plain POP3 listener's port."""
        return self.srv.port("pop3")

    def append(self, raw: bytes) -> int:
        """Store a message in the INBOX; returns its UID."""
        result = self.srv.call(self.srv.store.append, self.account.id, self.inbox.id, raw)
        self.uids.append(result.uid)
        self.raws.append(raw)
        return int(result.uid)

    def rows(self) -> dict[int, Any]:
        """Every message row of the INBOX (expunged ones included) by UID."""
        rows = self.srv.call(self.srv.store.fetch, self.inbox.id, [(1, 2**31)])
        return {row.uid: row for row in rows}

    def wire(self, **kwargs: Any) -> Wire:
        """A raw client on the plain listener, greeting read."""
        return Wire(self.port, **kwargs)

    def wait_unlocked(self, timeout: float = 5) -> None:
        """Wait until no session holds the maildrop lock (a dropped session has ended)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.srv.call(self.srv.store.try_lock, "pop3", self.account.id, "probe", 0.001):
                self.srv.call(self.srv.store.release_lock, "pop3", self.account.id, "probe")
                return
            time.sleep(0.02)
        raise AssertionError("maildrop lock still held")


def message(subject: str, body: str = "Hello.\r\n") -> bytes:
    """A small CRLF message."""
    return (f"From: bob@example.com\r\nTo: {ADDRESS}\r\nSubject: {subject}\r\n"
            f"Message-ID: <{subject.replace(' ', '.')}@example.com>\r\n\r\n{body}").encode()


def start_env(sora_server: Callable[..., SoraTestServer], config: dict[str, dict[str, Any]] | None = None,
              messages: Iterable[bytes] = ()) -> Pop3Env:
    """A server with the pop3 plugin, ``alice`` and her messages."""
    srv = sora_server(plugins=["pop3"], config=config or {})
    account = srv.create_account(ADDRESS, PASSWORD)
    srv.call(srv.store.ensure_default_mailboxes, account.id)
    inbox = srv.call(srv.store.get_mailbox, account.id, "INBOX")
    env = Pop3Env(srv, account, inbox, [], [])
    for raw in messages:
        env.append(raw)
    return env


class Wire:
    """A raw-socket POP3 client for transcript tests: bytes sent, bytes expected."""

    def __init__(self, port: int, host: str = "127.0.0.1", timeout: float = 5, greet: bool = True,
                 rcvbuf: int = 0) -> None:
        self.sock: socket.socket | ssl.SSLSocket
        if rcvbuf:  # a fixed small receive window (set before connecting, which turns autotuning off)
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            self.sock.settimeout(timeout)
            self.sock.connect((host, port))
        else:
            self.sock = socket.create_connection((host, port), timeout=timeout)
        self.file = self.sock.makefile("rb")
        self.greeting = self.line() if greet else b""

    def send(self, data: bytes) -> None:
        """Send raw bytes."""
        self.sock.sendall(data)

    def line(self) -> bytes:
        """One response line, CRLF included."""
        return self.file.readline()

    def cmd(self, line: str | bytes) -> bytes:
        """Send a command, return the one-line answer."""
        self.send((line.encode() if isinstance(line, str) else line) + b"\r\n")
        return self.line()

    def multiline(self) -> bytes:
        """The rest of a multi-line response up to and including the ``.CRLF`` terminator."""
        out = b""
        while True:
            line = self.line()
            if not line:
                raise AssertionError(f"connection closed inside a multi-line response: {out!r}")
            out += line
            if line == b".\r\n":
                return out

    def login(self, user: str = ADDRESS, password: str = PASSWORD) -> None:
        """USER/PASS, asserting success."""
        assert self.cmd(f"USER {user}").startswith(b"+OK")
        answer = self.cmd(f"PASS {password}")
        assert answer.startswith(b"+OK"), answer

    def starttls(self) -> None:
        """Wrap the socket in TLS (after a +OK to STLS)."""
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        self.sock = context.wrap_socket(self.sock, server_hostname="localhost")
        self.file = self.sock.makefile("rb")

    def closed(self) -> bool:
        """Whether the server closed the connection (EOF)."""
        return self.file.read() == b""

    def close(self) -> None:
        """Drop the connection without QUIT."""
        self.file.close()
        self.sock.close()

    def reset(self) -> None:
        """Drop the connection with a TCP reset (SO_LINGER 0) instead of a FIN."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close()


class SessionLog:
    """The structlog events of a test (:func:`structlog.testing.capture_logs`), which also see
    the server's thread; for checking how sessions ended."""

    def __init__(self, entries: list[dict[str, Any]]) -> None:
        self.entries = entries

    def sessions(self, protocol: str = "pop3") -> list[dict[str, Any]]:
        """The kernel's per-session lines (one per ended connection)."""
        return [e for e in list(self.entries) if e["event"] == "session" and e.get("protocol") == protocol]

    def wait_sessions(self, count: int, timeout: float = 5) -> list[dict[str, Any]]:
        """Wait until ``count`` sessions have ended; returns their lines."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            sessions = self.sessions()
            if len(sessions) >= count:
                return sessions
            time.sleep(0.02)
        raise AssertionError(f"{len(self.sessions())} of {count} sessions ended")

    def errors(self) -> list[dict[str, Any]]:
        """Events logged at error level or above."""
        return [e for e in list(self.entries) if e.get("log_level") in ("error", "exception", "critical")]
