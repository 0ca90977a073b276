"""The base of a line-based protocol session: queued output, error budget, command metrics, log fields.

Each protocol keeps its own grammar and state machine and inherits the plumbing every one of them
needs: replies are queued with :meth:`LineSession.send` and written in one ``send`` by
:meth:`LineSession.flush` (before the next blocking read, so pipelined commands get their answers in
one packet); :meth:`LineSession.count_error` keeps the consecutive-error budget; a command's result
and latency go to ``sora_commands_total`` / ``sora_command_duration_seconds`` through
:meth:`LineSession.command_done`; :meth:`LineSession.annotate` adds fields to the one structured log
line the listener writes when the session ends.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

if TYPE_CHECKING:
    from ..interfaces import KernelServices

#: Queued output beyond this is written out even in the middle of a command (big FETCH/RETR answers).
STREAM_THRESHOLD = 256 * 1024


class SessionTransport(Protocol):
    """What a session needs of its connection (:class:`~sora_kernel.net.Connection` provides it)."""

    id: str
    remote_ip: str
    tls: bool
    username: str
    extra: dict[str, Any]

    async def write(self, data: bytes) -> None:
        """Send bytes."""
        ...


class LineSession:
    """Plumbing shared by the sessions of every line-based protocol (IMAP, POP3, LMTP, ManageSieve)."""

    protocol: ClassVar[str] = ""
    """The ``protocol`` label of the session's command metrics."""

    def __init__(self, kernel: KernelServices, transport: SessionTransport, *, max_errors: int = 0) -> None:
        self.kernel = kernel
        self.transport = transport
        self.max_errors = max_errors
        self.errors = 0
        self._out: list[bytes] = []
        self._out_size = 0

    # output
    def send(self, data: bytes) -> None:
        """Queue output; :meth:`flush` writes it."""
        self._out.append(data)
        self._out_size += len(data)

    @property
    def queued(self) -> int:
        """Bytes queued and not yet written."""
        return self._out_size

    async def flush(self) -> None:
        """Write queued output in one send."""
        if self._out:
            data = self._out[0] if len(self._out) == 1 else b"".join(self._out)
            self._out.clear()
            self._out_size = 0
            await self.write(data)

    async def write(self, data: bytes) -> None:
        """Write bytes now (override to add a policy such as a write timeout)."""
        await self.transport.write(data)

    async def maybe_flush(self, threshold: int = STREAM_THRESHOLD) -> None:
        """Flush when at least ``threshold`` bytes are queued (streams large answers out)."""
        if self._out_size >= threshold:
            await self.flush()

    # error budget
    def count_error(self) -> bool:
        """Count a failed command; True when the budget (``max_errors``, 0 = none) is spent."""
        self.errors += 1
        return bool(self.max_errors) and self.errors >= self.max_errors

    def reset_errors(self) -> None:
        """A command succeeded: the budget counts consecutive errors only."""
        self.errors = 0

    # observability
    @staticmethod
    def clock() -> float:
        """The start time to pass to :meth:`command_done`."""
        return time.perf_counter()

    def command_done(self, name: str, result: str, started: float) -> None:
        """Count one command and observe its latency."""
        self.kernel.metrics.command(self.protocol, name, result, time.perf_counter() - started)

    def annotate(self, **fields: Any) -> None:
        """Add fields to the session's structured log line (written when the connection ends)."""
        self.transport.extra.update(fields)
