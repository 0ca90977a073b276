"""kill -9 a `sora serve --worker` in the middle of a batch: after a restart every message is delivered
exactly once (or listed as failed), none lost."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from relay_support import SmtpSink, message, wait_for

from sora_kernel.testing import SoraTestServer


def _config(tmp_path: Path, dsn: str, sink: SmtpSink) -> Path:
    path = tmp_path / "sora.toml"
    path.write_text(f'''
[server]
data_dir = "{tmp_path / 'data'}"
hostname = "crash.test.local"
workers = 1
drain_timeout = "1s"

[database]
dsn = "{dsn}"

[metrics]
addr = ""

[storage]
fsync = false

[plugins]
enabled = ["relay"]

[relay]
smtp_host = "{sink.addr}"

[relay.queue]
interval = "0.2s"
batch_size = 20
concurrency = 2
lease = "2s"
''')
    return path


def _worker(config: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "SORA_CONFIG": str(config)}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "-m", "sora_cli.main", "--config", str(config), "serve", "--worker"],
                                stdout=out, stderr=subprocess.STDOUT, env=env)


def test_kill_9_mid_batch_loses_nothing_and_sends_nothing_twice(
        sora_server: Callable[..., SoraTestServer], smtp_sink: SmtpSink, tmp_path: Path) -> None:
    srv = sora_server(plugins=["relay"], run_services=False, config={"relay": {"smtp_host": smtp_sink.addr}})
    store = srv.kernel.store.relay
    ids = [f"<crash{n}@example.com>" for n in range(30)]
    for mid in ids:
        srv.call(lambda mid=mid: store.enqueue(kind="redirect", sender="alice@example.com",
                                               recipients=["bob@example.net"], raw=message("crash", message_id=mid)))
    handler = smtp_sink.handler
    handler.mode, handler.hold_after = "hold", 5
    config = _config(tmp_path, srv.kernel.config.get("database", "dsn"), smtp_sink)
    log = tmp_path / "worker.log"

    first = _worker(config, log)
    try:
        # both connections of the batch are waiting for their DATA answer: kill the worker there
        wait_for(lambda: handler.held >= 2 or first.poll() is not None, timeout=60, what="two held messages")
        assert first.poll() is None, log.read_text()
        assert len(handler.received) == 5
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=10)
    finally:
        if first.poll() is None:
            first.kill()
    stranded = srv.call(lambda: store.list("processing"))
    assert len(stranded) == 20 - 5  # the rest of the batch is leased by a dead worker
    handler.release.set()  # the held transactions get 451 on dead connections: not delivered
    handler.mode = "accept"

    second = _worker(config, log)
    try:
        def settled() -> bool:
            stats = srv.call(store.stats)
            return stats.depth["pending"] == 0 and stats.depth["processing"] == 0
        wait_for(settled, timeout=60, what="the queue to drain after the restart")
    finally:
        second.send_signal(signal.SIGTERM)
        try:
            second.wait(timeout=15)
        except subprocess.TimeoutExpired:
            second.kill()
    delivered = Counter(handler.message_ids())
    failed_rows = srv.call(lambda: store.list("failed"))
    failed = {row.raw.split(b"Message-ID: ")[1].split(b"\r\n")[0].decode() for row in failed_rows}
    assert all(count == 1 for count in delivered.values()), delivered.most_common(3)
    assert set(delivered) | failed == set(ids) and not set(delivered) & failed
    assert failed == set()  # nothing needed to fail here
    sent = srv.call(lambda: store.list("sent"))
    assert len(sent) == 30
    assert max(row.attempts for row in sent) == 2  # the stranded rows were retried once, after their lease
