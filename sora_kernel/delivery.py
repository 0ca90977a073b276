"""The delivery pipeline shared by every ingress (LMTP, the HTTP API): headers, parse once,
per-recipient actions (Sieve), durable store, outcome per recipient."""

from __future__ import annotations

import dataclasses
import email.utils
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal

import blake3
import structlog

from .errors import NotFound, QuotaExceeded, StorageUnavailable, TemporaryStoreError
from .flags import split_flags
from .mime import normalize_crlf, parse_message
from .store.mailstore import INBOX
from .types import ActionKind, Delivery, DeliveryAction, OutboundMessage, Recipient

if TYPE_CHECKING:
    from .kernel import Kernel

log = structlog.get_logger("sora.delivery")

OutcomeKind = Literal["stored", "duplicate", "discarded", "rejected", "quota", "temporary", "storage", "loop"]


@dataclass(frozen=True)
class DeliveryOutcome:
    """What happened for one recipient; protocols map ``kind`` to their reply codes."""

    recipient: Recipient
    kind: OutcomeKind
    detail: str = ""
    mailbox: str = ""
    uid: int = 0

    @property
    def accepted(self) -> bool:
        """Whether the message is now the server's responsibility."""
        return self.kind in ("stored", "duplicate", "discarded")


def _count_delivered_to(raw: bytes, address: str) -> int:
    header_end = raw.find(b"\r\n\r\n")
    head = raw if header_end < 0 else raw[:header_end]
    needle = address.lower().encode("utf-8", "replace")
    count = 0
    for line in head.split(b"\r\n"):
        if line[:13].lower() == b"delivered-to:" and needle in line[13:].lower():
            count += 1
    return count


def header_fields(raw: bytes) -> list[tuple[str, str]]:
    """The header fields of ``raw`` (CRLF) as ``(name, value)``: value with its folding, no final CRLF.

    Split once per message; each recipient's Return-Path/Delivered-To/Received fields are put in
    front, so a filter (Sieve) gets the same view of the stored message without parsing it again.
    """
    end = raw.find(b"\r\n\r\n")
    head = b"" if raw.startswith(b"\r\n") else (raw if end < 0 else raw[:end])
    fields: list[tuple[str, str]] = []
    for line in head.split(b"\r\n"):
        if not line:
            continue
        if line[:1] in (b" ", b"\t"):
            if fields:
                name, value = fields[-1]
                fields[-1] = (name, value + "\r\n" + line.decode("utf-8", "replace"))
            continue
        colon = line.find(b":")
        if colon <= 0:
            continue
        value = line[colon + 1:].decode("utf-8", "replace")
        fields.append((line[:colon].decode("ascii", "replace").strip(), value[1:] if value[:1] == " " else value))
    return fields


class DeliveryService:
    """Delivers one message to many recipients; each recipient's failure stays its own."""

    def __init__(self, kernel: Kernel) -> None:
        self.kernel = kernel

    async def deliver(
        self,
        *,
        sender: str,
        recipients: list[Recipient],
        raw: bytes,
        remote_ip: str = "",
        helo: str = "",
        queue_id: str = "",
        protocol: str = "LMTP",
    ) -> list[DeliveryOutcome]:
        """Store ``raw`` for each recipient and return one outcome per recipient, in order."""
        kernel = self.kernel
        raw = normalize_crlf(raw)
        parsed = parse_message(raw)
        fields = header_fields(raw)
        received_at = datetime.now(UTC)
        received = (
            f"Received: from {helo or 'unknown'} ({'[' + remote_ip + ']' if remote_ip else 'unknown'})\r\n"
            f"\tby {kernel.hostname} (Sora) with {protocol} id {queue_id or '-'};\r\n"
            f"\t{email.utils.format_datetime(received_at)}\r\n"
        )
        outcomes = []
        for recipient in recipients:
            started = time.perf_counter()
            outcome = await self._deliver_one(sender, recipient, raw, parsed, received, received_at,
                                              remote_ip, helo, queue_id, fields)
            seconds = time.perf_counter() - started
            kernel.metrics.deliveries_total.labels(outcome.kind).inc()
            kernel.metrics.delivery_seconds.observe(seconds)
            if outcome.accepted:
                kernel.metrics.delivery_bytes.inc(len(raw))
            log.info("delivery", queue_id=queue_id, sender=sender, recipient=recipient.address,
                     account=recipient.account_id, result=outcome.kind, mailbox=outcome.mailbox or None,
                     uid=outcome.uid or None, size=len(raw), ms=round(seconds * 1000, 2),
                     detail=outcome.detail or None)
            outcomes.append(outcome)
        return outcomes

    async def _deliver_one(
        self, sender: str, recipient: Recipient, raw: bytes, parsed, received: str,  # type: ignore[no-untyped-def]
        received_at: datetime, remote_ip: str, helo: str, queue_id: str,
        fields: list[tuple[str, str]] | None = None,
    ) -> DeliveryOutcome:
        kernel = self.kernel
        limit = kernel.config.get("delivery", "max_delivered_to")
        if limit and _count_delivered_to(raw, recipient.primary_address) >= limit:
            return DeliveryOutcome(recipient, "loop", "mail loop detected (Delivered-To)")
        delivery = Delivery(recipient=recipient, sender=sender, raw=raw, received_at=received_at,
                            remote_ip=remote_ip, helo=helo, queue_id=queue_id)
        try:
            extra = kernel.plugins.delivery_headers(kernel, delivery)
            prefix = (f"Return-Path: <{sender}>\r\nDelivered-To: {recipient.primary_address}\r\n"
                      + "".join(f"{name}: {value}\r\n" for name, value in extra) + received)
            final = prefix.encode("utf-8") + raw
            final_parsed = dataclasses.replace(
                parsed, size=len(final),
                header_text="".join(line.strip() + "\n" for line in prefix.replace("\r\n\t", " ").split("\r\n")
                                    if line.strip()) + parsed.header_text,
            )
            delivery.raw = final
            delivery.parsed = final_parsed
            delivery.headers = header_fields(prefix.encode("utf-8") + b"\r\n") + (
                fields if fields is not None else header_fields(raw))
            actions = await kernel.plugins.delivery_actions(kernel, delivery)
            if actions is None:
                actions = [DeliveryAction(ActionKind.KEEP)]
            key = blake3.blake3(
                sender.lower().encode() + b"\0" + recipient.address.lower().encode() + b"\0" + raw).digest()
            stored: DeliveryOutcome | None = None
            for action in actions:
                if action.kind == ActionKind.REJECT:
                    return DeliveryOutcome(recipient, "rejected", action.reason or "rejected by filter")
            outbound: list[DeliveryAction] = []
            for action in actions:
                if action.kind in (ActionKind.KEEP, ActionKind.FILEINTO):
                    name = action.mailbox if action.kind == ActionKind.FILEINTO and action.mailbox else INBOX
                    if action.raw is not None and action.raw != final:
                        edited = normalize_crlf(action.raw)
                        stored = await self._store(recipient, name, action, edited, parse_message(edited), key)
                    else:
                        stored = await self._store(recipient, name, action, final, final_parsed, key)
                elif action.kind in (ActionKind.REDIRECT, ActionKind.VACATION, ActionKind.SEND):
                    outbound.append(action)
            # only once every copy is stored: a temporary store failure above makes the MTA retry
            # with nothing sent yet, and the gate (vacation once per sender) is asked at the last moment
            for action in outbound:
                await self._outbound(delivery, action)
            return stored or DeliveryOutcome(recipient, "discarded", "discarded by filter")
        except QuotaExceeded as exc:
            return DeliveryOutcome(recipient, "quota", str(exc))
        except StorageUnavailable as exc:  # disk full or read-only: "insufficient system storage"
            return DeliveryOutcome(recipient, "storage", str(exc))
        except (TemporaryStoreError, OSError) as exc:
            return DeliveryOutcome(recipient, "temporary", str(exc))

    async def _store(self, recipient: Recipient, name: str, action: DeliveryAction, raw: bytes,
                     parsed, key: bytes) -> DeliveryOutcome:  # type: ignore[no-untyped-def]
        store = self.kernel.store
        mailbox = await store.get_mailbox(recipient.account_id, name)
        if mailbox is None and action.create and name != INBOX:
            try:
                mailbox = await store.create_mailbox(recipient.account_id, name)
            except Exception as exc:  # an invalid name falls back to INBOX, as Sieve requires
                log.warning("fileinto :create failed", mailbox=name, error=str(exc))
        if mailbox is None:
            if name != INBOX:
                log.info("fileinto target missing, keeping in INBOX", mailbox=name)
            await store.ensure_default_mailboxes(recipient.account_id)
            mailbox = await store.get_mailbox(recipient.account_id, INBOX)
            if mailbox is None:
                raise TemporaryStoreError("INBOX is missing")
        bits, keywords = split_flags(action.flags)
        try:
            result = await store.append(recipient.account_id, mailbox.id, raw, flags=bits, keywords=keywords,
                                        parsed=parsed, delivery_key=key, normalized=True)
        except NotFound as exc:
            raise TemporaryStoreError(str(exc)) from exc
        self.kernel.metrics.appends_total.labels("delivery").inc()
        return DeliveryOutcome(recipient, "duplicate" if result.duplicate else "stored",
                               mailbox=mailbox.name, uid=result.uid)

    async def _outbound(self, delivery: Delivery, action: DeliveryAction) -> None:
        if action.gate is not None and not await action.gate():
            log.info("outbound action not due", action=action.kind.value, recipient=delivery.recipient.address)
            return
        message = action.outbound
        if message is None:
            if action.kind == ActionKind.SEND:
                log.warning("send action without a message", recipient=delivery.recipient.address)
                return
            message = OutboundMessage(sender=delivery.recipient.primary_address,
                                      recipients=[action.address] if action.address else [delivery.sender],
                                      raw=delivery.raw, reason=action.kind.value, kind=action.kind.value,
                                      account_id=delivery.recipient.account_id)
        accepted = await self.kernel.plugins.outbound(self.kernel, message)
        if not accepted:
            log.warning("outbound action dropped: no relay plugin accepted it", action=action.kind.value,
                        recipient=delivery.recipient.address)
