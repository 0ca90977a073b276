"""Every client connection gets TCP keepalive (``[server] tcp_keepalive``), so vanished peers are noticed."""

from __future__ import annotations

import poplib
import socket
from typing import Any

from anyio.abc import SocketAttribute


def _server_sockets(srv: Any) -> list[socket.socket]:
    live = list(srv.kernel.connections._live.values())
    return [conn.stream.extra(SocketAttribute.raw_socket) for conn in live]


def test_keepalive_on_accepted_connections(sora_server: Any) -> None:
    srv = sora_server(plugins=["pop3"], config={"server": {"tcp_keepalive": "90s"}})
    client = poplib.POP3("127.0.0.1", srv.port("pop3"))
    try:
        (sock,) = _server_sockets(srv)
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 90
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL) == 30
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT) == 4
    finally:
        client.quit()


def test_keepalive_off(sora_server: Any) -> None:
    srv = sora_server(plugins=["pop3"], config={"server": {"tcp_keepalive": "0"}})
    client = poplib.POP3("127.0.0.1", srv.port("pop3"))
    try:
        (sock,) = _server_sockets(srv)
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 0
    finally:
        client.quit()
