"""The queue and the worker against a real aiosmtpd MTA on loopback and a real PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from relay_support import SmtpSink, message, wait_for
from sora_plugin_relay.outbound import state_of
from sora_plugin_relay.worker import RelayWorker

from sora_kernel.api import OutboundMessage
from sora_kernel.testing import SoraTestServer

Factory = Callable[..., SoraTestServer]


def outbound(srv: SoraTestServer, raw: bytes, *, sender: str = "alice@example.com",
             recipients: tuple[str, ...] = ("bob@example.net",), kind: str = "redirect",
             account_id: int = 1) -> Any:
    """What the delivery pipeline does for a Sieve action: call the kernel's outbound hook."""
    msg = OutboundMessage(sender=sender, recipients=list(recipients), raw=raw, kind=kind, reason=kind,
                          account_id=account_id, message_id="<orig@example.com>")
    return srv.call(srv.kernel.plugins.outbound, srv.kernel, msg)


def worker(srv: SoraTestServer, owner: str = "") -> RelayWorker:
    state = state_of(srv.kernel)
    return RelayWorker(srv.kernel, state.settings, state.queue, state.metrics, owner=owner)


def rows(srv: SoraTestServer, state: str | None = None) -> list[Any]:
    return srv.call(srv.kernel.store.relay.list, state, 1000)


def sample(srv: SoraTestServer, name: str, **labels: str) -> float:
    return srv.kernel.registry.get_sample_value(name, labels) or 0.0


def test_a_queued_redirect_reaches_the_mta_with_its_envelope_and_bytes(relay_server: Factory,
                                                                       smtp_sink: SmtpSink) -> None:
    srv = relay_server(relay={"smtp_helo_host": "relay.test.local"})
    raw = message("hello")
    assert outbound(srv, raw, recipients=("bob@example.net", "carol@example.org")) is True
    queued = rows(srv)
    assert [(r.state, r.kind, r.sender, r.recipients, r.raw) for r in queued] == [
        ("pending", "redirect", "alice@example.com", ("bob@example.net", "carol@example.org"), raw)]
    w = worker(srv)
    srv.call(w.refresh_metrics)
    assert sample(srv, "sora_relay_queue_depth", state="pending") == 1
    assert sample(srv, "sora_relay_queue_age_seconds", state="pending") >= 0
    assert srv.call(w.run_once) == 1
    [got] = smtp_sink.handler.received
    assert (got.mail_from, got.rcpt_tos, got.data, got.helo) == (
        "alice@example.com", ["bob@example.net", "carol@example.org"], raw, "relay.test.local")
    [row] = rows(srv)
    assert row.state == "sent" and row.attempts == 1 and row.finished_at is not None
    assert sample(srv, "sora_relay_delivery_total", result="sent", transport="smtp") == 1
    srv.call(w.refresh_metrics)
    assert sample(srv, "sora_relay_queue_depth", state="sent") == 1
    assert sample(srv, "sora_relay_queue_depth", state="pending") == 0
    assert sample(srv, "sora_relay_queue_operations_total", kind="redirect", result="queued") == 1


def test_the_null_sender_goes_out_as_empty_mail_from(relay_server: Factory, smtp_sink: SmtpSink) -> None:
    srv = relay_server()
    assert outbound(srv, message("away"), sender="", kind="vacation") is True
    srv.call(worker(srv).run_once)
    [got] = smtp_sink.handler.received
    assert got.mail_from == "<>"  # aiosmtpd's spelling of MAIL FROM:<>


def test_a_batch_to_one_host_uses_one_connection_per_share(relay_server: Factory, smtp_sink: SmtpSink) -> None:
    srv = relay_server(queue={"concurrency": 1})
    for n in range(10):
        outbound(srv, message(f"m{n}"))
    w = worker(srv)
    assert srv.call(w.run_once) == 10
    assert len(smtp_sink.handler.received) == 10
    assert smtp_sink.handler.connections == 1
    srv2 = relay_server(queue={"concurrency": 3})
    for n in range(9):
        outbound(srv2, message(f"n{n}"))
    smtp_sink.handler.connections = 0
    assert srv2.call(worker(srv2).run_once) == 9
    assert smtp_sink.handler.connections == 3


def test_4xx_is_retried_on_the_backoff_schedule(relay_server: Factory, smtp_sink: SmtpSink) -> None:
    srv = relay_server()
    outbound(srv, message("later"))
    smtp_sink.handler.mode = "tempfail"
    w = worker(srv)
    before = datetime.now(UTC)
    srv.call(w.run_once)
    [row] = rows(srv)
    assert row.state == "pending" and row.attempts == 1
    assert "451" in row.last_error and row.errors == (row.last_error,)
    wait = (row.next_attempt - before).total_seconds()
    assert 59 <= wait <= 62  # the first backoff step is 1m
    assert srv.call(w.run_once) == 0  # not due yet
    assert srv.call(srv.kernel.store.relay.flush) == 1
    srv.call(w.run_once)
    [row] = rows(srv)
    assert row.attempts == 2 and len(row.errors) == 2
    wait = (row.next_attempt - datetime.now(UTC)).total_seconds()
    assert 290 <= wait <= 301  # then 5m
    smtp_sink.handler.mode = "accept"
    srv.call(srv.kernel.store.relay.flush)
    srv.call(w.run_once)
    assert rows(srv)[0].state == "sent" and len(smtp_sink.handler.received) == 1
    assert sample(srv, "sora_relay_delivery_total", result="retry", transport="smtp") == 2


def test_after_max_attempts_a_redirect_fails_and_bounces_to_its_sender(relay_server: Factory,
                                                                       smtp_sink: SmtpSink) -> None:
    srv = relay_server(queue={"max_attempts": 3, "backoff": ["0s"]})
    outbound(srv, message("doomed"))
    smtp_sink.handler.mode = "tempfail"
    w = worker(srv)
    for _ in range(3):
        srv.call(w.run_once)
    failed = rows(srv, "failed")
    assert len(failed) == 1 and failed[0].attempts == 3
    [bounce] = rows(srv, "pending")
    assert (bounce.kind, bounce.sender, bounce.recipients) == ("dsn", "", ("alice@example.com",))
    smtp_sink.handler.mode = "accept"
    srv.call(w.run_once)
    [got] = smtp_sink.handler.received
    assert got.mail_from == "<>" and got.rcpt_tos == ["alice@example.com"]
    assert got.message.get_content_type() == "multipart/report"
    assert b"Subject: doomed" in got.data and b"Status: 5.3.0" in got.data


def test_5xx_fails_at_once_and_the_bounce_of_a_bounce_is_never_sent(relay_server: Factory,
                                                                    smtp_sink: SmtpSink) -> None:
    srv = relay_server()
    outbound(srv, message("refused"))
    smtp_sink.handler.mode = "permfail"
    w = worker(srv)
    srv.call(w.run_once)
    [failed] = rows(srv, "failed")
    assert failed.attempts == 1 and "554" in failed.last_error
    [bounce] = rows(srv, "pending")
    assert bounce.kind == "dsn"
    srv.call(w.run_once)  # the DSN is refused too: it fails, and nothing bounces it
    assert len(rows(srv, "failed")) == 2 and rows(srv, "pending") == []
    assert w.breaker.state.name == "CLOSED"  # 5xx means the relay works


def test_a_refused_recipient_is_permanent(relay_server: Factory, smtp_sink: SmtpSink) -> None:
    srv = relay_server()
    outbound(srv, message("nobody"), sender="")
    smtp_sink.handler.mode = "rcpt550"
    srv.call(worker(srv).run_once)
    [failed] = rows(srv, "failed")
    assert "550" in failed.last_error
    assert rows(srv, "pending") == []  # <> gets no bounce


def test_a_dropped_connection_is_temporary_and_opens_the_breaker(relay_server: Factory,
                                                                 smtp_sink: SmtpSink) -> None:
    srv = relay_server(relay={"breaker_failures": 3, "breaker_open": "1h"}, queue={"concurrency": 1})
    for n in range(5):
        outbound(srv, message(f"d{n}"))
    smtp_sink.handler.mode = "drop"
    w = worker(srv)
    assert srv.call(w.run_once) == 5
    queued = rows(srv)
    # three real failures opened the breaker; the other two were given back without spending an attempt
    assert sorted(r.attempts for r in queued) == [0, 0, 1, 1, 1]
    assert all(r.state == "pending" for r in queued)
    assert w.breaker.state.name == "OPEN"
    assert sample(srv, "sora_relay_breaker_state", transport="smtp") == 2
    assert sample(srv, "sora_relay_delivery_total", result="released", transport="smtp") == 2
    srv.call(srv.kernel.store.relay.flush)
    assert srv.call(w.run_once) == 0  # an open breaker leases nothing


def test_the_mta_being_down_is_temporary(relay_server: Factory, smtp_sink: SmtpSink) -> None:
    srv = relay_server()
    outbound(srv, message("nobody home"))
    smtp_sink.stop()
    srv.call(worker(srv).run_once)
    [row] = rows(srv)
    assert row.state == "pending" and row.attempts == 1 and row.last_error


def test_an_expired_lease_is_retried_by_another_worker(relay_server: Factory, smtp_sink: SmtpSink) -> None:
    srv = relay_server()
    outbound(srv, message("orphan"))
    store = srv.kernel.store.relay
    [leased] = srv.call(store.lease, 10, 0.5, "crashed-node")
    assert leased.state == "processing" and leased.leased_by == "crashed-node"
    w = worker(srv, owner="survivor")
    assert srv.call(w.run_once) == 0  # still leased
    wait_for(lambda: srv.call(w.run_once) == 1, what="the lease to expire")
    [row] = rows(srv)
    assert row.state == "sent" and row.attempts == 2 and row.leased_by == "survivor"
    assert len(smtp_sink.handler.received) == 1


def test_two_workers_share_the_queue_without_sending_anything_twice(relay_server: Factory,
                                                                    smtp_sink: SmtpSink) -> None:
    import anyio

    srv = relay_server(queue={"batch_size": 7, "concurrency": 2})
    sent = {f"<w{n}@example.com>" for n in range(40)}
    for mid in sorted(sent):
        outbound(srv, message("w", message_id=mid))
    a, b = worker(srv, "a"), worker(srv, "b")

    async def both() -> None:
        async def drain(w: RelayWorker) -> None:
            while await w.run_once():
                pass

        async with anyio.create_task_group() as tg:
            tg.start_soon(drain, a)
            tg.start_soon(drain, b)

    srv.call(both)
    ids = smtp_sink.handler.message_ids()
    assert sorted(ids) == sorted(sent)
    owners = {r.leased_by for r in rows(srv, "sent")}
    assert len(rows(srv, "sent")) == 40 and owners <= {"a", "b"}


def test_the_service_wakes_on_enqueue(relay_server: Factory, smtp_sink: SmtpSink) -> None:
    srv = relay_server(queue={"interval": "1h"}, run_services=True)
    wait_for(lambda: state_of(srv.kernel).workers, what="the relay worker to start")
    outbound(srv, message("now"))
    wait_for(lambda: smtp_sink.handler.received, timeout=10, what="delivery on NOTIFY")
    wait_for(lambda: [r.state for r in rows(srv)] == ["sent"], what="the row marked sent")
    wait_for(lambda: sample(srv, "sora_relay_queue_depth", state="sent") == 1, what="the depth gauge")


def test_the_redirect_rate_limit_is_per_account(relay_server: Factory) -> None:
    srv = relay_server(relay={"redirect_rate_limit": 2})
    assert outbound(srv, message("1"), account_id=5) is True
    assert outbound(srv, message("2"), account_id=5) is True
    assert outbound(srv, message("3"), account_id=5) is False
    assert outbound(srv, message("4"), account_id=6) is True
    assert outbound(srv, message("5"), account_id=5, kind="vacation", sender="") is True
    assert len(rows(srv)) == 4
    assert sample(srv, "sora_relay_queue_operations_total", kind="redirect", result="rate_limited") == 1


def test_oversized_and_recipientless_messages_are_refused(relay_server: Factory) -> None:
    srv = relay_server(relay={"max_message_size": "2kb"})
    assert outbound(srv, message("big") + b"x" * 4096) is False
    assert outbound(srv, message("none"), recipients=("",)) is False
    assert rows(srv) == []


def test_without_a_relay_configured_outbound_is_left_to_the_kernel(sora_server: Factory) -> None:
    srv = sora_server(plugins=["relay"], run_services=False)
    assert outbound(srv, message("nowhere")) is False  # the kernel's facade: nobody accepted it
    assert rows(srv) == []
    from sora_plugin_relay import plugin

    assert plugin.sora_services(srv.kernel) == []


def test_retention_removes_old_sent_and_failed_rows(relay_server: Factory, smtp_sink: SmtpSink) -> None:
    srv = relay_server(queue={"sent_retention": "0s", "retention": "0s"})
    outbound(srv, message("a"))
    outbound(srv, message("b"), sender="")
    w = worker(srv)
    srv.call(w.run_once)
    smtp_sink.handler.mode = "permfail"
    outbound(srv, message("c"), sender="")
    srv.call(w.run_once)
    assert sorted(r.state for r in rows(srv)) == ["failed", "sent", "sent"]
    store = srv.kernel.store.relay
    assert srv.call(lambda: store.purge(sent_older_than=0, failed_older_than=3600, rate_older_than=0)) == 2
    assert [r.state for r in rows(srv)] == ["failed"]
    assert srv.call(lambda: store.purge(sent_older_than=0, failed_older_than=0, rate_older_than=0)) == 1


@pytest.mark.parametrize("with_auth", [False, True], ids=["starttls", "starttls+auth"])
def test_starttls_with_verification_off_and_auth(sora_server: Factory, server_tls: Any, with_auth: bool) -> None:
    users = {"relayuser": "s3cret"} if with_auth else None
    sink = SmtpSink(starttls=server_tls, users=users)
    try:
        relay = {"smtp_host": sink.addr, "smtp_use_starttls": True, "smtp_tls_verify": False}
        if with_auth:
            relay.update(smtp_username="relayuser", smtp_password="s3cret")
        srv = sora_server(plugins=["relay"], config={"relay": relay}, run_services=False)
        outbound(srv, message("secure"))
        srv.call(worker(srv).run_once)
        [got] = sink.handler.received
        assert got.rcpt_tos == ["bob@example.net"]
        assert got.login == ("relayuser" if with_auth else "")
    finally:
        sink.stop()


def test_starttls_verification_refuses_a_self_signed_certificate(sora_server: Factory, server_tls: Any) -> None:
    sink = SmtpSink(starttls=server_tls)
    try:
        srv = sora_server(plugins=["relay"], run_services=False,
                          config={"relay": {"smtp_host": sink.addr, "smtp_use_starttls": True}})
        outbound(srv, message("mitm"))
        srv.call(worker(srv).run_once)
        [row] = rows(srv)
        assert row.state == "pending" and "certificate" in row.last_error.lower()
        assert sink.handler.received == []
    finally:
        sink.stop()


def test_wrong_auth_credentials_are_retried_not_lost(sora_server: Factory, server_tls: Any) -> None:
    sink = SmtpSink(starttls=server_tls, users={"relayuser": "s3cret"})
    try:
        srv = sora_server(plugins=["relay"], run_services=False, config={"relay": {
            "smtp_host": sink.addr, "smtp_use_starttls": True, "smtp_tls_verify": False,
            "smtp_username": "relayuser", "smtp_password": "wrong"}})
        outbound(srv, message("auth"))
        srv.call(worker(srv).run_once)
        [row] = rows(srv)
        assert row.state == "pending" and "535" in row.last_error
    finally:
        sink.stop()


def test_implicit_tls(sora_server: Factory, server_tls: Any) -> None:
    sink = SmtpSink(tls=server_tls)
    try:
        srv = sora_server(plugins=["relay"], run_services=False, config={"relay": {
            "smtp_host": sink.addr, "smtp_tls": True, "smtp_tls_verify": False}})
        outbound(srv, message("wrapped"))
        srv.call(worker(srv).run_once)
        [got] = sink.handler.received
        assert got.rcpt_tos == ["bob@example.net"]
        assert rows(srv)[0].state == "sent"
    finally:
        sink.stop()


@pytest.mark.parametrize(("relay", "error"), [
    ({"smtp_host": "127.0.0.1:25", "smtp_tls": True, "smtp_use_starttls": True}, "exclude each other"),
    ({"smtp_host": "no-port"}, "smtp_host"),
    ({"type": "http", "http_url": "ftp://x"}, "http_url"),
    ({"type": "carrier-pigeon"}, "type"),
])
def test_inconsistent_transport_settings_stop_start_up(sora_server: Factory, relay: dict[str, Any],
                                                       error: str) -> None:
    from sora_kernel.api import ConfigError

    with pytest.raises(ConfigError, match=error):
        sora_server(plugins=["relay"], run_services=False, config={"relay": relay})


def test_health_reports_the_queue(relay_server: Factory) -> None:
    srv = relay_server()
    outbound(srv, message("h"))
    checks = [c for _, c in srv.kernel.plugins.collect("sora_health_checks", kernel=srv.kernel)]
    [relay] = [c for c in checks if c.name == "relay"]
    ok, detail = srv.call(relay.check)
    assert ok and "pending 1" in detail


def test_partly_refused_recipients_are_deferred_or_bounced_without_resending_to_the_others(
        relay_server: Factory, smtp_sink: SmtpSink) -> None:
    srv = relay_server()
    raw = message("partial")
    outbound(srv, raw, recipients=("ok@example.net", "later@example.net", "gone@example.net"))
    smtp_sink.handler.mode = "partial"
    w = worker(srv)
    srv.call(w.run_once)
    [got] = smtp_sink.handler.received
    assert got.rcpt_tos == ["ok@example.net"]
    by_state = {r.state: r for r in rows(srv) if r.kind == "redirect"}
    assert by_state["sent"].recipients == ("ok@example.net",)
    deferred = by_state["pending"]
    assert deferred.recipients == ("later@example.net",) and deferred.attempts == 1 and "450" in deferred.last_error
    assert 55 <= (deferred.next_attempt - datetime.now(UTC)).total_seconds() <= 61
    [bounce] = [r for r in rows(srv) if r.kind == "dsn"]
    assert bounce.recipients == ("alice@example.com",)
    assert b"Final-Recipient: rfc822; gone@example.net" in bounce.raw
    assert b"later@example.net" not in bounce.raw.split(b"text/rfc822-headers")[0]
    smtp_sink.handler.mode = "accept"
    srv.call(srv.kernel.store.relay.flush)
    srv.call(w.run_once)
    assert sorted(tuple(r.rcpt_tos) for r in smtp_sink.handler.received) == [
        ("alice@example.com",), ("later@example.net",), ("ok@example.net",)]
