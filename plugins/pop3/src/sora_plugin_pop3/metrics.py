"""POP3 metrics, registered once per kernel in the kernel's own registry."""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import Counter, Histogram

if TYPE_CHECKING:
    from sora_kernel.api import KernelServices, Metrics


class Pop3Metrics:
    """Counters the POP3 sessions of one kernel share (both listeners use the same object)."""

    def __init__(self, kernel: KernelServices) -> None:
        registry = kernel.registry
        self.kernel: Metrics = kernel.metrics
        self.retr_bytes = Counter(
            "sora_pop3_retr_bytes", "Message octets sent by POP3 RETR", registry=registry)
        self.expunged = Counter(
            "sora_pop3_expunged_messages", "Messages expunged by POP3 QUIT", registry=registry)
        self.lock_conflicts = Counter(
            "sora_pop3_lock_conflicts", "POP3 logins refused because the maildrop was in use",
            registry=registry)
        self.maildrop_messages = Histogram(
            "sora_pop3_maildrop_messages", "Messages in the maildrop at POP3 login",
            buckets=(0, 10, 100, 1000, 10_000, 50_000, 100_000), registry=registry)
