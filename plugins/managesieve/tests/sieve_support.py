"""ManageSieve test support: a running server with an account, a raw-socket transcript client and a
small client library (there is no ManageSieve client in the standard library)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sora_kernel.testing import SoraTestServer

ADDRESS = "alice@example.com"
PASSWORD = "correct horse"


@dataclass
class SieveEnv:
    """A running server with the managesieve plugin and one account."""

    srv: SoraTestServer
    account: Any

    @property
    def port(self) -> int:
        """The plain listener's port."""
        return self.srv.port("managesieve")

    def wire(self, **kwargs: Any) -> Wire:
        """A raw client on the plain listener, greeting read."""
        return Wire(self.port, **kwargs)

    def client(self) -> SieveClient:
        """A library-style client on the plain listener."""
        return SieveClient("127.0.0.1", self.port)

    def scripts(self) -> list[tuple[str, bool, str]]:
        """(name, active, text) of every stored script of the account."""
        rows = self.srv.call(self.srv.store.sieve.list_scripts, self.account.id)
        return [(s.name, s.active, s.script) for s in rows]


def start_env(sora_server: Callable[..., SoraTestServer], config: dict[str, dict[str, Any]] | None = None,
              plugins_before: list[str] | None = None, **kwargs: Any) -> SieveEnv:
    """A server with the managesieve plugin (after ``plugins_before``) and ``alice``."""
    srv = sora_server(plugins=[*(plugins_before or []), "managesieve"], config=config or {}, **kwargs)
    return SieveEnv(srv, srv.create_account(ADDRESS, PASSWORD))


def plain(user: str = ADDRESS, password: str = PASSWORD) -> str:
    """The base64 SASL PLAIN response."""
    return base64.b64encode(f"\0{user}\0{password}".encode()).decode()


class Wire:
    """A raw-socket ManageSieve client for transcript tests: bytes sent, bytes expected."""

    def __init__(self, port: int, host: str = "127.0.0.1", timeout: float = 10, greet: bool = True,
                 tls: bool = False) -> None:
        self.sock: socket.socket | ssl.SSLSocket = socket.create_connection((host, port), timeout=timeout)
        if tls:
            self.sock = _client_context().wrap_socket(self.sock, server_hostname="localhost")
        self.file = self.sock.makefile("rb")
        self.greeting = self.response() if greet else b""

    def send(self, data: bytes | str) -> None:
        """Send raw bytes."""
        self.sock.sendall(data.encode() if isinstance(data, str) else data)

    def line(self) -> bytes:
        """One line, CRLF included."""
        return self.file.readline()

    def response(self) -> bytes:
        """Everything up to and including the next OK/NO/BYE line (literals read whole)."""
        out = b""
        while True:
            line = self.line()
            if not line:
                raise AssertionError(f"connection closed inside a response: {out!r}")
            out += line
            match = re.search(rb"\{(\d+)\}\r\n\Z", line)
            if match:
                out += self.file.read(int(match.group(1)))
                continue
            if line.startswith((b"OK", b"NO", b"BYE")):
                return out

    def cmd(self, data: bytes | str) -> bytes:
        """Send one command line (CRLF added), return the whole response."""
        self.send((data.encode() if isinstance(data, str) else data) + b"\r\n")
        return self.response()

    def challenge(self, data: bytes | str) -> bytes:
        """Send a line that the server answers with one SASL challenge line (or a final response)."""
        self.send((data.encode() if isinstance(data, str) else data) + b"\r\n")
        return self.line()

    def login(self, user: str = ADDRESS, password: str = PASSWORD) -> None:
        """AUTHENTICATE PLAIN with an initial response, asserting success."""
        answer = self.cmd(f'AUTHENTICATE "PLAIN" "{plain(user, password)}"')
        assert answer == b'OK "Logged in."\r\n', answer

    def starttls(self) -> None:
        """Wrap the socket in TLS (after an OK to STARTTLS)."""
        self.sock = _client_context().wrap_socket(self.sock, server_hostname="localhost")
        self.file = self.sock.makefile("rb")

    def closed(self, timeout: float = 10) -> bool:
        """Whether the server closes the connection (EOF) within ``timeout``."""
        self.sock.settimeout(timeout)
        return self.file.read() == b""

    def close(self) -> None:
        """Drop the connection."""
        self.file.close()
        self.sock.close()


def _client_context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


# ------------------------------------------------------------------------------ client library


class ScramClient:
    """The client side of SCRAM-SHA-256 (RFC 5802/7677), straight from the RFC's formulas."""

    def __init__(self, username: str, password: str, nonce: str = "rOprNGfwEbeRWgbNEkqO") -> None:
        self.password = password
        self.nonce = nonce
        self.first_bare = f"n={username.replace('=', '=3D').replace(',', '=2C')},r={nonce}"
        self.server_signature = b""

    def first(self) -> bytes:
        """client-first-message."""
        return ("n,," + self.first_bare).encode()

    def final(self, server_first: bytes) -> bytes:
        """client-final-message for the server's first message."""
        attrs = dict(item.split("=", 1) for item in server_first.decode().split(","))
        assert attrs["r"].startswith(self.nonce)
        salted = hashlib.pbkdf2_hmac("sha256", self.password.encode(), base64.b64decode(attrs["s"]),
                                     int(attrs["i"]))
        client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
        without_proof = f"c={base64.b64encode(b'n,,').decode()},r={attrs['r']}"
        auth_message = f"{self.first_bare},{server_first.decode()},{without_proof}".encode()
        signature = hmac.new(hashlib.sha256(client_key).digest(), auth_message, hashlib.sha256).digest()
        proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
        server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
        self.server_signature = hmac.new(server_key, auth_message, hashlib.sha256).digest()
        return f"{without_proof},p={base64.b64encode(proof).decode()}".encode()

    def check_server_final(self, server_final: bytes) -> bool:
        """Whether the server proved it knows the password too."""
        return server_final == b"v=" + base64.b64encode(self.server_signature)


@dataclass
class Reply:
    """A parsed final response: ``OK``/``NO``/``BYE``, its code (and code argument), its text, and
    the data lines (strings, literals) before it."""

    kind: str
    code: str | None = None
    code_arg: str | None = None
    text: str | None = None
    data: list[list[str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether it is an OK."""
        return self.kind == "OK"


class SieveClient:
    """A small ManageSieve client, as a client library would be: parses strings and literals from the
    server, sends literals as ``{n+}``, speaks PLAIN and SCRAM-SHA-256."""

    def __init__(self, host: str, port: int, *, tls: bool = False, timeout: float = 10) -> None:
        self.sock: socket.socket | ssl.SSLSocket = socket.create_connection((host, port), timeout=timeout)
        if tls:
            self.sock = _client_context().wrap_socket(self.sock, server_hostname="localhost")
        self.file = self.sock.makefile("rb")
        self.capabilities = self._capabilities(self.read_reply())

    # wire
    def _tokens(self, line: bytes) -> list[str]:
        tokens: list[str] = []
        pos = 0
        line = line.rstrip(b"\r\n")
        while pos < len(line):
            if line[pos:pos + 1] == b" ":
                pos += 1
            elif line[pos:pos + 1] == b'"':
                out = bytearray()
                pos += 1
                while line[pos:pos + 1] != b'"':
                    if line[pos:pos + 1] == b"\\":
                        pos += 1
                    out += line[pos:pos + 1]
                    pos += 1
                pos += 1
                tokens.append(out.decode())
            elif line[pos:pos + 1] == b"{":
                size = int(line[pos + 1:line.index(b"}", pos)].rstrip(b"+"))
                tokens.append(self.file.read(size).decode())
                line = self.file.readline().rstrip(b"\r\n")
                pos = 0
            else:
                end = line.find(b" ", pos)
                end = len(line) if end < 0 else end
                tokens.append(line[pos:end].decode())
                pos = end
        return tokens

    def read_reply(self) -> Reply:
        """Read data lines up to the final OK/NO/BYE."""
        data: list[list[str]] = []
        while True:
            line = self.file.readline()
            if not line:
                raise ConnectionError("server closed the connection")
            if line.startswith((b"OK", b"NO", b"BYE")):
                kind, _, rest = line.partition(b" ")
                reply = Reply(kind.strip().decode(), data=data)
                if rest.startswith(b"("):
                    end = rest.index(b")")
                    code, _, arg = rest[1:end].partition(b" ")
                    reply.code = code.decode()
                    reply.code_arg = self._tokens(arg)[0] if arg else None
                    rest = rest[end + 1:]
                tokens = self._tokens(rest)
                if tokens:
                    reply.text = tokens[0]
                return reply
            data.append(self._tokens(line))

    @staticmethod
    def _capabilities(reply: Reply) -> dict[str, str | None]:
        return {d[0].upper(): (d[1] if len(d) > 1 else None) for d in reply.data}

    @staticmethod
    def _string(value: str) -> bytes:
        data = value.encode()
        return b"{%d+}\r\n" % len(data) + data

    def command(self, name: str, *args: str | int) -> Reply:
        """Send a command (string arguments as literals) and read its reply."""
        out = name.encode()
        for arg in args:
            out += b" " + (str(arg).encode() if isinstance(arg, int) else self._string(arg))
        self.sock.sendall(out + b"\r\n")
        return self.read_reply()

    # commands
    def starttls(self) -> Reply:
        """STARTTLS, then read the capabilities the server sends again."""
        reply = self.command("STARTTLS")
        if reply.ok:
            self.sock = _client_context().wrap_socket(self.sock, server_hostname="localhost")
            self.file = self.sock.makefile("rb")
            after = self.read_reply()
            self.capabilities = self._capabilities(after)
        return reply

    def authenticate_plain(self, user: str, password: str) -> Reply:
        """AUTHENTICATE PLAIN with an initial response."""
        return self.command("AUTHENTICATE", "PLAIN", plain(user, password))

    def authenticate_scram(self, user: str, password: str) -> tuple[Reply, bool]:
        """AUTHENTICATE SCRAM-SHA-256; the reply and whether the server proved itself."""
        scram = ScramClient(user, password)
        self.sock.sendall(b'AUTHENTICATE "SCRAM-SHA-256" ' + self._string(base64.b64encode(scram.first()).decode())
                          + b"\r\n")
        line = self.file.readline()
        if line.startswith((b"OK", b"NO", b"BYE")):
            raise AssertionError(f"no challenge: {line!r}")
        server_first = base64.b64decode(self._tokens(line)[0])
        self.sock.sendall(self._string(base64.b64encode(scram.final(server_first)).decode()) + b"\r\n")
        reply = self.read_reply()
        proved = reply.code == "SASL" and reply.code_arg is not None and scram.check_server_final(
            base64.b64decode(reply.code_arg))
        return reply, proved

    def putscript(self, name: str, script: str) -> Reply:
        """PUTSCRIPT."""
        return self.command("PUTSCRIPT", name, script)

    def listscripts(self) -> list[tuple[str, bool]]:
        """LISTSCRIPTS as (name, active) pairs."""
        reply = self.command("LISTSCRIPTS")
        assert reply.ok, reply
        return [(d[0], len(d) > 1 and d[1] == "ACTIVE") for d in reply.data]

    def getscript(self, name: str) -> str | None:
        """GETSCRIPT; None when the server says NO."""
        reply = self.command("GETSCRIPT", name)
        return reply.data[0][0] if reply.ok else None

    def logout(self) -> Reply:
        """LOGOUT and close."""
        reply = self.command("LOGOUT")
        self.sock.close()
        return reply


def wait_for(predicate: Callable[[], Any], timeout: float = 5) -> Any:
    """Poll until ``predicate()`` is truthy (no fixed sleeps); returns its value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError("condition not met in time")
