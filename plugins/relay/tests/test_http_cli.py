"""The HTTP transport against a real loopback endpoint, and `sora relay ...` as an operator runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from relay_support import HttpSink, SmtpSink, message
from sora_plugin_relay.outbound import state_of
from sora_plugin_relay.worker import RelayWorker

from sora_kernel.api import OutboundMessage
from sora_kernel.testing import SoraTestServer

Factory = Callable[..., SoraTestServer]


def _outbound(srv: SoraTestServer, raw: bytes, sender: str = "alice@example.com") -> Any:
    msg = OutboundMessage(sender=sender, recipients=["bob@example.net"], raw=raw, kind="redirect", account_id=1)
    return srv.call(srv.kernel.plugins.outbound, srv.kernel, msg)


def _worker(srv: SoraTestServer) -> RelayWorker:
    state = state_of(srv.kernel)
    return RelayWorker(srv.kernel, state.settings, state.queue, state.metrics)


def test_http_posts_json_with_the_bearer_token(sora_server: Factory, http_sink: HttpSink) -> None:
    srv = sora_server(plugins=["relay"], run_services=False, config={"relay": {
        "type": "http", "http_url": http_sink.url, "auth_token": "t0ken"}})
    raw = message("over http")
    assert _outbound(srv, raw) is True
    srv.call(_worker(srv).run_once)
    [(headers, body)] = http_sink.requests
    assert headers["authorization"] == "Bearer t0ken"
    assert headers["content-type"] == "application/json"
    assert body == {"from": "alice@example.com", "recipients": ["bob@example.net"], "message": raw.decode()}
    [row] = srv.call(srv.kernel.store.relay.list)
    assert row.state == "sent"
    assert srv.kernel.registry.get_sample_value("sora_relay_delivery_total",
                                                {"result": "sent", "transport": "http"}) == 1


def test_http_5xx_is_retried_and_4xx_fails(sora_server: Factory, http_sink: HttpSink) -> None:
    srv = sora_server(plugins=["relay"], run_services=False, config={"relay": {
        "type": "http", "http_url": http_sink.url}})
    store = srv.kernel.store.relay
    _outbound(srv, message("first"))
    http_sink.status = 503
    w = _worker(srv)
    srv.call(w.run_once)
    [row] = srv.call(store.list)
    assert row.state == "pending" and "503" in row.last_error
    http_sink.status = 400
    srv.call(store.flush)
    srv.call(w.run_once)
    states = sorted(r.state for r in srv.call(store.list))
    assert states == ["failed", "pending"]  # failed, and its DSN to alice is queued
    assert "authorization" not in http_sink.requests[0][0]


def _sora(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    return subprocess.run([sys.executable, "-m", "sora_cli.main", "--config", str(config), *args],
                          capture_output=True, text=True, timeout=60, env=env)


def test_sora_relay_list_show_requeue_delete_flush(sora_server: Factory, smtp_sink: SmtpSink,
                                                   tmp_path: Path) -> None:
    srv = sora_server(plugins=["relay"], run_services=False, config={"relay": {"smtp_host": smtp_sink.addr}})
    store = srv.kernel.store.relay
    queued = [srv.call(lambda n=n: store.enqueue(kind="redirect", sender="alice@example.com",
                                                 recipients=["bob@example.net"], raw=message(f"c{n}")))
              for n in range(3)]
    srv.call(lambda: store.lease(1, 300, "someone"))  # queued[0] is being sent
    srv.call(lambda: store.mark_failed(queued[1], "550 5.1.1 gone"))
    config = tmp_path / "sora.toml"
    dsn = srv.kernel.config.get("database", "dsn")
    config.write_text(f'[server]\ndata_dir = "{tmp_path / "data"}"\n[database]\ndsn = "{dsn}"\n'
                      f'[plugins]\nenabled = ["relay"]\n[relay]\nsmtp_host = "{smtp_sink.addr}"\n'
                      '[relay.queue]\nbatch_size = 7\nbackoff = ["30s", "2h"]\n')

    listed = _sora(config, "relay", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert [(r["id"], r["state"]) for r in rows] == [(queued[0], "processing"), (queued[1], "failed"),
                                                     (queued[2], "pending")]
    assert "raw" not in rows[0] and rows[0]["size"] > 0
    failed = _sora(config, "relay", "list", "--state", "failed", "--json")
    assert [r["id"] for r in json.loads(failed.stdout)] == [queued[1]]
    assert _sora(config, "relay", "list", "--state", "bogus").returncode == 2
    table = _sora(config, "relay", "list")
    assert "550 5.1.1 gone" in table.stdout and "<alice@example.com> -> bob@example.net" in table.stdout

    shown = json.loads(_sora(config, "relay", "show", str(queued[1]), "--json").stdout)
    assert shown["last_error"] == "550 5.1.1 gone" and shown["errors"] == ["550 5.1.1 gone"]
    raw = subprocess.run([sys.executable, "-m", "sora_cli.main", "--config", str(config), "relay", "show",
                          str(queued[2]), "--raw"], capture_output=True, timeout=60)
    assert raw.stdout == srv.call(lambda: store.get(queued[2])).raw
    missing = _sora(config, "relay", "show", "999999")
    assert missing.returncode == 1 and "no queued message 999999" in missing.stderr
    stats = json.loads(_sora(config, "relay", "stats", "--json").stdout)
    assert stats["depth"] == {"pending": 1, "processing": 1, "sent": 0, "failed": 1}

    assert _sora(config, "relay", "requeue", str(queued[1])).stdout.strip() == "requeued 1"
    again = srv.call(lambda: store.get(queued[1]))
    assert again.state == "pending" and again.attempts == 0
    assert _sora(config, "relay", "requeue").returncode == 2
    assert _sora(config, "relay", "requeue", str(queued[0])).returncode == 1  # a worker holds it

    leased = _sora(config, "relay", "delete", str(queued[0]))
    assert leased.returncode == 1 and "a worker is sending it" in leased.stderr
    assert _sora(config, "relay", "delete", str(queued[2])).stdout.strip() == f"deleted {queued[2]}"

    [retried] = srv.call(lambda: store.lease(5, 300, "w"))  # the requeued row
    assert retried.id == queued[1]
    srv.call(lambda: store.mark_retry(queued[1], "451 later", 3600))
    assert srv.call(lambda: store.lease(5, 300, "w")) == []  # deferred for an hour
    assert _sora(config, "relay", "flush").stdout.strip() == "flushed 1"
    [due] = srv.call(lambda: store.lease(5, 300, "w"))
    assert due.id == queued[1]


def test_sora_bench_relay_enqueue_prints_both_stores(sora_server: Factory, smtp_sink: SmtpSink,
                                                     tmp_path: Path) -> None:
    srv = sora_server(plugins=["relay"], run_services=False, config={"relay": {"smtp_host": smtp_sink.addr}})
    config = tmp_path / "sora.toml"
    config.write_text(f'[server]\ndata_dir = "{tmp_path / "data"}"\n[database]\n'
                      f'dsn = "{srv.kernel.config.get("database", "dsn")}"\n[plugins]\nenabled = ["relay"]\n')
    (tmp_path / "data").mkdir()
    result = _sora(config, "bench", "relay-enqueue", "--count", "20", "--concurrency", "2")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["count"] == 20 and report["postgresql_per_second"] > 0 and report["spool_per_second"] > 0
    assert srv.call(srv.kernel.store.relay.list) == []  # the bench removes its rows
    assert not list((tmp_path / "data").glob("relay-spool-*"))  # and its spool
