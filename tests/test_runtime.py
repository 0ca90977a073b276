"""Kernel runtime: listeners from a plugin, line limits, connection limits, shutdown, events."""

from __future__ import annotations

import socket
import time
import types
from functools import partial
from typing import Any

import anyio

from sora_kernel.hookspecs import hookimpl
from sora_kernel.net import AdmitPolicy, Connection, LineTooLong, serve_tcp
from sora_kernel.types import ConfigSection, ServiceSpec, Setting


async def echo_session(conn: Connection) -> None:
    await conn.write(b"hello\r\n")
    while True:
        try:
            line = await conn.readline(limit=16, timeout=5)
        except LineTooLong:
            await conn.write(b"too long\r\n")
            continue
        if line == b"quit":
            await conn.write(b"bye\r\n")
            return
        await conn.write(b"echo " + line + b"\r\n")


def echo_plugin() -> types.ModuleType:
    module = types.ModuleType("echo_plugin")

    @hookimpl
    def sora_config_sections() -> list[ConfigSection]:
        return [ConfigSection("echo", (Setting("addr", "addr", "127.0.0.1:7777"),
                                       Setting("max_per_ip", "int", 0)))]

    @hookimpl
    def sora_services(kernel: Any) -> list[ServiceSpec]:
        limiter = AdmitPolicy(max_per_ip=kernel.config.get("echo", "max_per_ip"))
        run = partial(serve_tcp, kernel, protocol="echo", addr=kernel.config.get("echo", "addr"),
                      handler=echo_session, goodbye=b"goodbye\r\n", admit=limiter,
                      refuse=lambda reason: f"refused {reason}\r\n".encode())
        return [ServiceSpec("echo", run, protocol="echo")]

    module.sora_config_sections = sora_config_sections  # type: ignore[attr-defined]
    module.sora_services = sora_services  # type: ignore[attr-defined]
    return module


def read_until(sock: socket.socket, marker: bytes) -> bytes:
    data = b""
    while marker not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def test_listener_lines_limits_and_goodbye(sora_server) -> None:
    srv = sora_server(extra_plugins=[("echo", echo_plugin())], config={"echo": {"max_per_ip": 2}})
    host, port = srv.addr("echo")
    with socket.create_connection((host, port), timeout=5) as one, \
            socket.create_connection((host, port), timeout=5) as two:
        assert read_until(one, b"\r\n") == b"hello\r\n"
        assert read_until(two, b"\r\n") == b"hello\r\n"
        one.sendall(b"ping\r\nx" + b"y" * 100 + b"\r\nnext\n")
        assert read_until(one, b"echo next\r\n") == b"echo ping\r\ntoo long\r\necho next\r\n"
        with socket.create_connection((host, port), timeout=5) as three:
            assert read_until(three, b"\r\n") == b"refused per_ip\r\n"
        metrics = srv.kernel.registry.get_sample_value(
            "sora_connections_refused_total", {"protocol": "echo", "reason": "per_ip"})
        assert metrics == 1.0
        srv.call(_shutdown, srv.kernel)
        assert read_until(two, b"goodbye\r\n").endswith(b"goodbye\r\n")


async def _shutdown(kernel: Any) -> None:
    kernel.shutdown()


def test_change_notifications_wake_subscribers(sora_server) -> None:
    srv = sora_server()
    account = srv.create_account("n@example.com")
    inbox = srv.call(srv.store.get_mailbox, account.id, "INBOX")

    async def wait_for_append() -> tuple[bool, float]:
        with srv.kernel.events.subscribe(mailbox_id=inbox.id) as sub:
            started = time.monotonic()
            async with anyio.create_task_group() as tg:
                async def append() -> None:
                    await anyio.sleep(0.1)
                    await srv.store.append(account.id, inbox.id, b"Subject: x\r\n\r\ny\r\n")
                tg.start_soon(append)
                woke = await sub.wait(timeout=5)
            return woke, time.monotonic() - started

    woke, _ = srv.call(wait_for_append)
    assert woke  # woken by the NOTIFY, well before the 5 s wait would have timed out


def test_database_pool_metrics_sampled(sora_server) -> None:
    srv = sora_server()
    labels = {"pool": "write", "state": "size"}
    deadline = time.monotonic() + 3
    while srv.kernel.registry.get_sample_value("sora_db_pool_connections", labels) is None:
        assert time.monotonic() < deadline, "pool metrics never sampled"
        time.sleep(0.05)
    assert srv.kernel.registry.get_sample_value("sora_db_pool_connections", labels) >= 1


def test_stalled_tls_handshake_ends_quietly(sora_server, sora_certificate) -> None:
    """A client that never completes the handshake is dropped without a session failure."""
    from sora_kernel.net.tls import load_tls_context

    context = load_tls_context(*sora_certificate)
    outcome: list[str] = []

    async def handler(conn: Connection) -> None:
        try:
            await conn.start_tls(context, timeout=0.3)
            outcome.append("tls")
        except Exception as exc:
            outcome.append(type(exc).__name__)
            raise

    module = types.ModuleType("tls_plugin")

    @hookimpl
    def sora_services(kernel: Any) -> list[ServiceSpec]:
        return [ServiceSpec("stall", partial(serve_tcp, kernel, protocol="stall", addr="127.0.0.1:0",
                                             handler=handler), protocol="stall")]

    module.sora_services = sora_services  # type: ignore[attr-defined]
    srv = sora_server(extra_plugins=[("stall", module)])
    with socket.create_connection(srv.addr("stall"), timeout=5) as sock:
        assert sock.recv(10) == b""  # the server gave up on the silent client and closed
    assert outcome == ["ConnectionClosed"]
