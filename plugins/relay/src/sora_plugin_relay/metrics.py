"""Relay metrics, registered once per kernel in the kernel's own registry."""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import Counter, Gauge, Histogram

if TYPE_CHECKING:
    from sora_kernel.api import KernelServices, QueueStats


class RelayMetrics:
    """Queue depth and age per state, deliveries by result and transport, the breaker's state."""

    def __init__(self, kernel: KernelServices) -> None:
        registry = kernel.registry
        self.depth = Gauge("sora_relay_queue_depth", "Relay queue rows per state", ["state"],
                           registry=registry, multiprocess_mode="livemax")
        self.age = Gauge("sora_relay_queue_age_seconds", "Age of the oldest relay queue row per state",
                         ["state"], registry=registry, multiprocess_mode="livemax")
        self.deliveries = Counter("sora_relay_delivery", "Relay delivery attempts by result and transport",
                                  ["result", "transport"], registry=registry)
        self.seconds = Histogram("sora_relay_delivery_duration_seconds", "Time to hand one message to the relay",
                                 ["transport"], registry=registry)
        self.enqueued = Counter("sora_relay_queue_operations", "Relay enqueue requests by kind and result",
                                ["kind", "result"], registry=registry)
        self.breaker = Gauge("sora_relay_breaker_state", "Relay circuit breaker: 0 closed, 1 half-open, 2 open",
                             ["transport"], registry=registry, multiprocess_mode="livemax")

    def observe_stats(self, stats: QueueStats) -> None:
        """Set the depth and age gauges from one stats query."""
        for state, count in stats.depth.items():
            self.depth.labels(state).set(count)
        for state, age in stats.oldest.items():
            self.age.labels(state).set(age)
