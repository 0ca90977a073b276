"""A circuit breaker around S3: fail fast while the service is down, probe it again after a pause.

Closed: requests pass; outcomes are counted in a window of ``window`` seconds, and once at least
``min_requests`` were seen with a failure ratio of ``failure_ratio`` or more it opens. Open: every
request is refused at once (:class:`BreakerOpen`) for ``open_timeout`` seconds. Half-open: up to
``half_open_max`` trial requests pass; one success closes it, one failure opens it again. The state is
a gauge (0 closed, 1 half-open, 2 open) labelled by operation, and refusals are counted.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge

CLOSED, HALF_OPEN, OPEN = "closed", "half_open", "open"
_STATE_VALUE = {CLOSED: 0, HALF_OPEN: 1, OPEN: 2}


class BreakerOpen(Exception):
    """The breaker refused a request without trying it."""


class BreakerMetrics:
    """The breaker metrics of one registry, shared by the breakers of each operation."""

    def __init__(self, registry: CollectorRegistry | None) -> None:
        self.state = Gauge("sora_s3_breaker_state", "S3 circuit breaker state (0 closed, 1 half-open, 2 open)",
                           ["operation"], registry=registry)
        self.rejected = Counter("sora_s3_breaker_rejected", "S3 requests refused by an open circuit breaker",
                                ["operation"], registry=registry)
        self.transitions = Counter("sora_s3_breaker_transitions", "S3 circuit breaker state changes",
                                   ["operation", "state"], registry=registry)


class CircuitBreaker:
    """One breaker (per S3 operation kind); call :meth:`allow` before and :meth:`record` after."""

    def __init__(self, name: str, metrics: BreakerMetrics, *, min_requests: int = 5, failure_ratio: float = 0.6,
                 window: float = 10.0, open_timeout: float = 30.0, half_open_max: int = 3,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.name = name
        self.metrics = metrics
        self.min_requests = min_requests
        self.failure_ratio = failure_ratio
        self.window = window
        self.open_timeout = open_timeout
        self.half_open_max = half_open_max
        self.clock = clock
        self.state = CLOSED
        self._window_start = clock()
        self._requests = 0
        self._failures = 0
        self._opened_at = 0.0
        self._trials = 0
        metrics.state.labels(name).set(0)

    def _set(self, state: str) -> None:
        self.state = state
        self.metrics.state.labels(self.name).set(_STATE_VALUE[state])
        self.metrics.transitions.labels(self.name, state).inc()

    def allow(self) -> None:
        """Raise BreakerOpen when the request may not go out now."""
        now = self.clock()
        if self.state == OPEN:
            if now - self._opened_at < self.open_timeout:
                self.metrics.rejected.labels(self.name).inc()
                raise BreakerOpen(f"S3 {self.name}: circuit open")
            self._set(HALF_OPEN)
            self._trials = 0
        if self.state == HALF_OPEN:
            if self._trials >= self.half_open_max:
                self.metrics.rejected.labels(self.name).inc()
                raise BreakerOpen(f"S3 {self.name}: circuit half-open, trials in flight")
            self._trials += 1

    def record(self, ok: bool) -> None:
        """Count the outcome of an allowed request."""
        now = self.clock()
        if self.state == HALF_OPEN:
            self._trials = max(self._trials - 1, 0)
            if ok:
                self._set(CLOSED)
                self._reset(now)
            else:
                self._open(now)
            return
        if now - self._window_start > self.window:
            self._reset(now)
        self._requests += 1
        if not ok:
            self._failures += 1
            if self._requests >= self.min_requests and self._failures / self._requests >= self.failure_ratio:
                self._open(now)

    def _open(self, now: float) -> None:
        self._opened_at = now
        self._set(OPEN)
        self._reset(now)

    def _reset(self, now: float) -> None:
        self._window_start = now
        self._requests = 0
        self._failures = 0

    def refusing(self) -> bool:
        """Open and still inside its timeout: a request now would be refused."""
        return self.state == OPEN and self.clock() - self._opened_at < self.open_timeout

    @property
    def healthy(self) -> bool:
        """Closed (the cleaner runs only then)."""
        return self.state == CLOSED
