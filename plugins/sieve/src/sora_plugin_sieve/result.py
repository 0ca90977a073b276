"""Executing a result: the messages a Sieve result sends (redirect, vacation, reject MDN, notify).

Pure functions over the message and the envelope, shared by the delivery hook and the conformance
harness, so both send the same bytes. RFC 3834 rules for automatic replies live in
:func:`vacation_allowed`; the redirect loop trace (``X-Sieve-Redirected-From``) and its hop limit in
:func:`redirect_message`.
"""

from __future__ import annotations

import email.utils
import time
import uuid
from dataclasses import dataclass
from email.header import Header

from .interpreter import Action, Envelope
from .message import MessageView, parse_addresses

TRACE_HEADER = "X-Sieve-Redirected-From"
MAX_REDIRECT_HOPS = 8


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One message to send: envelope sender ('' for ``<>``), recipients, bytes, why."""

    sender: str
    recipients: tuple[str, ...]
    raw: bytes
    kind: str


def _header(name: str, value: str) -> str:
    if value.isascii():
        return f"{name}: {value}\r\n"
    return f"{name}: {Header(value, 'utf-8').encode()}\r\n"


def _message_id(hostname: str) -> str:
    return f"<{uuid.uuid4().hex}.{int(time.time())}@{hostname}>"


def redirect_sender(setting: str, envelope: Envelope, user_email: str) -> str:
    """The envelope sender of a redirect: ``sender`` (default), ``recipient``, ``orig_recipient``,
    ``user_email``, ``<>`` or an explicit ``<address>`` (Pigeonhole's ``sieve_redirect_envelope_from``)."""
    setting = setting.strip()
    if envelope.sender == "":
        return ""
    if setting == "recipient":
        return envelope.recipient
    if setting == "orig_recipient":
        return envelope.original_recipient or envelope.recipient
    if setting == "user_email":
        return user_email or envelope.recipient
    if setting.startswith("<") and setting.endswith(">"):
        return setting[1:-1].strip()
    return envelope.sender


def redirect_message(message: MessageView, envelope: Envelope, action: Action, user: str,
                     *, envelope_from: str | None = None) -> Outgoing | None:
    """The original message with a trace header naming ``user``, to ``action.address``.

    None (a loop) when the message already carries a trace header naming the user or the envelope
    recipient, or more than :data:`MAX_REDIRECT_HOPS` of them.
    """
    hops = sum(1 for name, _ in message.fields if name.lower() == TRACE_HEADER.lower())
    if hops >= MAX_REDIRECT_HOPS:
        return None
    me = {a.lower() for a in (user, envelope.recipient) if a}
    for name, value in message.fields:
        if name.lower() == TRACE_HEADER.lower() and value.strip().lower() in me:
            return None
    original = action.options.get("raw")
    raw = _header(TRACE_HEADER, user).encode() + (original if isinstance(original, bytes) else message.to_bytes())
    sender = envelope.sender if envelope_from is None else envelope_from
    return Outgoing(sender, (action.address,), raw, "redirect")


_LIST_HEADERS = ("list-id", "list-help", "list-subscribe", "list-unsubscribe", "list-post", "list-owner",
                 "list-archive")


def vacation_allowed(message: MessageView, envelope: Envelope, user_addresses: list[str],
                     extra_addresses: list[str], *, check_recipient: bool = True) -> tuple[bool, str]:
    """RFC 5230 §4.5 / RFC 3834: whether an automatic reply may go to this sender.

    ``(True, address)``: the user's address found in the recipient fields (the reply comes from it);
    ``(False, why)`` otherwise.
    """
    sender = envelope.sender.strip()
    if not sender or sender == "<>":
        return False, "null envelope sender"
    local = sender.rpartition("@")[0].lower()
    if local in ("mailer-daemon", "listserv", "majordomo", "owner") or local.startswith("owner-") or \
            local.endswith("-request") or local == "mailer":
        return False, "sender is a list or daemon address"
    for value in message.values("auto-submitted"):
        if value.strip().lower().split(";")[0].strip() != "no":
            return False, "message is auto-submitted"
    for value in message.values("precedence"):
        if value.strip().lower() in ("bulk", "list", "junk"):
            return False, "bulk or list precedence"
    if any(message.values(name) for name in _LIST_HEADERS):
        return False, "mailing list message"
    for value in message.values("x-auto-response-suppress"):
        if {v.strip().lower() for v in value.split(",")} & {"all", "oof", "autoreply"}:
            return False, "auto response suppressed"
    mine = {a.lower() for a in [*user_addresses, *extra_addresses] if a}
    if sender.lower() in mine:
        return False, "sender is the user"
    if not check_recipient:
        return True, ""
    for name in ("to", "cc", "bcc", "resent-to", "resent-cc", "resent-bcc"):
        for value in message.raw_values(name):
            for addr in parse_addresses(value):
                if addr.lower() in mine:
                    return True, addr
    return False, "user is not an explicit recipient"


MAX_SUBJECT = 256


def _reply_to_header(message: MessageView, sender: str, ignore_envelope: bool) -> str:
    for name in ("sender", "from", "resent-from"):
        for value in message.raw_values(name):
            found = parse_addresses(value)
            if found and (ignore_envelope or found[0].lower() == sender.lower()):
                return value.replace("\r\n", "").strip()
    return f"<{sender}>"


def vacation_reply(message: MessageView, envelope: Envelope, action: Action, user: str, hostname: str,
                   *, default_subject: str = "", subject_template: str = "", from_address: str = "",
                   to_header_ignore_envelope: bool = False, envelope_from: str = "") -> Outgoing:
    """The vacation reply (RFC 5230 §5): a new message, never the original.

    Without ``:subject`` the subject is ``subject_template`` (``%{subject}``/``%$`` is the original),
    else ``default_subject``, else ``Auto: <original>``; at most 256 characters (then an ellipsis).
    """
    options = action.options
    original_subject = message.values("subject")[0] if message.values("subject") else ""
    subject = options.get("subject")
    if subject is None:
        if subject_template:
            subject = subject_template.replace("%{subject}", original_subject).replace("%$", original_subject)
        else:
            subject = default_subject or ("Auto: " + original_subject if original_subject else "Automated reply")
    if len(subject) > MAX_SUBJECT:
        subject = subject[:MAX_SUBJECT - 1] + "\u2026"
    from_value = options.get("from") or from_address or user
    to = envelope.sender
    msgid = message.values("message-id")[0].strip() if message.values("message-id") else ""
    references = message.values("references")[0].strip() if message.values("references") else ""
    head = [
        _header("From", from_value),
        _header("To", _reply_to_header(message, to, to_header_ignore_envelope)),
        _header("Subject", subject),
        f"Date: {email.utils.formatdate(localtime=False)}\r\n",
        f"Message-ID: {_message_id(hostname)}\r\n",
        "Auto-Submitted: auto-replied (vacation)\r\n",
        "Precedence: bulk\r\n",
        "X-Sieve: Sora Sieve\r\n",
    ]
    if msgid:
        head.append(f"In-Reply-To: {msgid}\r\n")
        head.append(f"References: {(references + ' ' + msgid).strip()}\r\n")
    reason = action.reason
    if options.get("mime"):
        body = reason.replace("\r\n", "\n").replace("\n", "\r\n")
        raw = ("".join(head) + "MIME-Version: 1.0\r\n" + body).encode("utf-8")
    else:
        body = reason.replace("\r\n", "\n").replace("\n", "\r\n")
        if not body.endswith("\r\n"):
            body += "\r\n"
        raw = ("".join(head) + "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
               "Content-Transfer-Encoding: 8bit\r\n\r\n" + body).encode("utf-8")
    return Outgoing(envelope_from, (to,), raw, "vacation")


def reject_mdn(message: MessageView, envelope: Envelope, action: Action, user: str, hostname: str) -> Outgoing | None:
    """RFC 5429 §2.2: a disposition notification to the sender; None for ``<>`` mail."""
    sender = envelope.sender.strip()
    if not sender:
        return None
    boundary = f"=_sora_{uuid.uuid4().hex}"
    original_subject = message.values("subject")[0] if message.values("subject") else ""
    msgid = message.values("message-id")[0].strip() if message.values("message-id") else ""
    reason = action.reason.replace("\r\n", "\n").replace("\n", "\r\n")
    head = "".join([
        f"From: Mail Delivery Subsystem <postmaster@{hostname}>\r\n",
        f"To: <{sender}>\r\n",
        _header("Subject", f"Automatically rejected mail: {original_subject}" if original_subject
                else "Automatically rejected mail"),
        f"Date: {email.utils.formatdate(localtime=False)}\r\n",
        f"Message-ID: {_message_id(hostname)}\r\n",
        "Auto-Submitted: auto-replied (rejected)\r\n",
        "Precedence: bulk\r\n",
        "MIME-Version: 1.0\r\n",
        f'Content-Type: multipart/report; report-type=disposition-notification; boundary="{boundary}"\r\n',
    ])
    original_headers = message.to_bytes().split(b"\r\n\r\n", 1)[0].decode("utf-8", "replace")
    body = (
        f"\r\nThis is a MIME-encapsulated message\r\n\r\n--{boundary}\r\n"
        "Content-Type: text/plain; charset=utf-8\r\nContent-Disposition: inline\r\n"
        "Content-Transfer-Encoding: 8bit\r\n\r\n"
        f"Your message to <{envelope.recipient}> was automatically rejected:\r\n{reason}\r\n"
        f"\r\n--{boundary}\r\nContent-Type: message/disposition-notification\r\n\r\n"
        f"Reporting-UA: {hostname}; Sora Sieve\r\n"
        f"Final-Recipient: rfc822; {envelope.recipient or user}\r\n"
        + (f"Original-Message-ID: {msgid}\r\n" if msgid else "")
        + "Disposition: automatic-action/MDN-sent-automatically; deleted\r\n"
        f"\r\n--{boundary}\r\nContent-Type: text/rfc822-headers\r\n\r\n{original_headers}\r\n"
        f"\r\n--{boundary}--\r\n"
    )
    return Outgoing("", (sender,), (head + body).encode("utf-8"), "reject")
