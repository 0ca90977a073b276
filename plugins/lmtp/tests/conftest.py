"""Shared helpers for the LMTP tests: a raw-socket transcript client."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from typing import Any

import pytest


class Transcript:
    """A blocking raw-socket LMTP client that reads exact reply bytes."""

    def __init__(self, port: int, host: str = "127.0.0.1", timeout: float = 10.0) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buffer = b""

    def send(self, data: bytes) -> None:
        """Send raw bytes."""
        self.sock.sendall(data)

    def line(self) -> bytes:
        """One reply line, CRLF included."""
        while b"\r\n" not in self.buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError(f"closed; pending {self.buffer!r}")
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\r\n")
        return line + b"\r\n"

    def reply(self) -> bytes:
        """One complete (possibly multi-line) reply."""
        out = b""
        while True:
            line = self.line()
            out += line
            if line[3:4] != b"-":
                return out

    def cmd(self, data: bytes) -> bytes:
        """Send a command line (CRLF added) and return its reply."""
        self.send(data + b"\r\n")
        return self.reply()

    def closed(self) -> bool:
        """Whether the server closed the connection (nothing more to read)."""
        if self.buffer:
            return False
        try:
            return self.sock.recv(1) == b""
        except (ConnectionResetError, TimeoutError):
            return True

    def hello(self) -> None:
        """Read the greeting and say LHLO."""
        assert self.reply().startswith(b"220 ")
        assert self.cmd(b"LHLO mta.test").startswith(b"250-")

    def close(self) -> None:
        """Close the socket."""
        self.sock.close()


@pytest.fixture
def transcript() -> Iterator[Callable[..., Transcript]]:
    """Factory of raw LMTP clients, closed after the test."""
    opened: list[Transcript] = []

    def connect(port: int, **kwargs: Any) -> Transcript:
        client = Transcript(port, **kwargs)
        opened.append(client)
        return client

    yield connect
    for client in opened:
        client.close()



@pytest.fixture
def stored() -> Callable[..., list[bytes]]:
    """``stored(srv, account, mailbox="INBOX")``: the messages really in a mailbox, read back
    from the store (metadata from PostgreSQL, bodies from the blob store)."""

    def read(srv: Any, account: Any, mailbox: str = "INBOX") -> list[bytes]:
        box = srv.call(srv.store.get_mailbox, account.id, mailbox)
        assert box is not None, mailbox
        rows = srv.call(srv.store.fetch, box.id, [(1, 2**31 - 1)])
        return [srv.call(srv.store.read_message, account.id, row.content_hash)
                for row in rows if not row.expunged]

    return read
