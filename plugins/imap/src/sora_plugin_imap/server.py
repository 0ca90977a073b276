"""The IMAP listeners: plain (with STARTTLS) and implicit TLS, one session per connection.

Extending IMAP from another plugin (the hooks are declared in :mod:`.hookspecs`):

* ``sora_imap_capabilities(kernel)`` returns extra capability tokens, advertised after login.
* ``sora_imap_commands(kernel)`` returns ``{"NAME": handler}``; a command the grammar does not
  know is given to ``await handler(session, tag, data)`` in the authenticated and selected states.
  ``data`` is the whole command (lines joined with literals, see :func:`grammar.literal_at_end`).
  The handler may queue untagged responses with ``session.send(b"* ...\r\n")`` and returns the
  tagged line (``session.tagged(tag, "OK", "Done.")``). ``session.account_id``,
  ``session.principal`` and ``session.selected`` describe the context. Raising
  :class:`.replies.Reply` (``replies.no(...)``, ``replies.bad(...)``) answers NO or BAD; any
  other exception is logged and answered ``NO [SERVERBUG]`` (``NO [UNAVAILABLE]`` for transient
  store errors), and the session goes on.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import structlog

from sora_kernel.api import AdmitPolicy, Connection, ProtocolListeners

from .session import Session
from .settings import ImapSettings

if TYPE_CHECKING:
    from sora_kernel.api import KernelServices

log = structlog.get_logger("sora.imap")

GOODBYE = b"* BYE Server shutting down\r\n"


def _refuse(reason: str) -> bytes:
    if reason == "per_ip":
        return b"* BYE [UNAVAILABLE] Too many connections from your address\r\n"
    return b"* BYE [UNAVAILABLE] Too many connections, try again later\r\n"


class ImapServer:
    """Shared state of the IMAP listeners of one worker: settings, limiter, plugin commands."""

    def __init__(self, kernel: KernelServices) -> None:
        self.kernel = kernel
        self.settings = ImapSettings.from_config(kernel.config)
        self.listeners = ProtocolListeners(
            "imap", "imap", self.handle, addr=self.settings.addr, tls_addr=self.settings.tls_addr,
            goodbye=GOODBYE, refuse=_refuse,
            admit=AdmitPolicy(self.settings.max_connections, self.settings.max_connections_per_ip))
        plugins = kernel.plugins
        self.extra_capabilities = tuple(item for _, item in plugins.collect("sora_imap_capabilities", kernel=kernel))
        commands = [(plugin, (name.upper(), handler))
                    for plugin, table in plugins.collect("sora_imap_commands", kernel=kernel)
                    for name, handler in table.items()]
        plugins.claim("IMAP command", commands, lambda item: item[0])
        self.extra_commands: dict[str, Any] = dict(item for _, item in commands)

    async def handle(self, conn: Connection) -> None:
        """Run one client session until it logs out, times out or the server stops."""
        await Session(self, conn).run()
