"""Hook implementations of the Sieve plugin; the engine is imported when a hook runs."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sora_kernel.api import ConfigError, ConfigSection, HookRegistrar, hookimpl

from .settings import SieveSettings

if TYPE_CHECKING:
    from sora_kernel.api import Delivery, DeliveryAction, KernelServices


@hookimpl
def sora_addhooks(hooks: HookRegistrar) -> None:
    """Declare ``sora_sieve_extensions`` (third-party Sieve extensions)."""
    from . import hookspecs

    hooks.add(hookspecs)


@hookimpl
def sora_config_sections() -> list[ConfigSection]:
    """The ``[sieve]`` section."""
    return [SieveSettings.config_section()]


@hookimpl
def sora_configure(kernel: KernelServices) -> None:
    """Register third-party extensions and compile the global scripts (a broken one stops start-up)."""
    from . import api
    from .filtering import global_script
    from .grammar import SieveCompileError

    extensions = [ext for _plugin, ext in kernel.plugins.collect("sora_sieve_extensions", kernel=kernel)]
    api.register_extensions(extensions)
    settings = SieveSettings.from_config(kernel.config)
    for key in ("before_script", "after_script"):
        try:
            global_script(getattr(settings, key))
        except (SieveCompileError, OSError) as exc:
            raise ConfigError(f"[sieve] {key}: {exc}") from None


@hookimpl
async def sora_delivery_actions(kernel: KernelServices, delivery: Delivery) -> list[DeliveryAction] | None:
    """Run the global and the user's active Sieve scripts for one recipient."""
    from .filtering import filter_delivery

    settings = SieveSettings.from_config(kernel.config)
    if not settings.enabled:
        return None
    return await filter_delivery(kernel, delivery, settings)

