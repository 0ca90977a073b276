"""The ``[relay]`` and ``[relay.queue]`` sections, declared once (the kernel's SectionSettings).

Key names follow the Go Sora where it has them (``type``, ``smtp_host``, ``smtp_tls``, ``smtp_use_starttls``,
``smtp_tls_verify``, ``smtp_helo_host``, ``smtp_tls_cert_file``/``smtp_tls_key_file``, ``http_url``,
``auth_token``); ``smtp_username``/``smtp_password``, the breaker and the rate limit are Sora's own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar

from sora_kernel.api import SectionSettings, setting

DEFAULT_BACKOFF = ("1m", "5m", "15m", "1h", "6h", "24h")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "": 1.0}
_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|)\s*", re.ASCII)


def parse_backoff(values: tuple[str, ...] | list[str]) -> tuple[float, ...]:
    """``("1m", "5m", ...)`` → seconds; the last value repeats for later attempts."""
    delays = []
    for value in values:
        match = _DURATION.fullmatch(str(value))
        if match is None:
            raise ValueError(f"{value!r} is not a duration (30s, 5m, 1h, 1d)")
        delays.append(float(match.group(1)) * _UNITS[match.group(2)])
    if not delays:
        raise ValueError("at least one delay is needed")
    return tuple(delays)


def backoff_delay(schedule: tuple[float, ...], attempts: int) -> float:
    """The wait after the ``attempts``-th failed attempt (1-based); the last delay repeats."""
    return schedule[min(max(attempts, 1), len(schedule)) - 1]


@dataclass(frozen=True, slots=True)
class RelaySettings(SectionSettings):
    """The ``[relay]`` values: where outbound mail goes and how."""

    SECTION: ClassVar[str] = "relay"
    HELP: ClassVar[str] = ("Outbound relay for Sieve redirect, vacation, reject and bounces. Empty smtp_host "
                           "(type smtp) or http_url (type http) disables it: outbound actions are not queued.")

    type: str = setting("str", "smtp", "Transport: smtp (the site's MTA) or http (POST JSON).",
                        choices=("smtp", "http"))
    smtp_host: str = setting("str", "", "The MTA as host:port (e.g. smtp.example.com:587); empty = not configured.")
    smtp_tls: bool = setting("bool", False, "Implicit TLS (submissions, usually port 465).")
    smtp_use_starttls: bool = setting("bool", False, "Upgrade with STARTTLS (required when set).")
    smtp_tls_verify: bool = setting("bool", True, "Verify the MTA's certificate and host name.")
    smtp_tls_cert_file: str = setting("str", "", "Client certificate (PEM) for the MTA; empty = none.")
    smtp_tls_key_file: str = setting("str", "", "Key of the client certificate (PEM).")
    smtp_helo_host: str = setting("str", "", "Name sent in EHLO; empty = [server] hostname.")
    smtp_username: str = setting("str", "", "AUTH user name at the MTA; empty = no AUTH.")
    smtp_password: str = setting("str", "", "AUTH password at the MTA.", secret=True)
    http_url: str = setting("str", "", "Endpoint for type http: POST {from, recipients, message}.")
    auth_token: str = setting("str", "", "Bearer token sent to http_url.", secret=True)
    timeout: float = setting("duration", "60s", "Timeout of one connection or one message.", minimum=1.0)
    max_message_size: int = setting("size", "50mb", "Larger outbound messages are refused (not queued).",
                                    minimum=1024)
    redirect_rate_limit: int = setting(
        "int", 100, "Redirects one account may queue per redirect_rate_window; 0 = no limit.", minimum=0)
    redirect_rate_window: float = setting("duration", "1h", "Window of the redirect rate limit.", minimum=1.0)
    breaker_failures: int = setting("int", 5, "Consecutive transport failures that open the circuit breaker.",
                                    minimum=1)
    breaker_open: float = setting("duration", "30s", "How long the open breaker refuses to try.", minimum=0.1)
    breaker_half_open: int = setting("int", 3, "Trial messages while half-open before closing again.", minimum=1)

    @property
    def configured(self) -> bool:
        """Whether there is somewhere to send to."""
        return bool(self.smtp_host if self.type == "smtp" else self.http_url)


@dataclass(frozen=True, slots=True)
class QueueSettings(SectionSettings):
    """The ``[relay.queue]`` values: how the workers work the queue."""

    SECTION: ClassVar[str] = "relay.queue"
    HELP: ClassVar[str] = "The relay queue workers (rows in PostgreSQL shared by every node)."

    interval: float = setting("duration", "1m", "Worker wake-up without an enqueue notification.", minimum=0.05)
    batch_size: int = setting("int", 100, "Messages leased per round.", minimum=1)
    concurrency: int = setting("int", 5, "Parallel transport connections per worker.", minimum=1)
    max_attempts: int = setting("int", 10, "Attempts before a message fails for good.", minimum=1)
    backoff: tuple[float, ...] = setting("list", list(DEFAULT_BACKOFF),
                                         "Waits after each failed attempt; the last one repeats.",
                                         convert=parse_backoff)
    lease: float = setting("duration", "5m", "A leased message is retried by anyone after this (crashed worker).",
                           minimum=1.0)
    retention: float = setting("duration", "168h", "How long failed messages are kept.", minimum=0.0)
    sent_retention: float = setting("duration", "1h", "How long sent messages stay visible before removal.",
                                    minimum=0.0)
    cleanup_interval: float = setting("duration", "1h", "How often sent/failed rows past retention are removed.",
                                      minimum=0.05)
