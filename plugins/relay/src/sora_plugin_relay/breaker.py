"""A circuit breaker around the transport (the Go Sora's: 5 failures open it for 30 s, 3 trials half-open).

Only temporary transport failures count (connection refused, dropped, timeout, 4xx): a 5xx answer means
the remote works and refused that one message. While open, the worker leases nothing, so no attempt is
spent on a relay that is down.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from enum import IntEnum


class BreakerState(IntEnum):
    """The breaker's state; the value is what the ``sora_relay_breaker_state`` gauge shows."""

    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2


class CircuitBreaker:
    """Counts consecutive failures; ``allow()`` says whether to try the transport now."""

    def __init__(self, failures: int = 5, open_for: float = 30.0, half_open: int = 3, *,
                 on_change: Callable[[BreakerState], None] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.failures = failures
        self.open_for = open_for
        self.half_open = half_open
        self._on_change = on_change
        self._clock = clock
        self.state = BreakerState.CLOSED
        self._consecutive = 0
        self._opened_at = 0.0
        self._trials = 0
        self._successes = 0

    def _set(self, state: BreakerState) -> None:
        if state != self.state:
            self.state = state
            if self._on_change is not None:
                self._on_change(state)

    def remaining(self) -> float:
        """Seconds until an open breaker lets trials through (0 when not open)."""
        if self.state != BreakerState.OPEN:
            return 0.0
        return max(0.0, self._opened_at + self.open_for - self._clock())

    def allow_probe(self) -> bool:
        """Whether a round may start (False while open); takes no half-open trial."""
        return self.state != BreakerState.OPEN or self.remaining() <= 0

    def allow(self) -> bool:
        """Whether one more message may be tried now (half-open admits ``half_open`` trials)."""
        if self.state == BreakerState.OPEN:
            if self.remaining() > 0:
                return False
            self._set(BreakerState.HALF_OPEN)
            self._trials = self._successes = 0
        if self.state == BreakerState.HALF_OPEN:
            if self._trials >= self.half_open:
                return False
            self._trials += 1
        return True

    def success(self) -> None:
        """The transport worked (a 5xx refusal counts as working)."""
        self._consecutive = 0
        if self.state == BreakerState.HALF_OPEN:
            self._successes += 1
            if self._successes >= self.half_open:
                self._set(BreakerState.CLOSED)

    def failure(self) -> None:
        """A temporary transport failure."""
        self._consecutive += 1
        if self.state == BreakerState.HALF_OPEN or self._consecutive >= self.failures:
            self._opened_at = self._clock()
            self._consecutive = 0
            self._set(BreakerState.OPEN)
