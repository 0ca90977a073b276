"""Master users over real sockets: ``user@domain*admin`` with the master password and SASL PLAIN with
an authzid log in as that user, only from the allowed networks and only for existing users."""

from __future__ import annotations

import base64
import socket
from typing import Any

import pytest

from sora_kernel.auth import hash_password

MASTER_PASSWORD = "master-secret"


def imap(srv: Any, command: bytes, source: str = "127.0.0.1") -> tuple[bytes, bytes]:
    """Run a login command then ``b STATUS INBOX (MESSAGES)``; the tagged replies."""
    sock = socket.create_connection(srv.addr("imap"), timeout=10, source_address=(source, 0))
    reader = sock.makefile("rb")
    try:
        reader.readline()
        sock.sendall(b"a " + command + b"\r\nb STATUS INBOX (MESSAGES)\r\n")
        replies = []
        status = b""
        while len(replies) < 2:
            line = reader.readline()
            assert line, "connection closed"
            if line.startswith(b"* STATUS"):
                status = line
            if line.startswith((b"a ", b"b ")):
                replies.append(line)
        return replies[0], status
    finally:
        reader.close()
        sock.close()


@pytest.fixture
def srv(sora_server: Any) -> Any:
    server = sora_server(plugins=["imap", "pop3"], config={
        "auth_master": {"username": "admin", "password_hash": hash_password(MASTER_PASSWORD),
                        "allowed_networks": ["127.0.0.1/32"]},
        "pop3": {"allow_cleartext_auth": True}})
    account = server.create_account("ann@example.com", "ann-pw")
    inbox = server.call(server.store.get_mailbox, account.id, "INBOX")
    server.call(server.store.append, account.id, inbox.id, b"Subject: one\r\n\r\nbody\r\n")
    return server


def test_master_login_syntax(srv: Any) -> None:
    reply, status = imap(srv, f'LOGIN "ann@example.com*admin" {MASTER_PASSWORD}'.encode())
    assert reply.startswith(b"a OK") and b"MESSAGES 1" in status  # ann's INBOX
    assert imap(srv, f'LOGIN "Ann@Example.com*ADMIN" {MASTER_PASSWORD}'.encode())[0].startswith(b"a OK")
    assert imap(srv, b'LOGIN "ann@example.com*admin" wrong')[0].startswith(b"a NO")
    assert imap(srv, b'LOGIN "ann@example.com*admin" ann-pw')[0].startswith(b"a NO")  # the user's own password
    assert imap(srv, f'LOGIN "nobody@example.com*admin" {MASTER_PASSWORD}'.encode())[0].startswith(b"a NO")
    assert imap(srv, f'LOGIN "ann@example.com*other" {MASTER_PASSWORD}'.encode())[0].startswith(b"a NO")
    # outside allowed_networks the master secret fails like a wrong password
    assert imap(srv, f'LOGIN "ann@example.com*admin" {MASTER_PASSWORD}'.encode(),
                source="127.0.0.2")[0].startswith(b"a NO")
    assert imap(srv, b"LOGIN ann@example.com ann-pw", source="127.0.0.2")[0].startswith(b"a OK")


def test_master_sasl_authzid(srv: Any) -> None:
    def plain(authzid: str, authcid: str, password: str) -> bytes:
        return b"AUTHENTICATE PLAIN " + base64.b64encode(f"{authzid}\0{authcid}\0{password}".encode())

    reply, status = imap(srv, plain("ann@example.com", "admin", MASTER_PASSWORD))
    assert reply.startswith(b"a OK") and b"MESSAGES 1" in status
    assert imap(srv, plain("ann@example.com", "admin", "wrong"))[0].startswith(b"a NO")
    assert imap(srv, plain("nobody@example.com", "admin", MASTER_PASSWORD))[0].startswith(b"a NO")
    assert imap(srv, plain("ann@example.com", "admin", MASTER_PASSWORD), source="127.0.0.2")[0].startswith(b"a NO")
    # an ordinary user cannot act as another
    srv.create_account("bob@example.com", "bob-pw")
    assert imap(srv, plain("ann@example.com", "bob@example.com", "bob-pw"))[0].startswith(b"a NO")


def test_master_over_pop3(srv: Any) -> None:
    sock = socket.create_connection(srv.addr("pop3"), timeout=10)
    reader = sock.makefile("rb")
    reader.readline()
    sock.sendall(f"USER ann@example.com*admin\r\nPASS {MASTER_PASSWORD}\r\nSTAT\r\nQUIT\r\n".encode())
    assert reader.readline().startswith(b"+OK")
    assert reader.readline().startswith(b"+OK")
    assert reader.readline().startswith(b"+OK 1 ")
    reader.close()
    sock.close()
