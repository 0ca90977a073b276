"""APPEND into the selected mailbox skips the name lookup; a mailbox deleted meanwhile is still refused."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def test_append_to_selected_then_deleted_elsewhere(raw: Callable[..., Any], account: tuple[str, str]) -> None:
    first, second = raw(), raw()
    first.login(*account)
    second.login(*account)
    assert b"a OK" in first.cmd(b"a CREATE Work")
    assert b"b OK" in first.cmd(b"b SELECT Work")
    message = b"Subject: s\r\n\r\nbody\r\n"
    appended = first.cmd(b"c APPEND Work {%d+}\r\n" % len(message) + message)
    assert b"* 1 EXISTS" in appended and b"c OK [APPENDUID " in appended and b" 1] " in appended
    inbox = first.cmd(b"d APPEND inbox {%d+}\r\n" % len(message) + message)  # not selected: looked up
    assert b"d OK [APPENDUID " in inbox
    assert b"e OK" in second.cmd(b"e DELETE Work")
    gone = first.cmd(b"f APPEND Work {%d+}\r\n" % len(message) + message)
    assert b"f NO [TRYCREATE]" in gone
