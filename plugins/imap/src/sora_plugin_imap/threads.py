"""THREAD algorithms (RFC 5256 ORDEREDSUBJECT and REFERENCES; REFS as Dovecot has it), sans-I/O.

Input is one narrow row per matching message (UID, Message-ID, In-Reply-To, References, base
subject, date) from :meth:`MailStore.thread_rows`; the output is the ``* THREAD`` list. Cost: one
container per message and per referenced Message-ID, so linear in the References seen.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

_MSG_ID = re.compile(r"<[^<>\s]+>")


@dataclass(frozen=True, slots=True)
class ThreadMessage:
    """What threading needs to know about one message."""

    uid: int
    message_id: str
    in_reply_to: str
    references: str
    base_subject: str  # RFC 5256 base subject, upper-cased (i;ascii-casemap)
    date: datetime  # sent date, else INTERNALDATE
    is_reply: bool = False  # the subject had a Re:/Fwd: the base subject dropped


_ASCII_UPPER = str.maketrans("abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ")


def message(uid: int, message_id: str, in_reply_to: str, references: str, base_subject: str,
            date: datetime, subject: str) -> ThreadMessage:
    """A :class:`ThreadMessage` from a store row; a reply is a subject the base subject shortened."""
    whole = " ".join(subject.split()).translate(_ASCII_UPPER)
    return ThreadMessage(uid, message_id, in_reply_to, references, base_subject, date,
                         is_reply=whole != base_subject)


@dataclass(eq=False, slots=True)
class _Node:
    message: ThreadMessage | None = None
    parent: _Node | None = None
    children: list[_Node] = field(default_factory=list)

    def adopt(self, child: _Node) -> None:
        if child.parent is not None:
            child.parent.children.remove(child)
        child.parent = self
        self.children.append(child)

    def has_descendant(self, other: _Node) -> bool:
        stack = list(self.children)
        while stack:
            node = stack.pop()
            if node is other:
                return True
            stack.extend(node.children)
        return False


def _key(node: _Node) -> tuple[datetime, int]:
    """Sort key: the message's date, a dummy's first child's (children sorted first)."""
    while node.message is None and node.children:
        node = node.children[0]
    message = node.message
    assert message is not None  # pruning leaves no childless dummy
    return message.date, message.uid


def _sort_tree(nodes: list[_Node]) -> None:
    for node in nodes:
        _sort_tree(node.children)
    nodes.sort(key=_key)


def _newest(node: _Node) -> tuple[datetime, int]:
    best = (node.message.date, node.message.uid) if node.message else None
    for child in node.children:
        candidate = _newest(child)
        if best is None or candidate > best:
            best = candidate
    assert best is not None
    return best


def _msgid(value: str) -> str | None:
    match = _MSG_ID.search(value)
    return match.group() if match else None


def _link(messages: Sequence[ThreadMessage]) -> list[_Node]:
    """RFC 5256 REFERENCES steps 1-3: containers by Message-ID, parents from References, the
    root set, empty containers pruned."""
    table: dict[str, _Node] = {}
    nodes: list[_Node] = []
    for message in messages:
        own = _msgid(message.message_id)
        node = table.get(own) if own is not None else None
        if node is None or node.message is not None:  # no or a duplicate Message-ID: a unique one
            node = _Node()
            if own is not None and own not in table:
                table[own] = node
        node.message = message
        nodes.append(node)
        refs = _MSG_ID.findall(message.references)
        if not refs:
            reply = _msgid(message.in_reply_to)
            refs = [reply] if reply else []
        previous: _Node | None = None
        for ref in refs:
            container = table.get(ref)
            if container is None:
                container = table[ref] = _Node()
            if (previous is not None and container.parent is None and container is not previous
                    and not container.has_descendant(previous)):
                previous.adopt(container)
            previous = container
        # the last reference is the parent, replacing what an older References chain said
        if previous is not None and previous is not node and not node.has_descendant(previous):
            previous.adopt(node)
        elif previous is None and node.parent is not None:
            node.parent.children.remove(node)
            node.parent = None
    roots = [n for n in {id(n): n for n in [*table.values(), *nodes]}.values() if n.parent is None]
    return _prune(roots, at_root=True)


def _prune(nodes: list[_Node], *, at_root: bool) -> list[_Node]:
    out: list[_Node] = []
    for node in nodes:
        node.children = _prune(node.children, at_root=False)
        for child in node.children:
            child.parent = node
        if node.message is None:
            if not node.children:
                continue
            if not at_root or len(node.children) == 1:  # promote the children a level
                for child in node.children:
                    child.parent = None if at_root else node.parent
                out.extend(node.children)
                continue
        out.append(node)
    return out


def _subject(node: _Node) -> tuple[str, bool]:
    message = node.message if node.message is not None else node.children[0].message
    if message is None:
        return "", False
    return message.base_subject, message.is_reply


def _merge_subjects(roots: list[_Node]) -> list[_Node]:
    """RFC 5256 REFERENCES step 5: gather root threads that have the same base subject.

    The table keeps one root per subject: a dummy over a message, a non-reply over a reply. Every
    other root with that subject joins it; a message joining a message (neither a reply to the
    other) turns the kept root into a dummy holding both, in place, so the root order stays.
    """
    _sort_tree(roots)
    table: dict[str, _Node] = {}
    for root in roots:
        subject, reply = _subject(root)
        if not subject:
            continue
        held = table.get(subject)
        if held is None or (held.message is not None and (root.message is None or (_subject(held)[1] and not reply))):
            table[subject] = root
    for root in roots:
        subject, reply = _subject(root)
        held = table.get(subject) if subject else None
        if held is None or held is root:
            continue
        if root.message is None:  # both dummies (a dummy is always the one kept)
            for child in list(root.children):
                held.adopt(child)
        elif held.message is None or (reply and not _subject(held)[1]):
            held.adopt(root)
        else:
            moved = _Node(held.message)
            for child in list(held.children):
                moved.adopt(child)
            held.message = None
            held.adopt(moved)
            held.adopt(root)
    return [root for root in roots if root.parent is None and (root.message is not None or root.children)]


def references(messages: Sequence[ThreadMessage]) -> list[_Node]:
    """THREAD=REFERENCES (RFC 5256 section 3): threads by date of their first message."""
    roots = _merge_subjects(_link(messages))
    _sort_tree(roots)
    return roots


def refs(messages: Sequence[ThreadMessage]) -> list[_Node]:
    """THREAD=REFS: REFERENCES without the subject merge; threads ordered by their newest message
    (the order a mail client shows), siblings by date."""
    roots = _link(messages)
    _sort_tree(roots)
    roots.sort(key=_newest)
    return roots


def ordered_subject(messages: Sequence[ThreadMessage]) -> list[_Node]:
    """THREAD=ORDEREDSUBJECT (RFC 5256 section 3): by base subject, the first message of each
    subject the parent of the others; threads by date of their first message."""
    groups: dict[str, list[ThreadMessage]] = {}
    for message in sorted(messages, key=lambda m: (m.date, m.uid)):
        groups.setdefault(message.base_subject, []).append(message)
    roots: list[_Node] = []
    for group in groups.values():
        root = _Node(group[0])
        for message in group[1:]:
            root.adopt(_Node(message))
        roots.append(root)
    roots.sort(key=_key)
    return roots


ALGORITHMS: dict[str, Callable[[Sequence[ThreadMessage]], list[_Node]]] = {
    "ORDEREDSUBJECT": ordered_subject,
    "REFERENCES": references,
    "REFS": refs,
}


def format_threads(roots: Iterable[_Node], number: Callable[[int], int | None]) -> bytes:
    """``(1 2 (3)(4))(5)``: a single child continues the list, several children are sublists.

    ``number`` maps a UID to what the client sees (UID or sequence number)."""

    def members(node: _Node) -> str:
        parts: list[str] = []
        while True:
            if node.message is not None:
                n = number(node.message.uid)
                if n is not None:
                    parts.append(str(n))
            if len(node.children) == 1:
                node = node.children[0]
                continue
            if node.children:
                parts.append("".join(f"({members(child)})" for child in node.children))
            return " ".join(parts)

    return "".join(f"({members(root)})" for root in roots).encode()
