"""Every hook is documented in PLUGINS.md, with a heading and an example."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from sora_kernel import hookspecs

ROOT = Path(__file__).resolve().parents[1]
HOOKS = sorted(name for name, obj in inspect.getmembers(hookspecs, inspect.isfunction)
               if name.startswith("sora_"))


def test_there_are_hooks() -> None:
    assert len(HOOKS) >= 20


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_documented_with_example(hook: str) -> None:
    text = (ROOT / "PLUGINS.md").read_text()
    match = re.search(rf"^### {hook}\n(.*?)(?=^### |\Z)", text, re.M | re.S)
    assert match, f"PLUGINS.md has no '### {hook}' section"
    assert "```python" in match.group(1), f"PLUGINS.md section for {hook} has no example"


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_has_docstring(hook: str) -> None:
    assert (getattr(hookspecs, hook).__doc__ or "").strip()
