"""Plugin discovery (stevedore, entry-point group ``sora.plugins``) and the typed hook facade.

Only enabled plugins are imported, in config order. Code outside this module never touches
``pm.hook``: it calls the :class:`PluginHost` methods, which await async hook results and take
"first non-None" answers where a hook decides something. Plugins may declare hook specs of their
own (``sora_addhooks``); other plugins implement them and the owner calls them through
:meth:`PluginHost.collect` and :meth:`PluginHost.first`.

The facade calls each implementation itself (to await async results and to pair results with the
plugin that gave them), so pluggy wrappers would be silently skipped: they are refused at
registration instead.
"""

from __future__ import annotations

import ast
import importlib.metadata
import importlib.util
import inspect
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import pluggy
import stevedore

from . import hookspecs
from .errors import PluginError
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

if TYPE_CHECKING:
    import ssl

    import typer

    from .interfaces import BlobStore, ConnectionInfo, KernelServices

ENTRY_POINT_GROUP = "sora.plugins"
BUILTIN_NAME = "kernel"


@dataclass(frozen=True)
class PluginInfo:
    """What the entry-point metadata says about an installed plugin (nothing is imported)."""

    name: str
    distribution: str
    version: str
    module: str
    hooks: tuple[str, ...]


def installed_plugins() -> dict[str, PluginInfo]:
    """Every plugin installed in this environment, by entry-point name, from metadata only."""
    found: dict[str, PluginInfo] = {}
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = ep.dist
        found[ep.name] = PluginInfo(
            name=ep.name,
            distribution=dist.metadata["Name"] if dist else "?",
            version=dist.version if dist else "?",
            module=ep.value,
            hooks=_hooks_in_source(ep.value.split(":")[0]),
        )
    return found


def _hooks_in_source(module: str) -> tuple[str, ...]:
    """Names of ``sora_*`` functions defined in a module, read from its source without importing it."""
    top, _, rest = module.partition(".")
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return ()
    if spec is None:
        return ()
    if rest:
        locations = list(spec.submodule_search_locations or [])
        if not locations:
            return ()
        path = Path(locations[0], *rest.split(".")).with_suffix(".py")
        if not path.exists():
            path = Path(locations[0], *rest.split("."), "__init__.py")
    else:
        path = Path(spec.origin or "")
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (OSError, SyntaxError, ValueError):
        return ()
    names = [
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("sora_")
    ]
    return tuple(sorted(names))


class HookRegistrar:
    """What ``sora_addhooks`` receives: ``add(module_or_class)`` declares more hook specs."""

    def __init__(self, pm: pluggy.PluginManager) -> None:
        self._pm = pm

    def add(self, specs: ModuleType | type) -> None:
        """Declare the ``@hookspec``-marked functions of a module or class as hooks."""
        self._pm.add_hookspecs(specs)


def load_plugins(enabled: Sequence[str], extra: Iterable[tuple[str, object]] = ()) -> PluginHost:
    """Import the enabled plugins in order and register them after the kernel's built-ins.

    ``extra`` registers already-imported plugin objects by name (tests, embedding).
    An enabled plugin that is missing or fails to import raises PluginError naming it.
    """
    from . import builtin

    pm = pluggy.PluginManager("sora")
    pm.add_hookspecs(hookspecs)
    pm.hook.sora_addhooks.call_historic(kwargs={"hooks": HookRegistrar(pm)})
    pm.register(builtin, name=BUILTIN_NAME)
    distributions = {BUILTIN_NAME: "sora-kernel"}
    names = list(enabled)
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise PluginError(f"plugin {duplicates[0]!r} is enabled twice")
    for name, obj in _import_enabled(names):
        dist = _distribution_of(name)
        _register(pm, obj, name, dist)
        distributions[name] = dist
    for name, obj in extra:
        _register(pm, obj, name, "(registered in-process)")
        distributions[name] = "(registered in-process)"
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        raise PluginError(f"unknown hook implementation: {exc}") from exc
    return PluginHost(pm, distributions)


def _import_enabled(names: list[str]) -> list[tuple[str, object]]:
    """The enabled plugins' modules through stevedore, in config order; errors name plugin and distribution."""
    if not names:
        return []
    missing: set[str] = set()
    failures: list[tuple[str, BaseException]] = []

    def on_missing(absent: Iterable[str]) -> None:
        missing.update(absent)

    def on_failure(_manager: object, entry_point: importlib.metadata.EntryPoint, exc: BaseException) -> None:
        failures.append((entry_point.name, exc))

    # stevedore keeps entry points per group for the life of the process; a plugin installed since
    # (or a test's sys.path) must be seen, and its on-disk cache already makes a fresh look cheap
    stevedore.ExtensionManager.ENTRY_POINT_CACHE.pop(ENTRY_POINT_GROUP, None)
    manager: stevedore.NamedExtensionManager[object] = stevedore.NamedExtensionManager(
        ENTRY_POINT_GROUP, names, name_order=True, invoke_on_load=False,
        on_load_failure_callback=on_failure, on_missing_entrypoints_callback=on_missing)
    if failures:
        name, exc = failures[0]
        raise PluginError(
            f"plugin {name!r} (distribution {_distribution_of(name)}) failed to import: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    if missing:
        name = next(n for n in names if n in missing)
        known = ", ".join(sorted(installed_plugins())) or "none"
        raise PluginError(
            f"plugin {name!r} is enabled but not installed (installed: {known}); "
            f"pip install sora-plugin-{name}, or remove it from [plugins] enabled"
        )
    return [(extension.name, extension.plugin) for extension in manager.extensions]


def _distribution_of(name: str) -> str:
    """The distribution that provides an entry point, from metadata (stevedore's cache drops it)."""
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP, name=name):
        if ep.dist is not None:
            return str(ep.dist.metadata["Name"])
    return "?"


def _register(pm: pluggy.PluginManager, obj: object, name: str, dist: str) -> None:
    try:
        pm.register(obj, name=name)
    except (pluggy.PluginValidationError, ValueError) as exc:
        raise PluginError(f"plugin {name!r} (distribution {dist}) cannot be registered: {exc}") from exc
    for caller in pm.get_hookcallers(pm.get_plugin(name)) or ():
        for impl in caller.get_hookimpls():
            if impl.plugin_name == name and (impl.wrapper or impl.hookwrapper):
                pm.unregister(name=name)
                raise PluginError(
                    f"plugin {name!r} (distribution {dist}): {caller.name} is a hook wrapper; Sora's hooks "
                    "do not support wrappers (they would be skipped): implement the hook plainly")


class PluginHost:
    """The typed facade over the pluggy manager: the only way the program calls hooks."""

    def __init__(self, pm: pluggy.PluginManager, distributions: dict[str, str]) -> None:
        self.pm = pm
        self.distributions = distributions

    @property
    def names(self) -> list[str]:
        """Registered plugin names, kernel first, in registration order."""
        return list(self.distributions)

    def _each(self, hook_name: str, **kwargs: Any) -> list[tuple[str, Any]]:
        """Call each implementation (in pluggy's order) and pair its result with the plugin name."""
        caller = getattr(self.pm.hook, hook_name)
        results: list[tuple[str, Any]] = []
        for impl in reversed(caller.get_hookimpls()):
            args = [kwargs[arg] for arg in impl.argnames]
            result = impl.function(*args)
            if result is not None:
                results.append((impl.plugin_name, result))
        return results

    async def _first(self, hook_name: str, **kwargs: Any) -> Any:
        caller = getattr(self.pm.hook, hook_name)
        for impl in reversed(caller.get_hookimpls()):
            result = impl.function(*[kwargs[arg] for arg in impl.argnames])
            if inspect.isawaitable(result):
                result = await result
            if result is not None:
                return result
        return None

    def _flatten(self, hook_name: str, **kwargs: Any) -> list[tuple[str, Any]]:
        out: list[tuple[str, Any]] = []
        for plugin, result in self._each(hook_name, **kwargs):
            items = result if isinstance(result, list | tuple) else [result]
            out.extend((plugin, item) for item in items)
        # kernel built-ins first, then plugins in config order
        order = {name: i for i, name in enumerate(self.distributions)}
        out.sort(key=lambda pair: order.get(pair[0], len(order)))
        return out

    def collect(self, hook: str, **kwargs: Any) -> list[tuple[str, Any]]:
        """Every implementation's result as (plugin, item), lists flattened, kernel first then config order.

        For sync hooks, plugin-owned ones included (``sora_imap_capabilities``...).
        """
        return self._flatten(hook, **kwargs)

    async def first(self, hook: str, **kwargs: Any) -> Any:
        """The first non-None result after awaiting, asking the last enabled plugin first."""
        return await self._first(hook, **kwargs)

    def claim(self, what: str, items: list[tuple[str, Any]], key: Any) -> None:
        """Raise PluginError naming both plugins and distributions when two items share ``key(item)``."""
        self._claim(what, items, key)

    def _claim(self, what: str, items: list[tuple[str, Any]], key: Any) -> None:
        owners: dict[Any, str] = {}
        for plugin, item in items:
            name = key(item)
            if name is None:
                continue
            if name in owners:
                first = owners[name]
                raise PluginError(
                    f"{what} {name!r} is claimed twice: by plugin {first!r} "
                    f"(distribution {self.distributions.get(first)}) and by plugin {plugin!r} "
                    f"(distribution {self.distributions.get(plugin)})"
                )
            owners[name] = plugin

    # lifecycle
    def config_sections(self) -> list[ConfigSection]:
        """Every declared config section; a name declared twice is an error naming both."""
        items = self._flatten("sora_config_sections")
        self._claim("config section", items, lambda s: s.name)
        return [item for _, item in items]

    def configure(self, kernel: KernelServices) -> None:
        """Let each plugin validate its configuration and keep the kernel."""
        self.pm.hook.sora_configure(kernel=kernel)

    def migrations(self) -> list[Migration]:
        """Migration folders, kernel first then plugins in config order."""
        return [item for _, item in self._flatten("sora_migrations")]

    def services(self, kernel: KernelServices) -> list[ServiceSpec]:
        """Services of every plugin; two plugins serving one protocol is an error naming both."""
        items = self._flatten("sora_services", kernel=kernel)
        self._claim("service", items, lambda s: s.name)
        self._claim("protocol", items, lambda s: s.protocol)
        return [item for _, item in items]

    def cli(self, app: typer.Typer, bench: typer.Typer) -> None:
        """Let plugins add CLI sub-commands and benchmarks."""
        self.pm.hook.sora_cli(app=app, bench=bench)

    def health_checks(self, kernel: KernelServices) -> list[HealthCheck]:
        """Every plugin's component checks."""
        return [item for _, item in self._flatten("sora_health_checks", kernel=kernel)]

    # auth
    def auth_precheck(self, kernel: KernelServices, request: AuthRequest) -> str | None:
        """The first plugin's reason to refuse a login attempt before checking it, or None."""
        for _, reason in self._each("sora_auth_precheck", kernel=kernel, request=request):
            return str(reason)
        return None

    async def authenticate(self, kernel: KernelServices, request: AuthRequest) -> Principal | None:
        """The first non-None principal from the auth providers (database last)."""
        return await self._first("sora_authenticate", kernel=kernel, request=request)

    def auth_result(self, kernel: KernelServices, request: AuthRequest, principal: Principal | None) -> None:
        """Tell observers how a login went."""
        self.pm.hook.sora_auth_result(kernel=kernel, request=request, principal=principal)

    # storage
    def blob_store(self, kernel: KernelServices) -> BlobStore | None:
        """The blob backend for the configured ``[storage] backend``."""
        return self.pm.hook.sora_blob_store(kernel=kernel)

    # delivery
    async def resolve_recipient(self, kernel: KernelServices, address: str) -> Recipient | None:
        """The account an envelope recipient maps to, or None when unknown."""
        return await self._first("sora_resolve_recipient", kernel=kernel, address=address)

    def delivery_headers(self, kernel: KernelServices, delivery: Delivery) -> list[tuple[str, str]]:
        """Extra header fields from every plugin, kernel first."""
        return [item for _, item in self._flatten("sora_delivery_headers", kernel=kernel, delivery=delivery)]

    async def delivery_actions(self, kernel: KernelServices, delivery: Delivery) -> list[DeliveryAction] | None:
        """The actions decided for one recipient; None means implicit keep."""
        return await self._first("sora_delivery_actions", kernel=kernel, delivery=delivery)

    async def outbound(self, kernel: KernelServices, message: OutboundMessage) -> bool:
        """Hand a message to the relay; False when no plugin accepted it."""
        return bool(await self._first("sora_outbound", kernel=kernel, message=message))

    # protocols and connections
    def connection_open(self, kernel: KernelServices, conn: ConnectionInfo) -> bool:
        """False when any plugin refuses the connection."""
        results = self.pm.hook.sora_connection_open(kernel=kernel, conn=conn)
        return all(result is not False for result in results)

    def connection_close(self, kernel: KernelServices, conn: ConnectionInfo) -> None:
        """Tell plugins a connection ended."""
        self.pm.hook.sora_connection_close(kernel=kernel, conn=conn)

    def tls_context(self, kernel: KernelServices, server_name: str | None,
                    protocol: str | None = None) -> ssl.SSLContext | None:
        """The TLS context for a server name, or None when TLS is not configured."""
        return self.pm.hook.sora_tls_context(kernel=kernel, server_name=server_name, protocol=protocol)

