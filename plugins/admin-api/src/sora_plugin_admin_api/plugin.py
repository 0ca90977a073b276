"""Hook implementations of the admin API plugin; FastAPI and uvicorn are imported when it starts."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sora_kernel.api import ConfigError, ConfigSection, HookRegistrar, ServiceSpec, hookimpl

from .settings import MIN_SECRET, AdminApiSettings

if TYPE_CHECKING:
    from sora_kernel.api import KernelServices


@hookimpl
def sora_addhooks(hooks: HookRegistrar) -> None:
    """Declare ``sora_admin_api_routes`` (other plugins add routes through it)."""
    from . import hookspecs

    hooks.add(hookspecs)


@hookimpl
def sora_config_sections() -> list[ConfigSection]:
    """The ``[admin_api]`` section."""
    return [AdminApiSettings.config_section()]


@hookimpl
def sora_configure(kernel: KernelServices) -> None:
    """Refuse a user API without a long enough JWT secret (``sora config validate`` says so too)."""
    settings = AdminApiSettings.from_config(kernel.config)
    if settings.user_api and len(settings.jwt_secret) < MIN_SECRET:
        raise ConfigError(f"[admin_api] user_api needs a jwt_secret of at least {MIN_SECRET} characters")


@hookimpl
def sora_services(kernel: KernelServices) -> list[ServiceSpec]:
    """The admin API listener in every worker (uvicorn inside the kernel's task group)."""
    settings = AdminApiSettings.from_config(kernel.config)
    if not settings.addr:
        return []
    from .server import AdminApiService

    return [ServiceSpec("admin-api", AdminApiService(kernel, settings).run, protocol="admin_api")]
