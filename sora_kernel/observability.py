"""Structured logging (structlog) and the kernel-owned Prometheus registry and metrics."""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


def _stderr_logger(*_args: Any) -> structlog.PrintLogger:
    # looked up per logger, so a replaced sys.stderr (test capture, daemonising) is honoured
    return structlog.PrintLogger(sys.stderr)


def configure_logging(*, fmt: str = "auto", level: str = "info") -> None:
    """Human-readable lines on a terminal, JSON lines otherwise (or as configured)."""
    use_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
    ]
    renderer: Any = structlog.processors.JSONRenderer() if use_json else structlog.dev.ConsoleRenderer(
        colors=sys.stderr.isatty())
    structlog.configure(
        processors=[*processors, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, level.upper(), logging.INFO)),
        logger_factory=_stderr_logger,
        cache_logger_on_first_use=False,
    )


def multiprocess_dir() -> str | None:
    """The prometheus-client multiprocess directory, when workers share metrics."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR")


class Metrics:
    """The kernel's metrics, registered in its own registry (two kernels never collide)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.connections_total = Counter(
            "sora_connections_total", "Client connections accepted", ["protocol"], registry=registry)
        self.connections_active = Gauge(
            "sora_connections_active", "Client connections open now", ["protocol"], registry=registry,
            multiprocess_mode="livesum")
        self.connections_refused = Counter(
            "sora_connections_refused_total", "Client connections refused", ["protocol", "reason"],
            registry=registry)
        self.commands_total = Counter(
            "sora_commands_total", "Protocol commands by name and result", ["protocol", "command", "result"],
            registry=registry)
        self.command_seconds = Histogram(
            "sora_command_duration_seconds", "Protocol command latency", ["protocol", "command"],
            buckets=_LATENCY_BUCKETS, registry=registry)
        self.auth_total = Counter(
            "sora_auth_attempts_total", "Authentication attempts", ["protocol", "result"], registry=registry)
        self.deliveries_total = Counter(
            "sora_deliveries_total", "Message deliveries by result", ["result"], registry=registry)
        self.delivery_bytes = Counter(
            "sora_delivery_bytes_total", "Bytes of delivered messages", registry=registry)
        self.delivery_seconds = Histogram(
            "sora_delivery_duration_seconds", "Time to store one delivery", buckets=_LATENCY_BUCKETS,
            registry=registry)
        self.appends_total = Counter(
            "sora_store_appends_total", "Messages stored", ["source"], registry=registry)
        self.db_pool_size = Gauge(
            "sora_db_pool_connections", "Database pool connections", ["pool", "state"], registry=registry,
            multiprocess_mode="livesum")
        self.workers_up = Gauge(
            "sora_workers_up", "Worker processes serving", registry=registry, multiprocess_mode="livesum")
        self.worker_restarts = Counter(
            "sora_worker_restarts_total", "Worker processes restarted", registry=registry)

    def command(self, protocol: str, command: str, result: str, seconds: float) -> None:
        """Count one command and observe its latency."""
        self.commands_total.labels(protocol, command, result).inc()
        self.command_seconds.labels(protocol, command).observe(seconds)
