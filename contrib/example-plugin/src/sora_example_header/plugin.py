"""Hook implementations of the example plugin: a kernel hook and two of the IMAP plugin's own hooks."""

from __future__ import annotations

from typing import Any

from sora_kernel.api import ConfigSection, Delivery, KernelServices, Setting, hookimpl


@hookimpl
def sora_config_sections() -> list[ConfigSection]:
    """The ``[example_header]`` section."""
    return [ConfigSection("example_header", (
        Setting("name", "str", "X-Sora-Example", "Header field name."),
        Setting("value", "str", "delivered", "Header field value."),
    ), "Example plugin: a header on every delivered message, and an IMAP command that shows it.")]


@hookimpl
def sora_delivery_headers(kernel: KernelServices, delivery: Delivery) -> list[tuple[str, str]]:
    """One header field for every delivery, as configured."""
    settings = kernel.config.section("example_header")
    return [(settings["name"], settings["value"])]


# The IMAP plugin declares these hooks itself (sora_addhooks). ``optionalhook`` lets this plugin load
# when IMAP is not enabled: the hooks are then simply never asked.


@hookimpl(optionalhook=True)
def sora_imap_capabilities(kernel: KernelServices) -> list[str]:
    """Advertise ``XEXAMPLE`` after login."""
    return ["XEXAMPLE"]


@hookimpl(optionalhook=True)
def sora_imap_commands(kernel: KernelServices) -> dict[str, Any]:
    """``XEXAMPLE``: answers with the header field this plugin adds to deliveries."""
    settings = kernel.config.section("example_header")
    field = f"{settings['name']}: {settings['value']}".encode()

    async def xexample(session: Any, tag: str, data: bytes) -> bytes:
        session.send(b'* XEXAMPLE "' + field.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"\r\n')
        return bytes(session.tagged(tag, "OK", "XEXAMPLE completed."))

    return {"XEXAMPLE": xexample}
