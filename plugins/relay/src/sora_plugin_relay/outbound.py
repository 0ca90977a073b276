"""The relay's state in one kernel and the enqueue path behind ``sora_outbound``."""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import structlog

from sora_kernel.api import LimitExceeded, OutboundMessage

from .metrics import RelayMetrics
from .settings import QueueSettings, RelaySettings

if TYPE_CHECKING:
    from sora_kernel.api import KernelServices

    from .worker import RelayWorker

log = structlog.get_logger("sora.relay")


@dataclass
class RelayState:
    """Settings read once, the metrics and this process's worker (when it runs one)."""

    settings: RelaySettings
    queue: QueueSettings
    metrics: RelayMetrics
    workers: list[RelayWorker] = field(default_factory=list)


_STATES: weakref.WeakKeyDictionary[object, RelayState] = weakref.WeakKeyDictionary()


def state_of(kernel: KernelServices) -> RelayState:
    """The relay state of a kernel, made on first use (two kernels in one process stay apart)."""
    state = _STATES.get(kernel)
    if state is None:
        state = RelayState(RelaySettings.from_config(kernel.config), QueueSettings.from_config(kernel.config),
                           RelayMetrics(kernel))
        _STATES[kernel] = state
    return state


async def enqueue(kernel: KernelServices, message: OutboundMessage) -> bool | None:
    """Queue ``message`` durably; None when the relay is not configured (the kernel keeps its default),
    False when it is refused (too large, no recipient, over the account's redirect rate)."""
    state = state_of(kernel)
    settings = state.settings
    if not settings.configured:
        return None
    recipients = [r for r in message.recipients if r]
    fields = {"kind": message.kind, "sender": message.sender, "recipients": recipients,
              "account": message.account_id or None, "size": len(message.raw)}
    if not recipients:
        state.metrics.enqueued.labels(message.kind, "no_recipient").inc()
        log.warning("relay refused: no recipient", **fields)
        return False
    if len(message.raw) > settings.max_message_size:
        state.metrics.enqueued.labels(message.kind, "too_large").inc()
        log.warning("relay refused: message too large", **fields, limit=settings.max_message_size)
        return False
    limited = message.kind == "redirect" and settings.redirect_rate_limit > 0
    try:
        queue_id = await kernel.store.relay.enqueue(
            kind=message.kind, sender=message.sender, recipients=recipients, raw=message.raw,
            account_id=message.account_id or None, message_id=message.message_id, reason=message.reason,
            rate_limit=settings.redirect_rate_limit if limited else 0, rate_window=settings.redirect_rate_window)
    except LimitExceeded as exc:
        state.metrics.enqueued.labels(message.kind, "rate_limited").inc()
        log.warning("relay refused: redirect rate limit", **fields, error=str(exc))
        return False
    state.metrics.enqueued.labels(message.kind, "queued").inc()
    log.info("relay queued", queue_id=queue_id, **fields)
    return True
