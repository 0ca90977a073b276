"""Configuration: typed values, units, env overrides, errors that name the key."""

from __future__ import annotations

import pytest

from sora_kernel.config import build_config, parse_duration, parse_size, render_template
from sora_kernel.errors import ConfigError
from sora_kernel.types import ConfigSection, Setting

SECTION = ConfigSection("demo", (
    Setting("size", "size", "25mb"),
    Setting("wait", "duration", "30s"),
    Setting("port", "int", 10),
    Setting("on", "bool", False),
    Setting("addr", "addr", "127.0.0.1:1143"),
    Setting("names", "list", ["a"]),
    Setting("password", "str", "", secret=True),
    Setting("mode", "str", "x", choices=("x", "y")),
))


def test_units() -> None:
    assert parse_size("25mb") == 25 * 1024 * 1024
    assert parse_size("512 KB") == 512 * 1024
    assert parse_size(100) == 100
    assert parse_duration("14d") == 14 * 86400
    assert parse_duration("1h30m") == 5400
    assert parse_duration("500ms") == 0.5
    with pytest.raises(ValueError):
        parse_size("lots")
    with pytest.raises(ValueError):
        parse_duration("5 fortnights")


def test_defaults_file_and_env() -> None:
    config = build_config(None, {"demo": {"port": 11, "size": "1kb"}}, [SECTION],
                          environ={"SORA_DEMO__ON": "yes", "SORA_DEMO__NAMES": "b, c"})
    values = config.section("demo")
    assert values == {"size": 1024, "wait": 30.0, "port": 11, "on": True, "addr": "127.0.0.1:1143",
                      "names": ["b", "c"], "password": "", "mode": "x"}


def test_errors_name_key_value_and_expectation() -> None:
    with pytest.raises(ConfigError) as info:
        build_config(None, {"demo": {"port": "ten", "size": "huge", "typo": 1, "mode": "z"}}, [SECTION], environ={})
    text = str(info.value)
    assert "[demo] port = 'ten': expected an integer" in text
    assert "[demo] size = 'huge': expected a size" in text
    assert "[demo] typo: unknown key" in text
    assert "[demo] mode = 'z': expected one of x, y" in text


def test_env_error_names_variable() -> None:
    with pytest.raises(ConfigError, match="SORA_DEMO__WAIT"):
        build_config(None, {}, [SECTION], environ={"SORA_DEMO__WAIT": "soon"})


def test_secrets_masked_in_dump() -> None:
    config = build_config(None, {"demo": {"password": "hunter2"}}, [SECTION], environ={})
    assert config.dump()["demo"]["password"] == "********"
    assert config.dump(mask_secrets=False)["demo"]["password"] == "hunter2"


def test_template_round_trips() -> None:
    import tomllib

    text = render_template([SECTION], {"demo": {"port": 99}})
    assert "# " in text
    raw = tomllib.loads(text)
    config = build_config(None, raw, [SECTION], environ={})
    assert config.get("demo", "port") == 99
