"""The hook reference is a contract: every hook is documented with its arguments and an example, and
nothing documented is gone.

The kernel's hooks are documented in PLUGINS.md; a plugin's own hooks (``sora_addhooks``) in that
plugin's README.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path
from types import ModuleType

import pytest
from sora_plugin_admin_api import hookspecs as admin_api_hookspecs
from sora_plugin_imap import hookspecs as imap_hookspecs
from sora_plugin_sieve import hookspecs as sieve_hookspecs

from sora_kernel import hookspecs

ROOT = Path(__file__).resolve().parents[1]
SPECS: list[tuple[ModuleType, Path]] = [
    (hookspecs, ROOT / "PLUGINS.md"),
    (imap_hookspecs, ROOT / "plugins" / "imap" / "README.md"),
    (admin_api_hookspecs, ROOT / "plugins" / "admin-api" / "README.md"),
    (sieve_hookspecs, ROOT / "plugins" / "sieve" / "README.md"),
]


def _hooks(module: ModuleType) -> list[str]:
    return sorted(name for name, obj in inspect.getmembers(module, inspect.isfunction)
                  if name.startswith("sora_") and obj.__module__ == module.__name__)


HOOKS = [(module, doc, hook) for module, doc in SPECS for hook in _hooks(module)]
IDS = [hook for _, _, hook in HOOKS]


def _section(doc: Path, hook: str) -> str:
    match = re.search(rf"^### {hook}\n(.*?)(?=^### |^## |\Z)", doc.read_text(), re.M | re.S)
    assert match, f"{doc.name} has no '### {hook}' section"
    return match.group(1)


def test_kernel_hooks_are_protocol_neutral() -> None:
    kernel_hooks = _hooks(hookspecs)
    assert "sora_authenticate" in kernel_hooks and "sora_addhooks" in kernel_hooks
    assert not [hook for hook in kernel_hooks if hook.startswith(("sora_imap_", "sora_sieve_", "sora_pop3_"))]


@pytest.mark.parametrize(("module", "doc", "hook"), HOOKS, ids=IDS)
def test_hook_documented_with_its_arguments_and_an_example(module: ModuleType, doc: Path, hook: str) -> None:
    text = _section(doc, hook)
    assert "```python" in text, f"{doc.name}: the section for {hook} has no example"
    arguments = list(inspect.signature(getattr(module, hook)).parameters)
    documented = re.search(rf"`{hook}\(([^)]*)\)`", text)
    assert documented, f"{doc.name}: the section for {hook} does not show `{hook}(...)` with its arguments"
    assert [a.strip() for a in documented.group(1).split(",") if a.strip()] == arguments, (
        f"{doc.name} documents {hook}({documented.group(1)}) but the spec takes ({', '.join(arguments)})")
    example = re.search(rf"def {hook}\(([^)]*)\)", text)
    assert example, f"{doc.name}: the example for {hook} does not define it"
    assert [a.strip() for a in example.group(1).split(",") if a.strip()] == arguments


@pytest.mark.parametrize(("module", "doc"), SPECS, ids=[doc.name for _, doc in SPECS])
def test_no_documented_hook_is_gone(module: ModuleType, doc: Path) -> None:
    documented = re.findall(r"^### (sora_\w+)", doc.read_text(), re.M)
    assert sorted(documented) == _hooks(module), f"{doc.name} documents hooks the spec does not have"


@pytest.mark.parametrize(("module", "doc", "hook"), HOOKS, ids=IDS)
def test_hook_has_docstring(module: ModuleType, doc: Path, hook: str) -> None:
    assert (getattr(module, hook).__doc__ or "").strip()
