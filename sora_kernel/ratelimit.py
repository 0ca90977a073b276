"""Auth rate limiting for every protocol (``[auth_rate_limit]``), the Go Sora's tiers as defaults.

Tiers: IP+user 5 failures in 10 min blocks that pair 15 min; IP 50 failures in 30 min blocks the IP
30 min (refused at connect too); user 10 failures in 60 min is counted for statistics only. After
``delay_after`` failures from an IP each failed answer waits ``delay_initial`` doubling up to
``delay_max``; at most ``max_concurrent_per_ip`` attempts of one IP are in progress (delays included)
per worker, more are refused at once. Clients in ``exempt_networks`` are never counted.

The counters live in PostgreSQL (:class:`~sora_kernel.store.auth.AuthStore`), so every worker and node
sees the same failures. Each process keeps the blocks it has seen in a small in-process cache: a
blocked attempt is refused from the cache without a round trip, the connection of a blocked IP is
refused in the (synchronous) ``sora_connection_open`` hook, and a refresher reloads the blocked IPs
every ``refresh_interval`` for blocks other workers set. An attempt not in the cache asks the database
(one indexed query) before any password is checked. Usernames are canonical (lower case, ``+detail``
and the master-user suffix stripped) so case or subaddress changes cannot dodge the IP+user tier.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import anyio
import structlog
from prometheus_client import Counter

from .net.listener import ip_in_networks, parse_networks
from .store.auth import AuthTier
from .types import ConfigSection, Setting

if TYPE_CHECKING:
    from .kernel import Kernel

log = structlog.get_logger("sora.auth.ratelimit")

SECTION = ConfigSection("auth_rate_limit", (
    Setting("enabled", "bool", False, "Count failed logins and block brute force (every protocol)."),
    Setting("ip_user_max_failures", "int", 5, "Failures of one user from one IP that block the pair."),
    Setting("ip_user_window", "duration", "10m", "Window the IP+user failures are counted in."),
    Setting("ip_user_block", "duration", "15m", "How long a blocked IP+user pair stays blocked."),
    Setting("ip_max_failures", "int", 50, "Failures from one IP (any user) that block the IP."),
    Setting("ip_window", "duration", "30m", "Window the IP failures are counted in."),
    Setting("ip_block", "duration", "30m", "How long a blocked IP stays blocked (refused at connect)."),
    Setting("user_max_failures", "int", 10, "Failures of one user (any IP) reported in stats; never blocks."),
    Setting("user_window", "duration", "60m", "Window the per-user failures are counted in."),
    Setting("delay_after", "int", 2, "Failures from an IP before failed answers are delayed."),
    Setting("delay_initial", "duration", "1s", "First progressive delay; doubles with each failure."),
    Setting("delay_max", "duration", "30s", "Longest progressive delay."),
    Setting("max_concurrent_per_ip", "int", 10, "Login attempts in progress (delays included) per IP and "
            "worker; more are refused at once. 0 = no limit."),
    Setting("exempt_networks", "list", [], "CIDRs never counted nor blocked (monitoring, webmail)."),
    Setting("refresh_interval", "duration", "2s", "How often each worker reloads the blocked IPs."),
    Setting("cache_size", "int", 100000, "Blocks remembered per process (oldest dropped first)."),
), "Brute-force protection shared by all workers and nodes through PostgreSQL.")


def canonical_user(username: str, subaddress_separator: str = "+", master_separator: str = "*") -> str:
    """The key of a username: lower case, master suffix and ``+detail`` stripped."""
    user = username.strip().lower()
    if master_separator and master_separator in user:
        user = user.split(master_separator, 1)[0]
    if subaddress_separator and "@" in user:
        local, _, domain = user.rpartition("@")
        if subaddress_separator in local:
            local = local.split(subaddress_separator, 1)[0]
        user = f"{local}@{domain}"
    return user


def progressive_delay(failures: int, after: int, initial: float, maximum: float) -> float:
    """Seconds to wait after the ``failures``-th failure: 0 up to ``after``, then doubling to ``maximum``."""
    if failures <= after or initial <= 0:
        return 0.0
    return float(min(initial * 2 ** min(failures - after - 1, 30), maximum))


class AuthRateLimiter:
    """The kernel's rate limiter (``kernel.ratelimit``); the login path and the listeners call it."""

    def __init__(self, kernel: Kernel) -> None:
        self.kernel = kernel
        cfg = kernel.config.section("auth_rate_limit")
        self.enabled: bool = cfg["enabled"]
        self.pair_tier = AuthTier("ip_user", cfg["ip_user_window"], cfg["ip_user_max_failures"], cfg["ip_user_block"])
        self.ip_tier = AuthTier("ip", cfg["ip_window"], cfg["ip_max_failures"], cfg["ip_block"])
        self.user_tier = AuthTier("user", cfg["user_window"], cfg["user_max_failures"], 0.0)
        self.delay_after: int = cfg["delay_after"]
        self.delay_initial: float = cfg["delay_initial"]
        self.delay_max: float = cfg["delay_max"]
        self.exempt = parse_networks(cfg["exempt_networks"])
        self.refresh_interval: float = cfg["refresh_interval"]
        self.cache_size: int = max(1, cfg["cache_size"])
        self._blocks: OrderedDict[str, float] = OrderedDict()  # key -> wall-clock end of the block
        self.max_concurrent: int = cfg["max_concurrent_per_ip"]
        self._in_progress: dict[str, int] = {}
        registry = kernel.registry
        self.refused_total = Counter(
            "sora_auth_rate_limit_refused_total", "Logins and connections refused as blocked",
            ["protocol", "tier"], registry=registry)
        self.blocks_total = Counter(
            "sora_auth_rate_limit_blocks_total", "Blocks set by this process", ["tier"], registry=registry)
        self.failures_total = Counter(
            "sora_auth_rate_limit_failures_total", "Failed logins counted", ["protocol"], registry=registry)

    # ------------------------------------------------------------------ keys

    def _user(self, username: str) -> str:
        config = self.kernel.config
        master = config.section("auth_master").get("separator", "*")
        return canonical_user(username, config.get("delivery", "subaddress_separator"), master)

    def keys(self, remote_ip: str, username: str) -> tuple[str, str, str]:
        """(ip key, pair key, user key) of an attempt."""
        user = self._user(username)
        return f"ip:{remote_ip}", f"pair:{remote_ip}|{user}", f"user:{user}"

    def applies(self, remote_ip: str) -> bool:
        """Whether attempts from this address are counted (enabled, known address, not exempt)."""
        return self.enabled and bool(remote_ip) and not ip_in_networks(remote_ip, self.exempt)

    # ------------------------------------------------------------------ cache

    def _remember(self, key: str, until: datetime) -> None:
        self._blocks[key] = until.timestamp()
        self._blocks.move_to_end(key)
        while len(self._blocks) > self.cache_size:
            self._blocks.popitem(last=False)

    def _cached(self, key: str) -> bool:
        until = self._blocks.get(key)
        if until is None:
            return False
        if until <= time.time():
            del self._blocks[key]
            return False
        return True

    def ip_blocked(self, remote_ip: str) -> bool:
        """Whether this process knows the IP is blocked (sync, no I/O: the connect-time check)."""
        return self.applies(remote_ip) and self._cached(f"ip:{remote_ip}")

    # ------------------------------------------------------------------ login path

    def enter(self, remote_ip: str) -> bool:
        """Count an attempt in progress; False (refuse it) when the IP already has the maximum."""
        if not self.applies(remote_ip) or self.max_concurrent <= 0:
            return True
        count = self._in_progress.get(remote_ip, 0)
        if count >= self.max_concurrent:
            self.refused_total.labels("any", "concurrency").inc()
            return False
        self._in_progress[remote_ip] = count + 1
        return True

    def leave(self, remote_ip: str) -> None:
        """The attempt :meth:`enter` admitted is over (its delay included)."""
        if not self.applies(remote_ip) or self.max_concurrent <= 0:
            return
        count = self._in_progress.get(remote_ip, 0) - 1
        if count > 0:
            self._in_progress[remote_ip] = count
        else:
            self._in_progress.pop(remote_ip, None)

    async def check(self, protocol: str, username: str, remote_ip: str) -> str | None:
        """A reason to refuse the attempt before checking it (the IP or the pair is blocked), else None."""
        if not self.applies(remote_ip) or not username:
            return None
        ip_key, pair_key, _ = self.keys(remote_ip, username)
        for key, tier in ((ip_key, "ip"), (pair_key, "ip_user")):
            if self._cached(key):
                self.refused_total.labels(protocol, tier).inc()
                return f"rate limited ({tier} blocked)"
        blocks = await self.kernel.store.auth.active_blocks([ip_key, pair_key])
        for key, until in blocks.items():
            self._remember(key, until)
        for key, tier in ((ip_key, "ip"), (pair_key, "ip_user")):
            if key in blocks:
                self.refused_total.labels(protocol, tier).inc()
                return f"rate limited ({tier} blocked)"
        return None

    async def failed(self, protocol: str, username: str, remote_ip: str) -> float:
        """Count a failed login; returns the progressive delay the answer should wait."""
        if not self.applies(remote_ip):
            return 0.0
        ip_key, pair_key, user_key = self.keys(remote_ip, username)
        keys = [(ip_key, self.ip_tier)]
        if username:
            keys += [(pair_key, self.pair_tier), (user_key, self.user_tier)]
        counters = await self.kernel.store.auth.record_failure(keys)
        self.failures_total.labels(protocol).inc()
        ip_failures = 0
        now = datetime.now(UTC)
        for counter in counters:
            if counter.key == ip_key:
                ip_failures = counter.failures
            if counter.blocked_until is not None and counter.blocked_until > now:
                if counter.key not in self._blocks:
                    self.blocks_total.labels(counter.kind).inc()
                    log.warning("auth rate limit: blocked", key=counter.key[:200], tier=counter.kind,
                                failures=counter.failures, until=counter.blocked_until.isoformat(),
                                protocol=protocol)
                self._remember(counter.key, counter.blocked_until)
        return progressive_delay(ip_failures, self.delay_after, self.delay_initial, self.delay_max)

    async def succeeded(self, username: str, remote_ip: str) -> None:
        """A successful login clears its IP+user failures."""
        if not self.applies(remote_ip):
            return
        _, pair_key, _ = self.keys(remote_ip, username)
        await self.kernel.store.auth.clear([pair_key])

    # ------------------------------------------------------------------ operators

    async def unblock(self, key: str) -> bool:
        """Lift a block (``ip:…`` or ``pair:…``) everywhere; False when the key was not tracked."""
        self._blocks.pop(key, None)
        return await self.kernel.store.auth.clear([key]) > 0

    async def refresh(self) -> None:
        """Reload the blocked IPs from the database (blocks other workers set)."""
        for counter in await self.kernel.store.auth.blocked(kind="ip", limit=self.cache_size):
            if counter.blocked_until is not None:
                self._remember(counter.key, counter.blocked_until)

    async def run(self, *, task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
        """Per-worker service: keep the blocked IPs fresh for the connect-time check."""
        task_status.started()
        stop = self.kernel.shutdown_event
        while not stop.is_set():
            try:
                await self.refresh()
            except Exception:
                log.exception("auth rate limit: refreshing the blocked IPs failed")
            with anyio.move_on_after(self.refresh_interval):
                await stop.wait()  # returns at shutdown instead of holding the drain
