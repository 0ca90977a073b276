"""Parser limits: everything a client controls is bounded by one of these."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds applied by :func:`~sora_plugin_imap.grammar.commands.parse_command`.

    ``max_line_length``: octets in one line of a command (literal contents excluded). RFC 7162
    asks servers to accept at least 8192.
    ``max_literal_size``: octets in a literal that is not an APPEND message (LOGIN, SEARCH ...).
    ``max_append_size``: octets in one APPEND message literal.
    ``max_depth``: nesting of parentheses (and NOT/OR chains in SEARCH).
    ``max_search_keys``: search keys in one SEARCH program.
    ``max_append_messages``: messages in one (MULTI)APPEND command.
    """

    max_line_length: int = 65536
    max_literal_size: int = 1024 * 1024
    max_append_size: int = 64 * 1024 * 1024
    max_depth: int = 64
    max_search_keys: int = 1000
    max_append_messages: int = 1000


DEFAULT_LIMITS = Limits()
