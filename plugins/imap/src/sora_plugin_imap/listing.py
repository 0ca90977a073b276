"""LIST and LSUB: reference + pattern matching with ``*`` and ``%`` (RFC 3501 6.3.8, 6.3.9)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from sora_kernel.api import DELIMITER, INBOX

_MAX_PATTERN_WILDCARDS = 20


def _canonical(name: str) -> str:
    """INBOX (any case) and its children with the canonical ``INBOX`` prefix."""
    head, sep, rest = name.partition(DELIMITER)
    if head.upper() == INBOX:
        return INBOX + sep + rest
    return name


def join_reference(reference: str, pattern: str) -> str:
    """Reference and pattern as one name pattern (the reference is a plain prefix here)."""
    return reference + pattern


def compile_pattern(pattern: str) -> re.Pattern[str]:
    """A LIST pattern → regex: ``*`` matches anything, ``%`` anything but the delimiter.

    A first level spelled INBOX in any case means INBOX.
    """
    if pattern.count("*") + pattern.count("%") > _MAX_PATTERN_WILDCARDS:
        raise ValueError("too many wildcards")
    pattern = _canonical(pattern)
    parts: list[str] = []
    for ch in pattern:
        if ch == "*":
            parts.append(".*")
        elif ch == "%":
            parts.append(f"[^{re.escape(DELIMITER)}]*")
        else:
            parts.append(re.escape(ch))
    return re.compile("".join(parts), re.DOTALL)


@dataclass
class ListEntry:
    """One line of a LIST/LSUB answer."""

    name: str
    attributes: list[str] = field(default_factory=list)
    #: CHILDINFO extended data (RFC 5258 3.5): the selection criteria a descendant meets
    childinfo: tuple[str, ...] = ()


def list_entries(
    names: Iterable[tuple[str, str | None]],
    reference: str,
    pattern: str,
    *,
    subscribed: set[str] | None = None,
) -> list[ListEntry]:
    """LIST: ``names`` are (name, special-use) of existing mailboxes.

    Attributes: \\HasChildren/\\HasNoChildren and the special-use flag, plus \\Subscribed when
    ``subscribed`` is given. A ``%`` that stops above an existing name also lists the parent
    (\\Noselect when it does not exist itself).
    """
    mailboxes = dict(names)
    regex = compile_pattern(join_reference(reference, pattern))
    parents = _parents(mailboxes)
    out: dict[str, ListEntry] = {}
    for name, special_use in mailboxes.items():
        if regex.fullmatch(name):
            attrs = ["\\HasChildren" if name in parents else "\\HasNoChildren"]
            if special_use:
                attrs.append(special_use)
            if subscribed is not None and name in subscribed:
                attrs.append("\\Subscribed")
            out[name] = ListEntry(name, attrs)
    if "%" in pattern:
        for parent in parents:
            if parent not in mailboxes and parent not in out and regex.fullmatch(parent):
                out[parent] = ListEntry(parent, ["\\Noselect", "\\HasChildren"])
    return sorted(out.values(), key=lambda e: (e.name != INBOX, e.name))


def subscribed_entries(
    subscriptions: Iterable[str],
    mailboxes: dict[str, str | None],
    reference: str,
    pattern: str,
    *,
    recursive: bool = False,
    children: bool = False,
) -> list[ListEntry]:
    """LIST (SUBSCRIBED [RECURSIVEMATCH]) (RFC 5258 3.1, 3.5; RFC 9051 6.3.9.1).

    ``mailboxes`` maps existing names to their special use. Subscribed names matching the
    pattern are listed with \\Subscribed (\\NonExistent when there is no such mailbox). With
    ``recursive`` every matching name with a subscribed descendant is listed too, subscribed or
    not, existing or not, with ``("CHILDINFO" ("SUBSCRIBED"))`` when not subscribed itself. ``children`` adds
    \\HasChildren/\\HasNoChildren (RETURN (CHILDREN)), from the existing mailboxes.
    """
    regex = compile_pattern(join_reference(reference, pattern))
    subscribed = {_canonical(name) for name in subscriptions}
    with_subscribed_child = _parents(subscribed) if recursive else set()
    parents = _parents(mailboxes) if children else set()
    out: list[ListEntry] = []
    for name in subscribed | with_subscribed_child:
        if not regex.fullmatch(name):
            continue
        attrs = []
        if name in subscribed:
            attrs.append("\\Subscribed")
        if name not in mailboxes:
            attrs.append("\\NonExistent")
        if children:
            attrs.append("\\HasChildren" if name in parents else "\\HasNoChildren")
        special_use = mailboxes.get(name)
        if special_use:
            attrs.append(special_use)
        # RFC 5258 3.5: CHILDINFO only when the mailbox itself does not meet the selection
        childinfo = ("SUBSCRIBED",) if name in with_subscribed_child and name not in subscribed else ()
        out.append(ListEntry(name, attrs, childinfo))
    return sorted(out, key=lambda e: (e.name != INBOX, e.name))


def lsub_entries(subscriptions: Iterable[str], existing: set[str], reference: str,
                 pattern: str) -> list[ListEntry]:
    """LSUB: subscribed names matching; a ``%`` that stops at an unsubscribed parent of a
    subscribed name lists that parent as \\Noselect (RFC 3501 6.3.9)."""
    regex = compile_pattern(join_reference(reference, pattern))
    subscribed = {_canonical(name) for name in subscriptions}
    out: dict[str, ListEntry] = {}
    for name in subscribed:
        if regex.fullmatch(name):
            out[name] = ListEntry(name, [] if name in existing else ["\\Noselect"])
    if "%" in pattern:
        for parent in _parents(dict.fromkeys(subscribed)):
            if parent not in subscribed and parent not in out and regex.fullmatch(parent):
                out[parent] = ListEntry(parent, ["\\Noselect"])
    return sorted(out.values(), key=lambda e: (e.name != INBOX, e.name))


def _parents(names: Iterable[str]) -> set[str]:
    """Every proper ancestor of the names."""
    parents: set[str] = set()
    for name in names:
        parts = name.split(DELIMITER)
        for depth in range(1, len(parts)):
            parents.add(DELIMITER.join(parts[:depth]))
    return parents
