"""A declared ``[a.b]`` section is TOML's sub-table of ``[a]`` (the relay's ``[relay.queue]``)."""

from __future__ import annotations

import tomllib

import pytest

from sora_kernel.config import build_config, render_template
from sora_kernel.errors import ConfigError
from sora_kernel.types import ConfigSection, Setting

PARENT = ConfigSection("outer", (Setting("host", "str", ""),))
CHILD = ConfigSection("outer.inner", (Setting("batch", "int", 100), Setting("wait", "duration", "1m")))


def test_a_sub_table_is_read_as_its_own_section_and_not_as_an_unknown_key() -> None:
    raw = tomllib.loads('[outer]\nhost = "mx"\n[outer.inner]\nbatch = 7\n')
    config = build_config(None, raw, [PARENT, CHILD], environ={})
    assert config.get("outer", "host") == "mx"
    assert config.section("outer.inner") == {"batch": 7, "wait": 60.0}


def test_a_flat_dotted_key_works_too_and_env_overrides_use_an_underscore() -> None:
    config = build_config(None, {"outer.inner": {"batch": 3}}, [PARENT, CHILD],
                          environ={"SORA_OUTER_INNER__WAIT": "5s"})
    assert config.section("outer.inner") == {"batch": 3, "wait": 5.0}


def test_unknown_keys_in_a_sub_table_and_undeclared_sub_tables_are_errors() -> None:
    with pytest.raises(ConfigError, match=r"\[outer.inner\] typo: unknown key"):
        build_config(None, tomllib.loads("[outer.inner]\ntypo = 1\n"), [PARENT, CHILD], environ={})
    with pytest.raises(ConfigError, match=r"\[outer\] other: unknown key"):
        build_config(None, tomllib.loads("[outer.other]\nx = 1\n"), [PARENT, CHILD], environ={})


def test_the_template_nests_the_sub_table_and_reads_back() -> None:
    text = render_template([PARENT, CHILD], {})
    assert "[outer.inner]" in text
    config = build_config(None, tomllib.loads(text), [PARENT, CHILD], environ={})
    assert config.section("outer.inner")["batch"] == 100
