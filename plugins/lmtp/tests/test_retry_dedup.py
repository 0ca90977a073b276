"""An MTA retry (same sender, recipient and bytes within ``[storage] dedup_window``) answers 250 and stores
nothing, visibly: the delivery log line says ``result=duplicate`` with the stored copy it matched, and
``sora_deliveries_total{result="duplicate"}`` counts it — also once the first copy was expunged."""

from __future__ import annotations

import smtplib
from typing import Any

import pytest
from prometheus_client import generate_latest

MESSAGE = b"Subject: retry\r\nMessage-ID: <r1@example.org>\r\n\r\nbody\r\n"


def _send(srv: Any) -> dict[str, Any]:
    with smtplib.LMTP("127.0.0.1", srv.port("lmtp")) as client:
        return client.sendmail("mta@example.org", ["r@example.com"], MESSAGE)


def test_retry_is_acknowledged_stored_once_and_logged(sora_server: Any, caplog: pytest.LogCaptureFixture) -> None:
    srv = sora_server(plugins=["lmtp"])
    account = srv.create_account("r@example.com")
    assert _send(srv) == {}
    inbox = srv.call(srv.store.get_mailbox, account.id, "INBOX")
    assert inbox.uidnext == 2
    caplog.clear()
    assert _send(srv) == {}  # the retry: 250 all the same
    assert srv.call(srv.store.get_mailbox, account.id, "INBOX").message_count == 1
    line = next(r.getMessage() for r in caplog.records if "result=duplicate" in r.getMessage())
    assert "mailbox=INBOX" in line and " uid=1" in line  # the stored copy it matched
    # expunged since: a retry still matches the first delivery and stores nothing
    srv.call(srv.store.expunge, account.id, inbox.id, None, only_deleted=False)
    assert _send(srv) == {}
    assert srv.call(srv.store.get_mailbox, account.id, "INBOX").message_count == 0
    metrics = generate_latest(srv.kernel.registry).decode()
    assert 'sora_deliveries_total{result="duplicate"} 2.0' in metrics
    assert 'sora_deliveries_total{result="stored"} 1.0' in metrics
