"""The IMAP plugin's own hooks: how other plugins extend IMAP (declared through ``sora_addhooks``).

Implement them like any Sora hook (``@hookimpl`` from :mod:`sora_kernel.api`); they are asked once
per worker when the IMAP listeners start, never per command. The plugin's README documents them
with an example; ``contrib/example-plugin`` adds a command through ``sora_imap_commands``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from sora_kernel.api import hookspec

if TYPE_CHECKING:
    from sora_kernel.api import KernelServices, Principal

#: ``await handler(session, tag, data) -> bytes`` (the tagged line); see :mod:`.server`.
CommandHandler = Callable[[Any, str, bytes], Awaitable[bytes]]


@hookspec
def sora_imap_capabilities(kernel: KernelServices) -> list[str] | None:
    """Return extra capability tokens to advertise after login (``ACL``, ``METADATA``...). Sync."""


@hookspec
def sora_imap_commands(kernel: KernelServices) -> dict[str, CommandHandler] | None:
    """Return extra command handlers by command name; a name claimed twice stops start-up. Sync.

    A command the grammar does not know is given to ``await handler(session, tag, data)`` in the
    authenticated and selected states, ``data`` being the whole command (lines joined with
    literals). The handler queues untagged responses with ``session.send(b"* ...\\r\\n")`` and
    returns the tagged line (``session.tagged(tag, "OK", "Done.")``); raising
    ``replies.no(...)``/``replies.bad(...)`` answers NO or BAD.
    """


@hookspec
def sora_imap_namespaces(kernel: KernelServices, principal: Principal) -> list[tuple[str, str, str]] | None:
    """Return extra NAMESPACE entries as (kind, prefix, delimiter), kind ``other`` or ``shared``. Sync.

    Asked when a client sends NAMESPACE (the ACL plugin announces ``Other Users/`` and ``Shared/``).
    """
