"""Hook implementations of the S3 plugin; boto and the workers are imported when a hook runs."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sora_kernel.api import BlobStore, ConfigError, ConfigSection, ServiceSpec, hookimpl

from .settings import S3Settings

if TYPE_CHECKING:
    import typer

    from sora_kernel.api import AuthRequest, KernelServices, Principal

def _enabled(kernel: KernelServices) -> bool:
    return bool(kernel.config.get("storage", "backend") == "s3")


@hookimpl
def sora_config_sections() -> list[ConfigSection]:
    """The ``[s3]`` section."""
    return [S3Settings.config_section()]


@hookimpl
def sora_configure(kernel: KernelServices) -> None:
    """Encryption needs its key."""
    if not _enabled(kernel):
        return
    settings = S3Settings.from_config(kernel.config)
    if settings.encrypt and not settings.encryption_key:
        raise ConfigError("[s3] encrypt = true needs encryption_key (64 hex digits)")


@hookimpl
def sora_blob_store(kernel: KernelServices) -> BlobStore | None:
    """The ``s3`` backend when ``[storage] backend = "s3"``."""
    if not _enabled(kernel):
        return None
    from .backend import S3BlobStore

    return S3BlobStore(kernel, S3Settings.from_config(kernel.config))


@hookimpl
def sora_services(kernel: KernelServices) -> list[ServiceSpec]:
    """The upload worker (every worker process) and the cleaner (one node)."""
    if not _enabled(kernel):
        return []
    from .backend import S3BlobStore
    from .worker import Cleaner, Uploader

    store = kernel.blobs
    if not isinstance(store, S3BlobStore):
        return []
    services = [ServiceSpec("s3-uploader", Uploader(store).run),
                ServiceSpec("s3-cleaner", Cleaner(store).run, singleton=True)]
    if store.settings.warmup:
        from .warmup import Warmup

        store.warmup = Warmup(store)
        services.append(ServiceSpec("s3-warmup", store.warmup.run))
    return services


@hookimpl
def sora_auth_result(kernel: KernelServices, request: AuthRequest, principal: Principal | None) -> None:
    """Queue a cache warm-up after a successful IMAP login (when ``[s3] warmup`` is on)."""
    if principal is None or request.protocol != "imap" or not _enabled(kernel):
        return
    warmup = getattr(kernel.blobs, "warmup", None)
    if warmup is not None:
        warmup.request(principal.account_id)


@hookimpl
def sora_cli(app: typer.Typer, bench: typer.Typer) -> None:
    """``sora uploads status``, ``sora cache stats|purge``, ``sora verify s3 [--fix]``."""
    from .cli import register

    register(app)
