"""The relay worker: lease a batch, send it with bounded concurrency, record each outcome.

Wakes on ``NOTIFY sora_relay`` (sent by the enqueue statement, heard through ``kernel.events``) and every
``[relay.queue] interval``. Several workers (processes, nodes) share the queue safely: a lease is a row
lock taken with ``SKIP LOCKED`` and committed with its expiry, so each due row goes to one worker, and a
row whose worker died is due again once its lease runs out.

The exactly-once window: the remote's 250 and the ``sent`` mark are two steps. A crash between them
(a few milliseconds) leaves the row leased; after the lease it is sent again. Everything else (a crash
before the 250, a dropped connection, a 4xx) is retried without a duplicate.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import time
from typing import TYPE_CHECKING, Any

import anyio
import structlog

from sora_kernel.api import RELAY_CHANNEL, QueuedMessage, TemporaryStoreError

from .breaker import BreakerState, CircuitBreaker
from .dsn import build_dsn
from .settings import QueueSettings, RelaySettings, backoff_delay
from .transport import SendResult, Transport, TransportSession, build_transport

if TYPE_CHECKING:
    from sora_kernel.api import KernelServices

    from .metrics import RelayMetrics

log = structlog.get_logger("sora.relay")


class RelayWorker:
    """Works the shared queue for one process (see the module docstring)."""

    def __init__(self, kernel: KernelServices, settings: RelaySettings, queue: QueueSettings,
                 metrics: RelayMetrics, transport: Transport | None = None, owner: str = "") -> None:
        self.kernel = kernel
        self.settings = settings
        self.queue = queue
        self.metrics = metrics
        self.transport = transport or build_transport(settings, kernel.hostname)
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self.breaker = CircuitBreaker(
            settings.breaker_failures, settings.breaker_open, settings.breaker_half_open,
            on_change=self._breaker_changed)
        metrics.breaker.labels(self.transport.name).set(BreakerState.CLOSED)
        self._wake = anyio.Event()

    def _breaker_changed(self, state: BreakerState) -> None:
        self.metrics.breaker.labels(self.transport.name).set(state)
        log.warning("relay circuit breaker", state=state.name.lower(), transport=self.transport.name)

    def wake(self) -> None:
        """Start a round now (an enqueue was heard)."""
        self._wake.set()

    async def run(self, *, task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
        """Listen, clean up, and work rounds until cancelled."""
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._listen)
            tg.start_soon(self._cleanup_loop)
            task_status.started()
            log.info("relay worker started", owner=self.owner, transport=self.transport.name)
            while True:
                try:
                    while await self.run_once() >= self.queue.batch_size:
                        await anyio.sleep(0)
                    await self.refresh_metrics()  # the oldest row ages while nothing is due
                except (TemporaryStoreError, OSError) as exc:
                    log.warning("relay round failed", error=str(exc))
                except Exception:
                    log.exception("relay round failed")
                wait = self.queue.interval
                if self.breaker.state == BreakerState.OPEN:
                    wait = min(wait, max(self.breaker.remaining(), 0.05))
                with anyio.move_on_after(wait):
                    await self._wake.wait()
                self._wake = anyio.Event()

    async def _listen(self) -> None:
        while True:
            try:
                async with self.kernel.events.listen(RELAY_CHANNEL) as receiver:
                    async for _message in receiver:
                        self._wake.set()
            except Exception as exc:
                log.warning("relay listener stopped; retrying", error=str(exc))
            await anyio.sleep(1)

    async def _cleanup_loop(self) -> None:
        while True:
            try:
                removed = await self.kernel.store.relay.purge(
                    sent_older_than=self.queue.sent_retention, failed_older_than=self.queue.retention,
                    rate_older_than=self.settings.redirect_rate_window * 2)
                if removed:
                    log.info("relay queue cleanup", removed=removed)
            except Exception as exc:
                log.warning("relay cleanup failed", error=str(exc))
            await anyio.sleep(self.queue.cleanup_interval)

    async def refresh_metrics(self) -> None:
        """Depth and oldest age per state, into the gauges."""
        self.metrics.observe_stats(await self.kernel.store.relay.stats())

    async def run_once(self) -> int:
        """One round: lease a batch and send it; returns how many rows were leased."""
        if not self.breaker.allow_probe():
            return 0
        store = self.kernel.store.relay
        batch = await store.lease(self.queue.batch_size, self.queue.lease, self.owner)
        if batch:
            shares = min(self.queue.concurrency, len(batch))
            async with anyio.create_task_group() as tg:
                for index in range(shares):
                    tg.start_soon(self._send_share, batch[index::shares])
        return len(batch)

    async def _send_share(self, messages: list[QueuedMessage]) -> None:
        session: TransportSession = self.transport.session()
        try:
            for message in messages:
                if not self.breaker.allow():
                    await self.kernel.store.relay.release(message.id, max(self.breaker.remaining(), 1.0))
                    self.metrics.deliveries.labels("released", self.transport.name).inc()
                    continue
                started = time.perf_counter()
                with anyio.move_on_after(self.settings.timeout * 2) as scope:
                    result = await session.send(message)
                if scope.cancelled_caught:
                    await session.aclose()
                    result = SendResult("temporary", "timed out")
                self.metrics.seconds.labels(self.transport.name).observe(time.perf_counter() - started)
                await self._record(message, result)
        finally:
            with anyio.CancelScope(shield=True):
                await session.aclose()

    async def _record(self, message: QueuedMessage, result: SendResult) -> None:
        store = self.kernel.store.relay
        transport = self.transport.name
        fields = {"queue_id": message.id, "kind": message.kind, "sender": message.sender,
                  "recipients": list(message.recipients), "attempt": message.attempts, "transport": transport}
        if result.sent:
            self.breaker.success()
            if result.refused:
                await self._partly_sent(message, result)
            else:
                await store.mark_sent(message.id)
            self.metrics.deliveries.labels("sent", transport).inc()
            log.info("relay sent", **fields, reply=result.detail[:200])
            return
        if result.permanent:
            self.breaker.success()
            await self._fail(message, result)
            return
        self.breaker.failure()
        if message.attempts >= self.queue.max_attempts:
            await self._fail(message, result)
            return
        delay = backoff_delay(self.queue.backoff, message.attempts)
        await store.mark_retry(message.id, result.detail, delay)
        self.metrics.deliveries.labels("retry", transport).inc()
        log.info("relay deferred", **fields, error=result.detail[:200], retry_in=delay)

    async def _partly_sent(self, message: QueuedMessage, result: SendResult) -> None:
        """Some recipients refused while others took it: resending to all would duplicate it for the
        others, so 4xx recipients go on in a copy of the row and 5xx ones are bounced."""
        refused = result.refused
        last_try = message.attempts >= self.queue.max_attempts
        deferred = [r for r in message.recipients if r in refused and refused[r][0] < 500 and not last_try]
        bounced = [r for r in message.recipients if r in refused and r not in deferred]
        sent_to = [r for r in message.recipients if r not in refused]
        detail = "; ".join(f"{r}: {refused[r][0]} {refused[r][1]}" for r in message.recipients if r in refused)
        log.warning("relay recipients refused", queue_id=message.id, refused=detail[:500])
        store = self.kernel.store.relay
        if deferred:
            copy = await store.mark_partly_sent(message.id, sent_to, deferred, detail,
                                                backoff_delay(self.queue.backoff, message.attempts))
            log.info("relay deferred recipients", queue_id=copy, of=message.id, recipients=deferred)
        else:
            await store.mark_sent(message.id)
        if bounced:
            code = min(refused[r][0] for r in bounced)
            why = "; ".join(f"{r}: {refused[r][0]} {refused[r][1]}" for r in bounced)
            await self._bounce(dataclasses.replace(message, recipients=tuple(bounced)), why, code)

    async def _fail(self, message: QueuedMessage, result: SendResult) -> None:
        store = self.kernel.store.relay
        await store.mark_failed(message.id, result.detail)
        self.metrics.deliveries.labels("failed", self.transport.name).inc()
        log.warning("relay failed", queue_id=message.id, kind=message.kind, sender=message.sender,
                    recipients=list(message.recipients), attempts=message.attempts, error=result.detail[:200])
        await self._bounce(message, result.detail, result.code)

    async def _bounce(self, message: QueuedMessage, error: str, code: int) -> None:
        if message.kind == "dsn" or not message.sender:
            return  # never bounce a bounce, never to <>
        store = self.kernel.store.relay
        dsn = build_dsn(message, reporting_mta=self.kernel.hostname, error=error, code=code)
        bounce_id = await store.enqueue(kind="dsn", sender="", recipients=[message.sender], raw=dsn,
                                        account_id=message.account_id, message_id=message.message_id,
                                        reason=f"bounce of relay message {message.id}")
        self.metrics.enqueued.labels("dsn", "queued").inc()
        log.info("relay bounce queued", queue_id=bounce_id, bounced=message.id, to=message.sender)
