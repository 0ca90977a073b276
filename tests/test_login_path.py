"""One login path: an auth plugin sees every login of every protocol and mechanism, and a precheck
veto refuses an attempt before any credential is checked (IMAP LOGIN, IMAP AUTHENTICATE PLAIN and
SCRAM-SHA-256, POP3 USER/PASS and AUTH PLAIN), all over real sockets."""

from __future__ import annotations

import base64
import socket
from typing import Any

import pytest

from sora_kernel.api import AuthRequest, Principal, hookimpl
from sora_kernel.testing.scram import ScramClient


class Recorder:
    """An auth plugin: records each attempt, refuses users named ``blocked*`` before checking."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, str, str, bool]] = []
        self.results: list[tuple[str, str, bool]] = []
        self.prechecked: list[tuple[str, str]] = []

    @hookimpl
    def sora_auth_precheck(self, kernel: Any, request: AuthRequest) -> str | None:
        self.prechecked.append((request.protocol, request.username))
        return "blocked by test" if request.username.startswith("blocked") else None

    @hookimpl
    async def sora_authenticate(self, kernel: Any, request: AuthRequest) -> Principal | None:
        self.asked.append((request.protocol, request.mechanism, request.username, request.proven is not None))
        return None  # let the database decide

    @hookimpl
    def sora_auth_result(self, kernel: Any, request: AuthRequest, principal: Principal | None) -> None:
        self.results.append((request.protocol, request.mechanism, principal is not None))


class Wire:
    """A line-oriented client on a real socket."""

    def __init__(self, addr: tuple[str, int]) -> None:
        self.sock = socket.create_connection(addr, timeout=10)
        self.file = self.sock.makefile("rb")

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def line(self) -> bytes:
        return self.file.readline()

    def until(self, prefix: bytes) -> bytes:
        while not (line := self.line()).startswith(prefix):
            assert line, "connection closed"
        return line

    def close(self) -> None:
        self.file.close()
        self.sock.close()


@pytest.fixture
def env(sora_server: Any) -> tuple[Any, Recorder]:
    recorder = Recorder()
    srv = sora_server(plugins=["imap", "pop3"], extra_plugins=[("recorder", recorder)],
                      config={"pop3": {"allow_cleartext_auth": True}})
    srv.create_account("ann@example.com", "pw")
    srv.create_account("blocked@example.com", "pw")
    return srv, recorder


def b64(data: bytes) -> bytes:
    return base64.b64encode(data)


def imap_command(srv: Any, command: bytes) -> bytes:
    """Send one tagged command on a fresh IMAP connection; the tagged answer."""
    wire = Wire(srv.addr("imap"))
    wire.line()
    wire.send(b"a " + command + b"\r\n")
    reply = wire.until(b"a ")
    wire.close()
    return reply


def pop3_command(srv: Any, command: bytes) -> bytes:
    """Send one command on a fresh POP3 connection; its status line."""
    wire = Wire(srv.addr("pop3"))
    wire.line()
    wire.send(command + b"\r\n")
    reply = wire.line()
    wire.send(b"QUIT\r\n")
    wire.close()
    return reply


def plain(user: str, password: str, authzid: str = "") -> bytes:
    return b64(f"{authzid}\0{user}\0{password}".encode())


def imap_login(srv: Any, user: str, password: str) -> bytes:
    return imap_command(srv, f"LOGIN {user} {password}".encode())


def imap_plain(srv: Any, user: str, password: str) -> bytes:
    return imap_command(srv, b"AUTHENTICATE PLAIN " + plain(user, password))


def imap_scram(srv: Any, user: str, password: str) -> bytes:
    client = ScramClient(user, password)
    wire = Wire(srv.addr("imap"))
    wire.line()
    wire.send(b"a AUTHENTICATE SCRAM-SHA-256 " + b64(client.first()) + b"\r\n")
    challenge = wire.line()
    assert challenge.startswith(b"+ ")
    wire.send(b64(client.final(base64.b64decode(challenge[2:].strip()))) + b"\r\n")
    answer = wire.line()
    if answer.startswith(b"+ "):
        assert client.check_server_final(base64.b64decode(answer[2:].strip()))
        wire.send(b"\r\n")
        answer = wire.until(b"a ")
    wire.close()
    return answer


def pop3_user_pass(srv: Any, user: str, password: str) -> bytes:
    wire = Wire(srv.addr("pop3"))
    wire.line()
    wire.send(b"USER " + user.encode() + b"\r\n")
    assert wire.line().startswith(b"+OK")
    wire.send(b"PASS " + password.encode() + b"\r\n")
    reply = wire.line()
    wire.send(b"QUIT\r\n")
    wire.close()
    return reply


def pop3_auth_plain(srv: Any, user: str, password: str) -> bytes:
    return pop3_command(srv, b"AUTH PLAIN " + plain(user, password))


LOGINS = [
    ("imap", "LOGIN", imap_login, b"a OK"),
    ("imap", "PLAIN", imap_plain, b"a OK"),
    ("imap", "SCRAM-SHA-256", imap_scram, b"a OK"),
    ("pop3", "USER", pop3_user_pass, b"+OK"),
    ("pop3", "PLAIN", pop3_auth_plain, b"+OK"),
]


@pytest.mark.parametrize(("protocol", "mechanism", "login", "ok"), LOGINS, ids=[f"{p}-{m}" for p, m, *_ in LOGINS])
def test_every_login_goes_through_the_plugin(env: Any, protocol: str, mechanism: str, login: Any, ok: bytes) -> None:
    srv, recorder = env
    assert login(srv, "ann@example.com", "pw").startswith(ok)
    assert recorder.asked == [(protocol, mechanism, "ann@example.com", mechanism == "SCRAM-SHA-256")]
    assert recorder.results == [(protocol, mechanism, True)]
    assert (protocol, "ann@example.com") in recorder.prechecked

    assert not login(srv, "ann@example.com", "wrong").startswith(ok)
    assert recorder.results[-1] == (protocol, mechanism, False)


@pytest.mark.parametrize(("protocol", "mechanism", "login", "ok"), LOGINS, ids=[f"{p}-{m}" for p, m, *_ in LOGINS])
def test_precheck_refuses_before_the_password_is_checked(env: Any, protocol: str, mechanism: str, login: Any,
                                                         ok: bytes) -> None:
    srv, recorder = env
    refused = login(srv, "blocked@example.com", "pw")  # the right password: refused all the same
    assert not refused.startswith(ok)
    assert recorder.asked == []  # no provider was asked, the database was not consulted
    assert recorder.results == [(protocol, mechanism, False)]
    # answered exactly like a wrong password
    wrong = login(srv, "ann@example.com", "wrong")
    assert refused == wrong
    metric = srv.kernel.registry.get_sample_value(
        "sora_auth_attempts_total", {"protocol": protocol, "result": "refused"})
    assert metric == 1


def test_authzid_rule_is_the_same_for_every_protocol(env: Any) -> None:
    srv, _ = env

    def imap(authzid: str) -> bytes:
        return imap_command(srv, b"AUTHENTICATE PLAIN " + plain("ann@example.com", "pw", authzid))

    def pop3(authzid: str) -> bytes:
        return pop3_command(srv, b"AUTH PLAIN " + plain("ann@example.com", "pw", authzid))

    assert imap("ann@example.com").startswith(b"a OK")
    assert imap("blocked@example.com").startswith(b"a NO [AUTHENTICATIONFAILED]")
    assert pop3("ANN@example.com").startswith(b"+OK")
    assert pop3("blocked@example.com").startswith(b"-ERR [AUTH]")
