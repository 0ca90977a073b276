"""Connection tracking through PostgreSQL: a session in one worker is listed by another and kicked
from it (closed with the protocol's goodbye, IMAP BYE); other sessions stay."""

from __future__ import annotations

import socket
import time
from typing import Any

FAST = {"connections": {"sync_interval": "50ms", "heartbeat": "200ms"}, "pop3": {"allow_cleartext_auth": True}}


def connect(srv: Any, protocol: str) -> tuple[socket.socket, Any]:
    sock = socket.create_connection(srv.addr(protocol), timeout=10)
    reader = sock.makefile("rb")
    assert reader.readline().startswith((b"* OK", b"+OK"))
    return sock, reader


def wait_for(predicate: Any, what: str, timeout: float = 10) -> Any:
    deadline = time.monotonic() + timeout
    while not (result := predicate()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)
    return result


def test_list_and_kick_across_workers(sora_server: Any) -> None:
    first = sora_server(plugins=["imap", "pop3"], config=FAST)
    second = sora_server(plugins=["imap", "pop3"], config=FAST, dsn=first.dsn)
    first.create_account("ann@example.com", "pw")
    first.create_account("bob@example.com", "pw")
    store, stale = first.kernel.store.connections, first.kernel.connections.stale_after

    ann, ann_reader = connect(second, "imap")
    ann.sendall(b"a LOGIN ann@example.com pw\r\n")
    assert ann_reader.readline().startswith(b"a OK")
    bob, bob_reader = connect(second, "pop3")
    bob.sendall(b"USER bob@example.com\r\nPASS pw\r\n")
    assert bob_reader.readline().startswith(b"+OK") and bob_reader.readline().startswith(b"+OK")
    anonymous, anonymous_reader = connect(first, "imap")

    rows = wait_for(lambda: (r := first.call(store.list, stale_after=stale)) and len(r) == 3 and
                    {x.username for x in r} == {"ann@example.com", "bob@example.com", ""} and r, "three sessions")
    owners = {r.username: r.owner for r in rows}
    assert owners["ann@example.com"] == owners["bob@example.com"] == second.kernel.connections.owner
    assert owners[""] == first.kernel.connections.owner
    stats = first.call(store.stats, stale_after=stale)
    assert stats["total"] == 3 and stats["authenticated"] == 2 and stats["users"] == 2
    assert stats["by_protocol"] == {"imap": 2, "pop3": 1}
    assert stats["by_worker"] == {first.kernel.connections.owner: 1, second.kernel.connections.owner: 2}
    assert [r.protocol for r in first.call(store.list, stale_after=stale, user="ANN@example.com")] == ["imap"]

    # kicked from the first worker, closed by the second with BYE
    assert first.call(store.request_kick, stale_after=stale, user="ann@example.com") == 1
    bye = wait_for(lambda: ann_reader.readline(), "the BYE")
    assert bye.startswith(b"* BYE"), bye
    assert ann_reader.readline() == b""
    wait_for(lambda: len(first.call(store.list, stale_after=stale)) == 2, "the kicked row to go")
    # the others still work
    bob.sendall(b"NOOP\r\n")
    assert bob_reader.readline().startswith(b"+OK")
    anonymous.sendall(b"b NOOP\r\n")
    assert anonymous_reader.readline().startswith(b"b OK")
    for sock, reader in ((ann, ann_reader), (bob, bob_reader), (anonymous, anonymous_reader)):
        reader.close()
        sock.close()
    wait_for(lambda: first.call(store.list, stale_after=stale) == [], "closed sessions to be removed")
