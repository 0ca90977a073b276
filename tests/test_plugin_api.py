"""The kernel/plugin boundary: plugins import only the public API module, and it is whole."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import pytest

import sora_kernel
from sora_kernel import api

ROOT = Path(__file__).resolve().parents[1]
PLUGIN_ROOTS = [*sorted(p.parent for p in ROOT.glob("plugins/*/pyproject.toml")), ROOT / "contrib" / "example-plugin"]
ALLOWED = {"src": {"sora_kernel.api"}, "tests": {"sora_kernel.api", "sora_kernel.testing"}}


def _kernel_imports(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] if node.module != "sora_kernel" else [f"sora_kernel.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        found.extend((node.lineno, name) for name in names if name.split(".")[0] == "sora_kernel")
    return found


@pytest.mark.parametrize("plugin", PLUGIN_ROOTS, ids=[p.name for p in PLUGIN_ROOTS])
def test_plugins_import_only_the_api(plugin: Path) -> None:
    offences = []
    for part, allowed in ALLOWED.items():
        for path in sorted((plugin / part).rglob("*.py")):
            offences += [f"{path.relative_to(ROOT)}:{line} imports {name}"
                         for line, name in _kernel_imports(path) if name not in allowed]
    assert not offences, "plugins may import only sora_kernel.api (tests also sora_kernel.testing):\n" + "\n".join(
        offences)


def test_the_boundary_check_sees_a_deep_import(tmp_path: Path) -> None:
    module = tmp_path / "bad.py"
    module.write_text("from sora_kernel.store.mailstore import INBOX\nfrom sora_kernel import kernel\n")
    assert [name for _, name in _kernel_imports(module)] == ["sora_kernel.store.mailstore", "sora_kernel.kernel"]


@pytest.mark.parametrize("plugin", PLUGIN_ROOTS, ids=[p.name for p in PLUGIN_ROOTS])
def test_plugins_pin_a_compatible_kernel(plugin: Path) -> None:
    project = tomllib.loads((plugin / "pyproject.toml").read_text())["project"]
    pins = [dep for dep in project["dependencies"] if dep.replace(" ", "").startswith("sora-kernel")]
    major, minor = sora_kernel.__version__.split(".")[:2]
    assert pins == [f"sora-kernel>={major}.{minor},<{major}.{int(minor) + 1}"], pins


def test_api_exports_resolve() -> None:
    missing = [name for name in api.__all__ if not hasattr(api, name)]
    assert not missing
    assert sora_kernel.__version__ == api.API_VERSION


def test_kernel_version_matches_the_distribution() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["version"] == sora_kernel.__version__
