"""Pure parts: the backoff schedule, the circuit breaker, the DSN."""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, datetime

import pytest
from sora_plugin_relay.breaker import BreakerState, CircuitBreaker
from sora_plugin_relay.dsn import build_dsn
from sora_plugin_relay.settings import DEFAULT_BACKOFF, QueueSettings, backoff_delay, parse_backoff

from sora_kernel.api import QueuedMessage


def test_default_backoff_is_the_go_schedule_and_the_last_delay_repeats() -> None:
    schedule = parse_backoff(DEFAULT_BACKOFF)
    assert QueueSettings().backoff == schedule
    waits = [backoff_delay(schedule, attempt) for attempt in range(1, 10)]
    assert waits == [60, 300, 900, 3600, 21600, 86400, 86400, 86400, 86400]
    assert QueueSettings().max_attempts == 10


def test_backoff_refuses_a_non_duration() -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_backoff(["1m", "soon"])
    with pytest.raises(ValueError):
        parse_backoff([])
    assert parse_backoff(["250ms", "2s", "1.5m", "1d"]) == (0.25, 2.0, 90.0, 86400.0)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_breaker_opens_after_consecutive_failures_and_closes_after_half_open_trials() -> None:
    clock = Clock()
    states: list[BreakerState] = []
    breaker = CircuitBreaker(failures=3, open_for=30, half_open=2, on_change=states.append, clock=clock)
    for _ in range(2):
        assert breaker.allow()
        breaker.failure()
    breaker.success()  # a success resets the count
    for _ in range(3):
        assert breaker.allow()
        breaker.failure()
    assert breaker.state == BreakerState.OPEN and not breaker.allow() and not breaker.allow_probe()
    assert breaker.remaining() == pytest.approx(30)
    clock.now += 30
    assert breaker.allow_probe()
    assert breaker.allow() and breaker.allow()
    assert not breaker.allow()  # only two trials while half-open
    assert breaker.state == BreakerState.HALF_OPEN
    breaker.success()
    breaker.success()
    assert breaker.state == BreakerState.CLOSED
    assert states == [BreakerState.OPEN, BreakerState.HALF_OPEN, BreakerState.CLOSED]


def test_a_failed_trial_reopens_the_breaker() -> None:
    clock = Clock()
    breaker = CircuitBreaker(failures=1, open_for=5, half_open=3, clock=clock)
    breaker.failure()
    clock.now += 5
    assert breaker.allow()
    breaker.failure()
    assert breaker.state == BreakerState.OPEN and breaker.remaining() == pytest.approx(5)


def _queued(raw: bytes) -> QueuedMessage:
    when = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
    return QueuedMessage(7, "redirect", "alice@example.com", ("bob@example.net", "carol@example.org"), raw, 1,
                         "<m1@example.com>", "redirect", "processing", 10, when, when, when, None, "", "", (), None)


def test_dsn_is_a_multipart_report_with_one_block_per_recipient_and_the_original_header() -> None:
    raw = b"From: x@example.com\r\nSubject: Original\r\nMessage-ID: <m1@example.com>\r\n\r\nsecret body\r\n"
    dsn = build_dsn(_queued(raw), reporting_mta="mx.test.local", error="550 5.1.1 No such user", code=550)
    assert b"\n" not in dsn.replace(b"\r\n", b"")
    parsed = email.message_from_bytes(dsn, policy=email.policy.default)
    assert parsed.get_content_type() == "multipart/report"
    assert parsed.get_param("report-type") == "delivery-status"
    assert str(parsed["To"]) == "alice@example.com"
    assert parsed["Auto-Submitted"] == "auto-replied"
    parts = list(parsed.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "message/delivery-status",
                                                     "text/rfc822-headers"]
    status = parts[1].as_string()
    assert "Reporting-MTA: dns; mx.test.local" in status
    assert status.count("Action: failed") == 2
    assert "Final-Recipient: rfc822; carol@example.org" in status
    assert "Status: 5.1.1" in status
    assert "Diagnostic-Code: smtp; 550 5.1.1 No such user" in status
    headers = parts[2].get_payload()
    assert "Subject: Original" in str(headers) and "secret body" not in dsn.decode()


def test_dsn_status_of_a_temporary_error_that_ran_out_of_attempts() -> None:
    dsn = build_dsn(_queued(b"Subject: x\r\n\r\n"), reporting_mta="h", error="451 4.3.0 Try again", code=451)
    assert b"Status: 5.3.0" in dsn
    dsn = build_dsn(_queued(b"Subject: x\r\n\r\n"), reporting_mta="h", error="ConnectionRefusedError")
    assert b"Status: 5.0.0" in dsn
