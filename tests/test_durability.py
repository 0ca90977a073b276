"""An acknowledged append survives `kill -9` of the process at any instant."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import blake3

WRITER = textwrap.dedent('''
    import sys, anyio
    from sora_kernel.kernel import Kernel
    from sora_kernel.testing.server import test_config

    async def main(data_dir, dsn):
        config, plugins = test_config(data_dir, dsn, [], {"storage": {"fsync": True}})
        kernel = Kernel(config, plugins)
        await kernel.start(migrate=False)
        account = await kernel.store.create_account("k@example.com")
        inbox = await kernel.store.get_mailbox(account.id, "INBOX")
        print("account", account.id, inbox.id, flush=True)
        n = 0
        while True:
            n += 1
            raw = b"Subject: m%d\\r\\n\\r\\n" % n + b"x" * (n * 37 % 5000) + b"\\r\\n"
            result = await kernel.store.append(account.id, inbox.id, raw)
            print("acked", result.uid, result.content_hash.hex(), flush=True)

    anyio.run(main, sys.argv[1], sys.argv[2])
''')


def test_kill_9_loses_no_acknowledged_append(sora_server, sora_dsn: str, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(data_dir), sora_dsn],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    acked: list[tuple[int, str]] = []
    account_id = mailbox_id = 0
    deadline = time.monotonic() + 60
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        parts = line.split()
        if parts[0] == "account":
            account_id, mailbox_id = int(parts[1]), int(parts[2])
        elif parts[0] == "acked":
            acked.append((int(parts[1]), parts[2]))
            if len(acked) >= 150:
                os.kill(proc.pid, signal.SIGKILL)
                break
    proc.wait(timeout=10)
    assert len(acked) >= 150, proc.stderr.read() if proc.stderr else ""

    srv = sora_server(run_services=False, config={"database": {"dsn": sora_dsn},
                                                  "server": {"data_dir": str(data_dir)}})
    rows = srv.call(lambda: srv.store.fetch(mailbox_id, [(1, 10**9)]))
    stored = {row.uid: row.content_hash.hex() for row in rows}
    for uid, content_hash in acked:
        assert stored.get(uid) == content_hash, f"acknowledged uid {uid} lost"
        body = srv.call(srv.store.read_message, account_id, bytes.fromhex(content_hash))
        assert blake3.blake3(body).hexdigest() == content_hash
    # nothing half-visible: every row that exists has its body
    for row in rows:
        srv.call(srv.store.read_message, account_id, row.content_hash)
