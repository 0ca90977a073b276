"""Auth rate limiting across workers: 100 wrong passwords from one IP over IMAP and POP3, spread over
two servers on one database, block the IP+user pair after 5 and the IP after 50 failures; the right
password is refused while blocked, a blocked IP is refused at connect, other IPs are unaffected."""

from __future__ import annotations

import socket
import time
from typing import Any

import pytest

from sora_kernel.api import AuthRequest
from sora_kernel.ratelimit import canonical_user, progressive_delay

FAST = {
    "auth_rate_limit": {"enabled": True, "delay_initial": "1ms", "delay_max": "4ms", "refresh_interval": "50ms"},
    "pop3": {"allow_cleartext_auth": True},
}


class Client:
    """A line client on a real socket, connecting from a chosen loopback address."""

    def __init__(self, addr: tuple[str, int], source: str) -> None:
        self.sock = socket.create_connection(addr, timeout=10, source_address=(source, 0))
        self.file = self.sock.makefile("rb")

    def line(self) -> bytes:
        return self.file.readline()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def close(self) -> None:
        self.file.close()
        self.sock.close()


def imap_login(srv: Any, user: str, password: str, source: str = "127.0.0.1") -> str:
    """``ok``, ``no`` (LOGIN refused) or ``refused`` (connection refused with BYE)."""
    client = Client(srv.addr("imap"), source)
    try:
        greeting = client.line()
        if not greeting.startswith(b"* OK"):
            assert greeting.startswith(b"* BYE") or greeting == b"", greeting
            return "refused"
        client.send(f"a LOGIN {user} {password}\r\n".encode())
        while not (reply := client.line()).startswith(b"a "):
            assert reply, "connection closed"
        assert reply.startswith((b"a OK", b"a NO")), reply
        return "ok" if reply.startswith(b"a OK") else "no"
    finally:
        client.close()


def pop3_login(srv: Any, user: str, password: str, source: str = "127.0.0.1") -> str:
    """``ok``, ``no`` (PASS refused) or ``refused`` (connection refused)."""
    client = Client(srv.addr("pop3"), source)
    try:
        greeting = client.line()
        if not greeting.startswith(b"+OK"):
            return "refused"
        client.send(f"USER {user}\r\n".encode())
        assert client.line().startswith(b"+OK")
        client.send(f"PASS {password}\r\n".encode())
        reply = client.line()
        client.send(b"QUIT\r\n")
        return "ok" if reply.startswith(b"+OK") else "no"
    finally:
        client.close()


def test_canonical_keys_and_delay() -> None:
    assert canonical_user(" Ann+Spam@Example.COM ") == "ann@example.com"
    assert canonical_user("ann@example.com*admin") == "ann@example.com"
    assert canonical_user("ann", "") == "ann"
    assert [progressive_delay(n, 2, 1.0, 30.0) for n in range(1, 10)] == [0, 0, 1, 2, 4, 8, 16, 30, 30]
    assert progressive_delay(1000, 2, 1.0, 30.0) == 30.0


@pytest.fixture
def cluster(sora_server: Any) -> tuple[Any, Any]:
    first = sora_server(plugins=["imap", "pop3"], config=FAST)
    second = sora_server(plugins=["imap", "pop3"], config=FAST, dsn=first.dsn)
    first.create_account("ann@example.com", "right")
    first.create_account("bob@example.com", "right")
    return first, second


def test_hundred_wrong_passwords_across_two_workers(cluster: tuple[Any, Any]) -> None:
    first, second = cluster
    servers = (first, second)
    logins = (imap_login, pop3_login)
    outcomes: list[str] = []
    # 1-5: the same user under case and +detail variations, alternating servers and protocols
    spellings = ["ann@example.com", "ANN@example.com", "ann+x@example.com", "Ann@Example.com", "ann+y@example.com"]
    for n, user in enumerate(spellings):
        outcomes.append(logins[n % 2](servers[(n // 2) % 2], user, "wrong"))
    assert outcomes == ["no"] * 5
    # the pair is blocked everywhere: the right password is refused on both servers and protocols
    for srv in servers:
        assert imap_login(srv, "ann@example.com", "right") == "no"
        assert pop3_login(srv, "Ann+z@example.com", "right") == "no"
    # bob from the same IP is not blocked yet
    assert imap_login(second, "bob@example.com", "right") == "ok"
    # 6-100: other users until the IP tier blocks
    for n in range(5, 100):
        outcomes.append(logins[n % 2](servers[(n // 2) % 2], f"nobody{n}@example.com", "wrong"))
    assert outcomes[:50] == ["no"] * 50
    assert set(outcomes[50:]) <= {"no", "refused"}
    # every attempt after the 50th failure was refused without a password check
    stats = first.call(first.kernel.store.auth.stats)
    assert stats["ip"]["failures"] == 50 and stats["ip"]["blocked"] == 1
    assert stats["ip_user"]["blocked"] == 1
    blocked = {c.key for c in first.call(first.kernel.store.auth.blocked)}
    assert blocked == {"ip:127.0.0.1", "pair:127.0.0.1|ann@example.com"}
    # the blocked IP is refused at connect by both workers (the second learns through the refresher)
    deadline = time.monotonic() + 10
    while imap_login(second, "bob@example.com", "right") != "refused":
        assert time.monotonic() < deadline, "second worker never refused the blocked IP at connect"
    for srv in servers:
        assert imap_login(srv, "bob@example.com", "right") == "refused"
        assert pop3_login(srv, "bob@example.com", "right") == "refused"
    # another IP is unaffected, ann included
    for srv in servers:
        assert imap_login(srv, "ann@example.com", "right", source="127.0.0.2") == "ok"
        assert pop3_login(srv, "ann@example.com", "right", source="127.0.0.2") == "ok"
    refused = sum(
        srv.kernel.metrics.auth_total.labels(p, "refused")._value.get() for srv in servers for p in ("imap", "pop3"))
    assert refused >= 4  # the four right-password attempts while the pair was blocked, at least


def test_success_clears_pair_and_exempt_networks(sora_server: Any) -> None:
    srv = sora_server(plugins=["imap"], config=FAST)
    srv.create_account("ann@example.com", "right")
    for _ in range(4):
        assert imap_login(srv, "ann@example.com", "wrong") == "no"
    assert imap_login(srv, "ann@example.com", "right") == "ok"  # clears the pair's 4 failures
    for _ in range(4):
        assert imap_login(srv, "ann@example.com", "wrong") == "no"
    assert imap_login(srv, "ann@example.com", "right") == "ok"
    exempt = sora_server(plugins=["imap"], config={
        "auth_rate_limit": {**FAST["auth_rate_limit"], "exempt_networks": ["127.0.0.0/8"]}})
    exempt.create_account("ann@example.com", "right")
    for _ in range(8):
        assert imap_login(exempt, "ann@example.com", "wrong") == "no"
    assert imap_login(exempt, "ann@example.com", "right") == "ok"
    assert exempt.call(exempt.kernel.store.auth.stats) == {}


def test_disabled_by_default_counts_nothing(sora_server: Any) -> None:
    srv = sora_server()
    srv.create_account("ann@example.com", "right")
    for _ in range(7):
        assert srv.call(srv.kernel.authenticate, AuthRequest("test", "ann@example.com", "x", "10.1.1.1")) is None
    assert srv.call(srv.kernel.authenticate, AuthRequest("test", "ann@example.com", "right", "10.1.1.1"))
    assert srv.call(srv.kernel.store.auth.stats) == {}


def test_concurrent_attempts_per_ip_are_capped(sora_server: Any) -> None:
    import anyio

    srv = sora_server(config={"auth_rate_limit": {
        "enabled": True, "max_concurrent_per_ip": 3, "delay_after": 0, "delay_initial": "300ms",
        "delay_max": "300ms", "ip_user_max_failures": 1000, "ip_max_failures": 1000}})
    srv.create_account("ann@example.com", "right")

    async def burst() -> int:
        results: list[int] = []

        async def attempt(n: int) -> None:
            request = AuthRequest("imap", f"user{n}@example.com", "wrong", "192.0.2.50")
            await srv.kernel.login.decide(request)
            results.append(n)

        async with anyio.create_task_group() as tg:
            for n in range(8):
                tg.start_soon(attempt, n)
        return len(results)

    assert srv.call(burst) == 8
    refused = srv.kernel.registry.get_sample_value(
        "sora_auth_rate_limit_refused_total", {"protocol": "any", "tier": "concurrency"})
    assert refused == 5  # three were checked (and delayed), five refused at once
    stats = srv.call(srv.kernel.store.auth.stats)
    assert stats["ip"]["failures"] == 3
    assert srv.kernel.ratelimit._in_progress == {}
    # once they are over, the IP may try again (and the right password works)
    assert srv.call(srv.kernel.login.decide, AuthRequest("imap", "ann@example.com", "right", "192.0.2.50"))
