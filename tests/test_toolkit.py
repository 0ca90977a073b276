"""The protocol toolkit's pieces on their own: declared settings, the admit policy."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import pytest

from sora_kernel.api import AdmitPolicy, ConfigError, SectionSettings, parse_networks, setting
from sora_kernel.config import build_config


@dataclass(frozen=True, slots=True)
class DemoSettings(SectionSettings):
    SECTION: ClassVar[str] = "demo"
    HELP: ClassVar[str] = "A demo protocol."

    addr: str = setting("addr", "127.0.0.1:4000", "Listener.")
    max_line: int = setting("size", "2kb", "Longest line.", minimum=512)
    idle: float = setting("duration", "5m", "Idle timeout; 0 = the default.", zero_means=300.0)
    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = setting(
        "list", ["10.0.0.0/8"], "Trusted networks.", convert=lambda values: tuple(parse_networks(values)))


def _config(values: dict[str, object]) -> object:
    return build_config(Path("sora.toml"), {"demo": values}, [DemoSettings.config_section()], {})


def test_each_default_is_written_once() -> None:
    section = DemoSettings.config_section()
    assert section.name == "demo" and section.help == "A demo protocol."
    assert [(s.key, s.kind, s.default) for s in section.settings] == [
        ("addr", "addr", "127.0.0.1:4000"), ("max_line", "size", "2kb"), ("idle", "duration", "5m"),
        ("networks", "list", ["10.0.0.0/8"])]
    # the Python defaults are the converted config defaults
    assert DemoSettings() == DemoSettings.from_config(_config({}))  # type: ignore[arg-type]
    assert DemoSettings().max_line == 2048 and DemoSettings().idle == 300.0


def test_minimum_zero_means_and_convert() -> None:
    settings = DemoSettings.from_config(_config({"max_line": 10, "idle": "0s", "networks": ["::1"]}))  # type: ignore[arg-type]
    assert settings.max_line == 512
    assert settings.idle == 300.0
    assert settings.networks == (ipaddress.ip_network("::1/128"),)


def test_a_failing_convert_names_the_key() -> None:
    with pytest.raises(ConfigError, match=r"\[demo\] networks = \('not-a-network',\)"):
        DemoSettings.from_config(_config({"networks": ["not-a-network"]}))  # type: ignore[arg-type]


def test_admit_policy_allowed_total_per_ip_and_exempt() -> None:
    policy = AdmitPolicy(3, 1, exempt=["10.0.0.0/8"], allowed=["10.0.0.0/8", "192.0.2.0/24"])
    assert policy.acquire("203.0.113.9") == "not_allowed"
    assert policy.acquire("192.0.2.1") is None
    assert policy.acquire("192.0.2.1") == "per_ip"
    assert policy.acquire("10.1.1.1") is None
    assert policy.acquire("10.1.1.1") is None  # exempt from the per-IP cap
    assert policy.acquire("10.1.1.2") == "total"
    policy.release("192.0.2.1")
    assert policy.acquire("::ffff:192.0.2.1") is None  # an IPv4-mapped address is the same client network
    assert policy.total == 3
