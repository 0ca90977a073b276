"""Delivery status notifications (RFC 3464 ``multipart/report``) for a message that finally failed."""

from __future__ import annotations

import email.utils
import re
from datetime import UTC, datetime

from sora_kernel.api import QueuedMessage

_STATUS = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")


def _status(error: str, code: int) -> str:
    match = _STATUS.search(error)
    if match:
        return "5." + ".".join(match.groups()[1:])  # the message failed for good, whatever the last class
    return "5.0.0" if code < 500 else f"5.{(code // 10) % 10}.0"


def _headers_of(raw: bytes, limit: int = 64 * 1024) -> bytes:
    end = raw.find(b"\r\n\r\n")
    head = raw[: end + 2] if end >= 0 else raw
    return head[:limit]


def build_dsn(message: QueuedMessage, *, reporting_mta: str, error: str, code: int = 0,
              now: datetime | None = None) -> bytes:
    """The bounce for ``message`` to its envelope sender: human text, ``message/delivery-status`` with one
    block per recipient, and the original header (``text/rfc822-headers``). CRLF line ends."""
    now = now or datetime.now(UTC)
    boundary = f"=_sora_dsn_{message.id}_{int(now.timestamp())}"
    status = _status(error, code)
    diagnostic = " ".join(error.split())[:900] or "delivery failed"
    recipients = ", ".join(message.recipients)
    human = (
        f"This is the mail system at {reporting_mta}.\r\n\r\n"
        f"A message could not be delivered to: {recipients}\r\n"
        f"after {message.attempts} attempt(s). The last answer was:\r\n\r\n    {diagnostic}\r\n")
    per_message = (
        f"Reporting-MTA: dns; {reporting_mta}\r\n"
        f"Arrival-Date: {email.utils.format_datetime(message.queued_at)}\r\n")
    per_recipient = "".join(
        f"\r\nFinal-Recipient: rfc822; {rcpt}\r\nAction: failed\r\nStatus: {status}\r\n"
        f"Diagnostic-Code: smtp; {diagnostic}\r\n"
        f"Last-Attempt-Date: {email.utils.format_datetime(message.last_attempt or now)}\r\n"
        for rcpt in message.recipients)
    head = (
        f"From: Mail Delivery System <MAILER-DAEMON@{reporting_mta}>\r\n"
        f"To: <{message.sender}>\r\n"
        f"Subject: Undelivered Mail Returned to Sender\r\n"
        f"Date: {email.utils.format_datetime(now)}\r\n"
        f"Message-ID: {email.utils.make_msgid('dsn', domain=reporting_mta)}\r\n"
        f"Auto-Submitted: auto-replied\r\n"
        f"MIME-Version: 1.0\r\n"
        f'Content-Type: multipart/report; report-type=delivery-status; boundary="{boundary}"\r\n'
        "\r\n")
    body = (
        f"--{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{human}\r\n"
        f"--{boundary}\r\nContent-Type: message/delivery-status\r\n\r\n{per_message}{per_recipient}\r\n"
        f"--{boundary}\r\nContent-Type: text/rfc822-headers\r\n\r\n")
    return (head + body).encode("utf-8") + _headers_of(message.raw) + f"\r\n--{boundary}--\r\n".encode()
