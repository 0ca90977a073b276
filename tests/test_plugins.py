"""Plugin discovery and the hook facade: failures are loud and name the culprit."""

from __future__ import annotations

import types

import pytest

from sora_kernel.errors import PluginError
from sora_kernel.hookspecs import hookimpl
from sora_kernel.plugins import installed_plugins, load_plugins
from sora_kernel.types import ConfigSection, ServiceSpec, Setting


def _plugin(**hooks: object) -> types.ModuleType:
    module = types.ModuleType("fake_plugin")
    for name, fn in hooks.items():
        setattr(module, name, hookimpl(fn))
    return module


def test_missing_plugin_is_named() -> None:
    with pytest.raises(PluginError, match="'nosuch' is enabled but not installed"):
        load_plugins(["nosuch"])


def test_misspelled_hook_rejected() -> None:
    bad = _plugin(sora_servics=lambda kernel: [])
    with pytest.raises(PluginError, match="sora_servics"):
        load_plugins([], [("bad", bad)])


def test_duplicate_section_names_both() -> None:
    def sections() -> list[ConfigSection]:
        return [ConfigSection("imap", (Setting("x", "int", 1),))]

    host = load_plugins([], [("one", _plugin(sora_config_sections=sections)),
                             ("two", _plugin(sora_config_sections=sections))])
    with pytest.raises(PluginError, match=r"'imap' is claimed twice: by plugin 'one'.*by plugin 'two'"):
        host.config_sections()


def test_duplicate_protocol_names_both() -> None:
    async def run(**_: object) -> None: ...

    host = load_plugins([], [
        ("a", _plugin(sora_services=lambda kernel: [ServiceSpec("imap-a", run, protocol="imap")])),
        ("b", _plugin(sora_services=lambda kernel: [ServiceSpec("imap-b", run, protocol="imap")])),
    ])
    with pytest.raises(PluginError, match="protocol 'imap' is claimed twice"):
        host.services(kernel=None)  # type: ignore[arg-type]


def test_installed_lists_metadata_without_import() -> None:
    found = installed_plugins()
    assert "example_header" in found
    assert found["example_header"].version == "0.1.0"


@pytest.mark.anyio
async def test_first_non_none_after_await() -> None:
    async def none(kernel: object, address: str) -> None:
        return None

    async def answer(kernel: object, address: str) -> str:
        return "from-b"

    host = load_plugins([], [("a", _plugin(sora_resolve_recipient=answer)),
                             ("b", _plugin(sora_resolve_recipient=none))])
    assert await host.resolve_recipient(None, "x@y") == "from-b"  # type: ignore[arg-type]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def test_broken_import_names_plugin_and_distribution(tmp_path, monkeypatch) -> None:
    dist = tmp_path / "broken_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: sora-plugin-broken\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[sora.plugins]\nbroken = broken_plugin_mod\n")
    (tmp_path / "broken_plugin_mod.py").write_text("raise RuntimeError('boom at import')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(PluginError, match=r"'broken' \(distribution sora-plugin-broken\) failed to import.*boom"):
        load_plugins(["broken"])


class _OwnerSpecs:
    """Hook specs a plugin declares for others to implement."""

    from sora_kernel.api import hookspec

    @hookspec
    def sora_demo_items(self, kernel: object) -> list[str]:  # type: ignore[empty-body]
        """Items for the demo plugin."""


class _Owner:
    @hookimpl
    def sora_addhooks(self, hooks: object) -> None:
        hooks.add(_OwnerSpecs)  # type: ignore[attr-defined]


class _Extender:
    def __init__(self, item: str) -> None:
        self.item = item

    @hookimpl
    def sora_demo_items(self, kernel: object) -> list[str]:
        return [self.item]


def test_plugin_owned_hooks_whatever_the_registration_order() -> None:
    # the extender registers before the plugin that declares the hook
    host = load_plugins([], [("early", _Extender("a")), ("owner", _Owner()), ("late", _Extender("b"))])
    assert host.collect("sora_demo_items", kernel=None) == [("early", "a"), ("late", "b")]


def test_implementing_an_undeclared_hook_fails_without_its_owner() -> None:
    with pytest.raises(PluginError, match="sora_demo_items"):
        load_plugins([], [("early", _Extender("a"))])


def test_hook_wrappers_are_refused_with_a_clear_error() -> None:
    class Wrapper:
        @hookimpl(wrapper=True)
        def sora_config_sections(self):  # type: ignore[no-untyped-def]
            return (yield)

    with pytest.raises(PluginError, match=r"'wrap'.*sora_config_sections is a hook wrapper"):
        load_plugins([], [("wrap", Wrapper())])


def test_claim_names_both_plugins() -> None:
    host = load_plugins([], [])
    with pytest.raises(PluginError, match=r"IMAP command 'X' is claimed twice: by plugin 'a'.*by plugin 'b'"):
        host.claim("IMAP command", [("a", "X"), ("b", "X")], lambda item: item)
