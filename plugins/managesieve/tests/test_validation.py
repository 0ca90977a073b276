"""PUTSCRIPT and CHECKSCRIPT compile with the Sieve engine; the SIEVE capability is its list."""

from __future__ import annotations

from collections.abc import Callable

from sieve_support import SieveEnv, start_env
from sora_plugin_sieve import api as engine

from sora_kernel.testing import SoraTestServer


def test_sieve_capability_is_the_engine_list(sieve_env: SieveEnv) -> None:
    client = sieve_env.client()
    assert client.capabilities["SIEVE"] == " ".join(engine.capabilities())
    assert "fileinto" in (client.capabilities["SIEVE"] or "").split()
    # NOTIFY (RFC 5804 §1.7) is there exactly when the engine lists enotify
    assert client.capabilities.get("NOTIFY") == ("mailto" if "enotify" in engine.capabilities() else None)


def test_invalid_script_is_refused_with_its_line_and_not_stored(sieve_env: SieveEnv) -> None:
    wire = sieve_env.wire()
    wire.login()
    script = b'require "fileinto";\r\nif foo { keep; }\r\n'
    assert wire.cmd(b'PUTSCRIPT "bad" {%d+}\r\n' % len(script) + script) == \
        b'NO "line 2, column 4: unknown test \\"foo\\""\r\n'
    assert wire.cmd(b"CHECKSCRIPT {%d+}\r\n" % len(script) + script) == \
        b'NO "line 2, column 4: unknown test \\"foo\\""\r\n'
    assert wire.cmd('CHECKSCRIPT "fileinto \\"x\\";"').startswith(b'NO "line 1')  # fileinto not required
    assert sieve_env.scripts() == []
    good = b'require "fileinto";\r\nif header :contains "subject" "x" { fileinto "X"; }\r\n'
    assert wire.cmd(b"CHECKSCRIPT {%d+}\r\n" % len(good) + good) == b'OK "Script is valid."\r\n'
    assert sieve_env.scripts() == []  # CHECKSCRIPT stores nothing
    assert wire.cmd(b'PUTSCRIPT "good" {%d+}\r\n' % len(good) + good) == b'OK "Putscript completed."\r\n'
    assert sieve_env.scripts() == [("good", False, good.decode())]


def test_check_metrics(sieve_env: SieveEnv) -> None:
    wire = sieve_env.wire()
    wire.login()
    wire.cmd('CHECKSCRIPT "keep;"')
    wire.cmd('CHECKSCRIPT "nonsense"')
    registry = sieve_env.srv.kernel.registry
    assert registry.get_sample_value("sora_managesieve_script_checks_total", {"result": "ok"}) == 1
    assert registry.get_sample_value("sora_managesieve_script_checks_total", {"result": "invalid"}) == 1


def test_maxredirects_comes_from_the_sieve_section(sora_server: Callable[..., SoraTestServer]) -> None:
    env = start_env(sora_server, {"sieve": {"max_redirects": 7}}, plugins_before=["sieve"])
    client = env.client()
    assert client.capabilities["MAXREDIRECTS"] == "7"
