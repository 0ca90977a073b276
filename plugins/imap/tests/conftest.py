"""Fixtures of the IMAP plugin tests: one running server per test module, fresh accounts per
test, and a raw-socket client for transcript tests (bytes sent, bytes expected)."""

from __future__ import annotations

import itertools
import re
import socket
import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

_SRC = str(Path(__file__).resolve().parents[1] / "src")
if _SRC not in sys.path:  # harmless once the plugin is installed (pip install -e plugins/imap)
    sys.path.insert(0, _SRC)

_accounts = itertools.count(1)
_LITERAL = re.compile(rb"\{(\d+)\+?\}\r\n$")


class RawClient:
    """A blocking IMAP connection that shows exactly what the server sends."""

    def __init__(self, port: int, *, host: str = "127.0.0.1", timeout: float = 10.0,
                 sock: socket.socket | None = None) -> None:
        self.sock = sock or socket.create_connection((host, port), timeout=timeout)
        self.sock.settimeout(timeout)
        self.buffer = b""
        self.greeting = self.line()

    def send(self, data: bytes) -> None:
        """Send raw bytes."""
        self.sock.sendall(data)

    def line(self) -> bytes:
        """The next line, CRLF included (b"" at end of stream)."""
        while b"\r\n" not in self.buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                data, self.buffer = self.buffer, b""
                return data
            self.buffer += chunk
        index = self.buffer.index(b"\r\n") + 2
        data, self.buffer = self.buffer[:index], self.buffer[index:]
        return data

    def exactly(self, size: int) -> bytes:
        """Exactly ``size`` bytes."""
        while len(self.buffer) < size:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed")
            self.buffer += chunk
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data

    def response_line(self) -> bytes:
        """One response, literals included."""
        out = self.line()
        while (match := _LITERAL.search(out)) is not None:
            out += self.exactly(int(match.group(1)))
            out += self.line()
        return out

    def until(self, tag: bytes) -> bytes:
        """Everything up to and including the tagged line of ``tag``."""
        out = b""
        while True:
            line = self.response_line()
            if not line:
                raise ConnectionError(f"closed before {tag!r}; got {out!r}")
            out += line
            if line.startswith(tag + b" "):
                return out

    def cmd(self, command: bytes) -> bytes:
        """Send ``command`` (tag first) plus CRLF; return the whole answer."""
        self.send(command + b"\r\n")
        return self.until(command.split(b" ", 1)[0])

    def login(self, user: str, password: str) -> bytes:
        """LOGIN, asserting success."""
        out = self.cmd(b"L1 LOGIN " + user.encode() + b" " + password.encode())
        assert out.splitlines()[-1].startswith(b"L1 OK"), out
        return out

    def close(self) -> None:
        """Close the socket."""
        self.sock.close()


@pytest.fixture(scope="module")
def imap_server(sora_database: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One server with the IMAP plugin for the whole test module."""
    from sora_kernel.testing import start_test_server

    with ExitStack() as stack:
        yield start_test_server(stack, sora_database, tmp_path_factory.mktemp("imap"), plugins=["imap"])


@pytest.fixture
def account(imap_server: Any) -> tuple[str, str]:
    """A fresh account on the module's server: (address, password)."""
    address = f"user{next(_accounts)}@example.com"
    imap_server.create_account(address, "secret")
    return address, "secret"


@pytest.fixture
def raw(imap_server: Any) -> Iterator[Callable[..., RawClient]]:
    """Factory of raw clients connected to the module's server (closed after the test)."""
    clients: list[RawClient] = []

    def connect(port: int | None = None, **kwargs: Any) -> RawClient:
        client = RawClient(port or imap_server.port("imap"), **kwargs)
        clients.append(client)
        return client

    yield connect
    for client in clients:
        client.close()


@pytest.fixture
def session(raw: Callable[..., RawClient], account: tuple[str, str]) -> RawClient:
    """A raw client logged in to a fresh account."""
    client = raw()
    client.login(*account)
    return client
