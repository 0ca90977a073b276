"""Execution limits: each one stops the script with a runtime error (the delivery hook then keeps)."""

from __future__ import annotations

import anyio
import pytest
from sora_plugin_sieve.api import compile_script, registry
from sora_plugin_sieve.compiler import Compiler, Script
from sora_plugin_sieve.interpreter import Envelope, Interpreter, Limits, Runtime, SieveRuntimeError
from sora_plugin_sieve.message import MessageView

MESSAGE = MessageView(b"From: a@example.org\r\nTo: b@example.com\r\nSubject: " + b"x" * 200 + b"\r\n\r\nbody\r\n")


def run(script: Script, limits: Limits, runtime: Runtime | None = None) -> Interpreter:
    interp = Interpreter(script, MESSAGE, Envelope("a@example.org", "b@example.com"), runtime, limits)

    async def main() -> None:
        await interp.run()

    anyio.run(main)
    return interp


def test_action_limit() -> None:
    script = compile_script('require "fileinto"; fileinto "a"; fileinto "b"; fileinto "c";')
    run(script, Limits(max_actions=3))
    with pytest.raises(SieveRuntimeError, match="total number of actions exceeds policy limit"):
        run(script, Limits(max_actions=2))


def test_redirect_limit() -> None:
    script = compile_script('redirect "a@example.net"; redirect "b@example.net";')
    with pytest.raises(SieveRuntimeError, match="redirect actions exceeds policy limit"):
        run(script, Limits(max_redirects=1))


def test_cpu_time_limit() -> None:
    script = compile_script("\n".join('if header :matches "subject" "*x*x*x*y" { keep; }' for _ in range(3000)))
    with pytest.raises(SieveRuntimeError, match="CPU time limit exceeded"):
        run(script, Limits(cpu_seconds=0.0))


def test_variable_size_limit_truncates() -> None:
    script = compile_script('require "variables"; set "b" "0123456789012345678901234567890123456789'
                            '0123456789012345678901234567890123456789";')
    interp = run(script, Limits(max_variable_size=64))
    assert len(interp.variables["b"]) == 64


def test_regex_input_limit() -> None:
    script = compile_script('require "regex"; if header :regex "subject" "^x{150}" { discard; }')
    assert run(script, Limits()).actions[0].kind == "discard"
    # only the first 100 characters are looked at: 150 x's cannot be found
    assert run(script, Limits(max_regex_input=100)).actions == []


class Includes(Runtime):
    """Every included script includes the next one."""

    async def load_include(self, location: str, name: str) -> Script | None:
        depth = int(name[1:])
        return Compiler(registry()).compile(f'require "include"; include "d{depth + 1}";')


def test_include_depth_limit() -> None:
    script = Compiler(registry()).compile('require "include"; include "d1";')
    with pytest.raises(SieveRuntimeError, match="nested too deeply"):
        run(script, Limits(max_include_depth=3), Includes())
