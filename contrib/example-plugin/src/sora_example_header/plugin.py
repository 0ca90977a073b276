"""Hook implementations of the example plugin."""

from __future__ import annotations

from typing import Any

from sora_kernel.api import ConfigSection, Delivery, Setting, hookimpl


@hookimpl
def sora_config_sections() -> list[ConfigSection]:
    """The ``[example_header]`` section."""
    return [ConfigSection("example_header", (
        Setting("name", "str", "X-Sora-Example", "Header field name."),
        Setting("value", "str", "delivered", "Header field value."),
    ), "Example plugin: a header on every delivered message.")]


@hookimpl
def sora_delivery_headers(kernel: Any, delivery: Delivery) -> list[tuple[str, str]]:
    """One header field for every delivery, as configured."""
    settings = kernel.config.section("example_header")
    return [(settings["name"], settings["value"])]
