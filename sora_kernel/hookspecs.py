"""The kernel's hooks: the protocol-neutral plugin contract.

Protocol-specific extension points live with their protocol: a plugin declares its own hook specs in
``sora_addhooks`` (the IMAP plugin's ``sora_imap_*`` hooks, for example).

Hooks are plain pluggy hooks. A hook that does I/O returns an awaitable (define it ``async def``); the
kernel's facade (:mod:`sora_kernel.plugins`) awaits it. No async hook is ``firstresult``: for
"who provides X" hooks the facade takes the first non-None result after awaiting, asking plugins in
reverse registration order (the last enabled plugin first, the kernel's built-in defaults last).

Every hook here is documented in PLUGINS.md; ``tests/test_docs.py`` fails when one is missing.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    import ssl

    import typer

    from .interfaces import BlobStore, ConnectionInfo, KernelServices
    from .plugins import HookRegistrar
    from .types import (
        AuthRequest,
        ConfigSection,
        Delivery,
        DeliveryAction,
        HealthCheck,
        Migration,
        OutboundMessage,
        Principal,
        Recipient,
        ServiceSpec,
    )

hookspec = pluggy.HookspecMarker("sora")
hookimpl = pluggy.HookimplMarker("sora")


# --- lifecycle -------------------------------------------------------------------------------


@hookspec(historic=True)
def sora_addhooks(hooks: HookRegistrar) -> None:
    """Declare this plugin's own hook specs: ``hooks.add(module)`` (pytest's ``pytest_addhooks``).

    Sync. Called when the plugin is registered, before unknown hook names are checked, so other
    plugins may implement the hooks a plugin declares here whatever their order in the config.
    """


@hookspec
def sora_config_sections() -> list[ConfigSection]:
    """Declare this plugin's configuration sections (name, typed settings, defaults).

    Sync. Called once when the configuration is loaded, before ``sora_configure``.
    """


@hookspec
def sora_configure(kernel: KernelServices) -> None:
    """Validate cross-key configuration and keep a reference to the kernel.

    Sync. Called once after the configuration is loaded; raise ``ConfigError`` to stop start-up.
    """


@hookspec
def sora_migrations() -> list[Migration]:
    """Return the folders of numbered SQL migrations this plugin owns.

    Sync. Migrations of the kernel run first, then each enabled plugin's, in config order.
    """


@hookspec
def sora_services(kernel: KernelServices) -> list[ServiceSpec]:
    """Return long-running services (listeners, workers) to run in the kernel's task group.

    Sync. Called by ``sora serve`` once per worker process. Two services with the same
    ``protocol`` from different plugins is a start-up error naming both.
    """


@hookspec
def sora_cli(app: typer.Typer, bench: typer.Typer) -> None:
    """Add sub-commands to the ``sora`` CLI (``app``) or benchmarks under ``sora bench`` (``bench``).

    Sync. Called when the CLI starts, for enabled plugins only.
    """


@hookspec
def sora_health_checks(kernel: KernelServices) -> list[HealthCheck]:
    """Return component checks reported by ``sora health`` and the health endpoint. Sync."""


# --- auth ------------------------------------------------------------------------------------


@hookspec
def sora_auth_precheck(kernel: KernelServices, request: AuthRequest) -> str | None:
    """Veto a login attempt before any credential is checked: return a reason to refuse, else None.

    Sync; must be fast (a rate limiter's counters). ``request.password`` may be "" (SASL). A refused
    attempt fails exactly like a wrong password and is reported to ``sora_auth_result``.
    """


@hookspec
def sora_authenticate(kernel: KernelServices, request: AuthRequest) -> Awaitable[Principal | None] | None:
    """Decide a login: return (an awaitable of) a Principal, or None to let the next plugin decide.

    Async-capable. Asked for every protocol and mechanism. The kernel's default runs last: it checks
    the password against the database, or accepts ``request.proven`` when the mechanism (SCRAM) has
    already proved the secret; a plugin (LDAP, OAuth, remote lookup) that answers first wins.
    """


@hookspec
def sora_auth_result(kernel: KernelServices, request: AuthRequest, principal: Principal | None) -> None:
    """Observe every login result (rate limiter, cluster sync, audit). Sync; must not block."""


# --- storage ---------------------------------------------------------------------------------


@hookspec(firstresult=True)
def sora_blob_store(kernel: KernelServices) -> BlobStore | None:
    """Return the blob backend for ``[storage] backend`` if this plugin provides it, else None.

    Sync, first result wins. The kernel provides ``fs``; the S3 plugin provides ``s3``.
    """


# --- delivery --------------------------------------------------------------------------------


@hookspec
def sora_resolve_recipient(kernel: KernelServices, address: str) -> Awaitable[Recipient | None] | None:
    """Map an envelope recipient to an account, or None to let the next plugin decide.

    Async-capable. The default looks the address up among credentials (case-insensitive,
    ``+detail`` stripped with the configured separator).
    """


@hookspec
def sora_delivery_headers(kernel: KernelServices, delivery: Delivery) -> list[tuple[str, str]] | None:
    """Return extra header fields to prepend to a message before it is stored. Sync."""


@hookspec
def sora_delivery_actions(
    kernel: KernelServices, delivery: Delivery
) -> Awaitable[list[DeliveryAction] | None] | list[DeliveryAction] | None:
    """Decide what happens to a message for one recipient (Sieve lives here).

    Async-capable. The first plugin returning a non-None list decides; with none, the message is
    kept in INBOX. Actions: keep, fileinto, discard, redirect, reject, vacation, with flags.
    """


@hookspec
def sora_outbound(kernel: KernelServices, message: OutboundMessage) -> Awaitable[bool | None] | None:
    """Accept a message for sending out (redirect, vacation). The relay plugin implements it.

    Async-capable; the first True wins. Without any, outbound actions are logged and dropped.
    """


# --- protocols and connections ---------------------------------------------------------------


@hookspec
def sora_connection_open(kernel: KernelServices, conn: ConnectionInfo) -> bool | None:
    """A client connected to any listener. Return False to refuse it (cluster-wide limits, JA4 filters).

    Sync; must be fast. A listener's own admission policy (its trusted networks and limits) runs first.
    """


@hookspec
def sora_connection_close(kernel: KernelServices, conn: ConnectionInfo) -> None:
    """A client connection ended. Sync; must be fast."""


@hookspec(firstresult=True)
def sora_tls_context(kernel: KernelServices, server_name: str | None,
                     protocol: str | None) -> ssl.SSLContext | None:
    """Return the TLS context for a server name (ACME, per-SNI certificates). Sync, first wins.

    Called during every handshake (SNI callback) with the name the client sent (None without SNI)
    and the listener's protocol (``imap``...; None for STARTTLS), whose ALPN id the context must
    announce (``sora_kernel.api.new_server_context``). The default serves the ``[tls]`` files.
    """
