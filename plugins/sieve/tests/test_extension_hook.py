"""A third-party Sieve extension through ``sora_sieve_extensions`` (the README's example), end to end."""

from __future__ import annotations

from typing import Any

from sora_plugin_sieve import api
from sora_plugin_sieve.compiler import Extension, Op, Spec
from sora_plugin_sieve.interpreter import Action, Interpreter
from test_delivery import activate, message, rows, send

from sora_kernel.api import hookimpl


async def run_tagflag(interp: Interpreter, op: Op) -> None:
    """``tagflag "word"``: keep with the keyword ``$word``."""
    interp.add_action(Action("keep", op.line, flags=(f"${interp.expand(op.args[0])}",)))


class TagFlagPlugin:
    """Adds the ``vnd.example.tagflag`` extension."""

    @hookimpl
    def sora_sieve_extensions(self, kernel: Any) -> list[Extension]:
        """One extension, one command."""
        return [Extension("vnd.example.tagflag", (
            Spec("tagflag", "command", "vnd.example.tagflag", run_tagflag, ("string",)),))]


def test_third_party_extension(sora_server: Any) -> None:
    srv = sora_server(plugins=["lmtp", "sieve"], extra_plugins=[("tagflag", TagFlagPlugin())])
    try:
        assert "vnd.example.tagflag" in api.capabilities()
        account = srv.create_account("a@example.com")
        activate(srv, account, 'require "vnd.example.tagflag"; tagflag "work";')
        assert send(srv, message("x")) == {}
        (row,) = rows(srv, account, "INBOX")
        assert row.keywords == ("$work",)
    finally:
        api.register_extensions([])
    assert "vnd.example.tagflag" not in api.capabilities()
