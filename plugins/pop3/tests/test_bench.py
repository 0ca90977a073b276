"""``sora bench pop3`` against a running Sora: wired through the ``sora_cli`` hook, prints JSON."""

from __future__ import annotations

import json
from collections.abc import Callable

import typer
from pop3_support import ADDRESS, PASSWORD, message, start_env
from sora_plugin_pop3 import plugin
from typer.testing import CliRunner

from sora_kernel.testing import SoraTestServer


def test_bench_prints_figures(sora_server: Callable[..., SoraTestServer]) -> None:
    env = start_env(sora_server, messages=[message(f"m{i}", "x" * 2000 + "\r\n") for i in range(20)])
    app, bench = typer.Typer(), typer.Typer()
    app.add_typer(bench, name="bench")
    plugin.sora_cli(app, bench)
    result = CliRunner().invoke(app, [
        "bench", "pop3", "--port", str(env.port), "--user", ADDRESS, "--password", PASSWORD,
        "--logins", "2", "--depth", "4"])
    assert result.exit_code == 0, result.output
    # the server thread logs into the same captured stdout: the figures are the JSON document
    figures = json.loads(result.output[result.output.index("{\n"):])
    assert figures["messages"] == figures["list_lines"] == figures["uidl_lines"] == 20
    assert figures["retr_messages"] == 20
    assert figures["retr_bytes"] >= figures["octets"] == sum(len(raw) for raw in env.raws)
    assert figures["retr_mb_per_s"] > 0
    assert not any(row.expunged for row in env.rows().values())  # the bench deletes nothing


def test_bench_reports_login_failure(sora_server: Callable[..., SoraTestServer]) -> None:
    env = start_env(sora_server)
    app, bench = typer.Typer(), typer.Typer()
    app.add_typer(bench, name="bench")
    plugin.sora_cli(app, bench)
    result = CliRunner().invoke(app, [
        "bench", "pop3", "--port", str(env.port), "--user", ADDRESS, "--password", "nope"])
    assert result.exit_code == 1
    assert "Authentication failed" in result.output
