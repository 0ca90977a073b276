"""``sora sieve ...`` as a user runs it: the installed CLI against the test database."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

EMAIL = "carol@example.com"


def sora(*args: str, config: Path, input: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(Path(sys.executable).parent / "sora"), "--config", str(config), *args],
                          capture_output=True, text=True, env=dict(os.environ), input=input, timeout=120)


@pytest.fixture
def configured(tmp_path: Path, sora_dsn: str) -> Path:
    """A sora.toml on the test database (every installed plugin enabled) with carol's account."""
    config = tmp_path / "sora.toml"
    result = sora("init", "--data-dir", str(tmp_path / "data"), config=config)
    assert result.returncode == 0, result.stderr
    config.write_text(config.read_text().replace('dsn = ""', f'dsn = "{sora_dsn}"', 1))
    created = sora("accounts", "create", "--email", EMAIL, "--password", "pw", config=config)
    assert created.returncode == 0, created.stderr
    return config


def test_sieve_commands(configured: Path, tmp_path: Path) -> None:
    script = tmp_path / "filter.sieve"
    script.write_text('require "fileinto";\nif header :contains "subject" "x" { fileinto "X"; }\n')
    put = sora("sieve", "put", "--email", EMAIL, "--name", "main", "--file", str(script), config=configured)
    assert (put.returncode, put.stdout) == (0, "stored main\n"), put.stderr
    spare = sora("sieve", "put", "--email", EMAIL, "--name", "spare", "--file", "-", "--activate",
                 config=configured, input="keep;\n")
    assert (spare.returncode, spare.stdout) == (0, "stored spare (active)\n"), spare.stderr
    listed = sora("sieve", "list", "--email", EMAIL, config=configured)
    assert listed.stdout == "main\nspare  (active)\n"
    rows = json.loads(sora("sieve", "list", "--email", EMAIL, "--json", config=configured).stdout)
    assert [(r["name"], r["active"], r["octets"]) for r in rows] == [
        ("main", False, len(script.read_bytes())), ("spare", True, 6)]
    shown = sora("sieve", "show", "--email", EMAIL, "--name", "main", config=configured)
    assert shown.stdout == script.read_text()
    as_json = json.loads(sora("sieve", "show", "--email", EMAIL, "--name", "main", "--json",
                              config=configured).stdout)
    assert as_json["script"] == script.read_text() and as_json["active"] is False
    assert sora("sieve", "activate", "--email", EMAIL, "--name", "main", config=configured).stdout == \
        "activated main\n"
    refused = sora("sieve", "delete", "--email", EMAIL, "--name", "main", config=configured)
    assert refused.returncode == 1 and refused.stderr == "error: script 'main' is active\n"
    assert sora("sieve", "rename", "--email", EMAIL, "--name", "main", "--to", "live",
                config=configured).stdout == "renamed main to live\n"
    assert sora("sieve", "deactivate", "--email", EMAIL, config=configured).stdout == "deactivated\n"
    assert sora("sieve", "delete", "--email", EMAIL, "--name", "live", config=configured).stdout == \
        "deleted live\n"
    assert sora("sieve", "list", "--email", EMAIL, config=configured).stdout == "spare\n"
    # under `python -m sora_cli.main` too, the plugin's commands see --config (one module, one state)
    as_module = subprocess.run([sys.executable, "-m", "sora_cli.main", "sieve", "list", "--email", EMAIL,
                                "--config", str(configured)], capture_output=True, text=True, timeout=120)
    assert (as_module.returncode, as_module.stdout) == (0, "spare\n"), as_module.stderr


def test_sieve_command_errors(configured: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.sieve"
    bad.write_text("if foo { keep; }\n")
    invalid = sora("sieve", "put", "--email", EMAIL, "--name", "bad", "--file", str(bad), config=configured)
    assert invalid.returncode == 1
    assert invalid.stderr == 'error: the script is invalid: line 1, column 4: unknown test "foo"\n'
    big = tmp_path / "big.sieve"
    big.write_text("#" * 20000 + "\n")
    too_big = sora("sieve", "put", "--email", EMAIL, "--name", "big", "--file", str(big), config=configured)
    assert too_big.returncode == 1 and too_big.stderr == "error: the script has 20001 octets; the limit is 16384\n"
    missing = sora("sieve", "put", "--email", EMAIL, "--name", "x", "--file", str(tmp_path / "nope"),
                   config=configured)
    assert missing.returncode == 1 and missing.stderr.startswith("error: cannot read ")
    nobody = sora("sieve", "list", "--email", "nobody@example.com", config=configured)
    assert nobody.returncode == 1 and nobody.stderr == "error: no account with address nobody@example.com\n"
    unknown = sora("sieve", "show", "--email", EMAIL, "--name", "nope", config=configured)
    assert unknown.returncode == 1 and unknown.stderr == "error: no script named 'nope'\n"
    inactive = sora("sieve", "activate", "--email", EMAIL, "--name", "nope", config=configured)
    assert inactive.returncode == 1 and inactive.stderr == "error: no script named 'nope'\n"
    assert sora("sieve", "list", "--email", EMAIL, config=configured).stdout == ""
