"""Hook implementations of the relay plugin; heavy imports happen when a hook runs."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

from sora_kernel.api import ConfigError, ConfigSection, ServiceSpec, hookimpl, parse_addr

from .settings import QueueSettings, RelaySettings

if TYPE_CHECKING:
    import typer

    from sora_kernel.api import HealthCheck, KernelServices, OutboundMessage


@hookimpl
def sora_config_sections() -> list[ConfigSection]:
    """The ``[relay]`` and ``[relay.queue]`` sections."""
    return [RelaySettings.config_section(), QueueSettings.config_section()]


@hookimpl
def sora_configure(kernel: KernelServices) -> None:
    """Check the transport settings fit together."""
    settings = RelaySettings.from_config(kernel.config)
    if settings.type == "smtp" and settings.smtp_host:
        try:
            parse_addr(settings.smtp_host)
        except ValueError as exc:
            raise ConfigError(f"[relay] smtp_host = {settings.smtp_host!r}: {exc}") from None
        if settings.smtp_tls and settings.smtp_use_starttls:
            raise ConfigError("[relay] smtp_tls (implicit TLS) and smtp_use_starttls exclude each other")
        if settings.smtp_tls_key_file and not settings.smtp_tls_cert_file:
            raise ConfigError("[relay] smtp_tls_key_file needs smtp_tls_cert_file")
    if settings.type == "http" and settings.http_url and not settings.http_url.startswith(("http://", "https://")):
        raise ConfigError(f"[relay] http_url = {settings.http_url!r}: expected an http:// or https:// URL")


@hookimpl
def sora_outbound(kernel: KernelServices, message: OutboundMessage) -> Awaitable[bool | None]:
    """Queue a redirect, vacation, reject, notification or DSN durably (committed before this returns)."""
    from .outbound import enqueue

    return enqueue(kernel, message)


@hookimpl
def sora_services(kernel: KernelServices) -> list[ServiceSpec]:
    """The queue worker, once per node (safe on every node at once)."""
    from .outbound import state_of

    state = state_of(kernel)
    if not state.settings.configured:
        return []

    async def run(*, task_status: Any = None) -> None:
        import anyio

        from .worker import RelayWorker

        worker = RelayWorker(kernel, state.settings, state.queue, state.metrics)
        state.workers.append(worker)
        try:
            await worker.run(task_status=task_status or anyio.TASK_STATUS_IGNORED)
        finally:
            state.workers.remove(worker)

    return [ServiceSpec("relay-worker", run, singleton=True)]


@hookimpl
def sora_health_checks(kernel: KernelServices) -> list[HealthCheck]:
    """``relay``: the queue is readable; failed rows and an open breaker are reported."""
    from sora_kernel.api import HealthCheck

    async def check() -> tuple[bool, str]:
        from .outbound import state_of

        stats = await kernel.store.relay.stats()
        state = state_of(kernel)
        detail = ", ".join(f"{name} {count}" for name, count in stats.depth.items())
        breakers = [w.breaker.state.name.lower() for w in state.workers]
        if breakers:
            detail += f"; breaker {breakers[0]}"
        return True, detail

    return [HealthCheck("relay", check)]


@hookimpl
def sora_cli(app: typer.Typer, bench: typer.Typer) -> None:
    """``sora relay list|show|requeue|delete|flush`` and ``sora bench relay-enqueue``."""
    from .cli import bench_enqueue, relay_app

    app.add_typer(relay_app, name="relay")
    bench.command("relay-enqueue")(bench_enqueue)
