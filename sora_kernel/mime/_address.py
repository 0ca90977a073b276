"""Address list parser, a port of Dovecot's message-address.c (message_address_parse).

Groups come back Dovecot style: a start marker with only ``mailbox`` set (the group
name) and an end marker with every field None.
"""

from __future__ import annotations

from dataclasses import dataclass

from ._rfc822 import NUL_REPLACEMENT, Rfc822Parser


@dataclass(slots=True)
class Address:
    """One entry of an address list (fields are raw bytes, never decoded)."""

    name: bytes | None = None
    route: bytes | None = None
    mailbox: bytes | None = None
    domain: bytes | None = None
    invalid_syntax: bool = False

    @property
    def is_group_marker(self) -> bool:
        """True for the group start/end pseudo-addresses."""
        return self.domain is None


class _AddressParser:
    __slots__ = ("addr", "addrs", "fill_missing", "p", "str")

    def __init__(self, data: bytes, fill_missing: bool) -> None:
        self.p = Rfc822Parser(data, bytearray())
        self.p.nul_replacement = NUL_REPLACEMENT
        self.fill_missing = fill_missing
        self.addrs: list[Address] = []
        self.addr = Address()
        self.str = bytearray()

    def _add(self) -> None:
        self.addrs.append(self.addr)
        self.addr = Address()

    def _add_fixed(self) -> None:
        a = self.addr
        if a.mailbox is None:
            a.mailbox = b"MISSING_MAILBOX" if self.fill_missing else b""
            a.invalid_syntax = True
        if not a.domain:
            a.domain = b"MISSING_DOMAIN" if self.fill_missing else b""
            a.invalid_syntax = True
        self._add()

    def _local_part(self) -> int:
        p = self.p
        self.str.clear()
        quoted = p.data[p.pos] == 34
        ret = p.parse_quoted_string(self.str) if quoted else p.parse_dot_atom(self.str)
        if ret < 0:
            return -1
        self.addr.mailbox = bytes(self.str)
        return ret

    def _domain(self) -> int:
        self.str.clear()
        ret = self.p.parse_domain(self.str)
        if ret < 0:
            return -1
        self.addr.domain = bytes(self.str)
        return ret

    def _domain_list(self) -> int:
        p = self.p
        s = self.str
        s.clear()
        while True:
            if p.pos >= p.end:
                return 0
            if p.data[p.pos] != 64:  # @
                break
            if s:
                s.append(44)
            s.append(64)
            ret = p.parse_domain(s)
            if ret <= 0:
                return ret
            while p.skip_lwsp() > 0 and p.data[p.pos] == 44:
                p.pos += 1
        self.addr.route = bytes(s)
        return 1

    def _angle_addr(self) -> int:
        p = self.p
        p.pos += 1  # '<'
        if p.skip_lwsp() <= 0:
            return -1
        if p.data[p.pos] == 64:
            if self._domain_list() > 0 and p.cur() == 58:  # ':'
                p.pos += 1
            else:
                if self.fill_missing:
                    self.addr.route = b"INVALID_ROUTE"
                if p.pos >= p.end:
                    return -1
            if p.skip_lwsp() <= 0:
                return -1
        if p.data[p.pos] != 62:  # '>'
            if self._local_part() <= 0:
                return -1
            if p.data[p.pos] == 64 and self._domain() <= 0:
                return -1
        if p.cur() != 62:
            return -1
        p.pos += 1
        return p.skip_lwsp()

    def _name_addr(self) -> int:
        p = self.p
        self.str.clear()
        if p.parse_phrase(self.str) <= 0 or p.data[p.pos] != 60:  # '<'
            return -1
        self.addr.name = bytes(self.str) or None
        if self._angle_addr() < 0:
            if self.fill_missing:
                self.addr.domain = b"SYNTAX_ERROR"
            self.addr.invalid_syntax = True
        return 1 if p.pos < p.end else 0

    def _addr_spec(self) -> int:
        p = self.p
        a = self.addr
        ret2 = -2
        assert p.last_comment is not None
        p.last_comment.clear()
        quoted_string = p.data[p.pos] == 34
        ret = self._local_part()
        if ret <= 0:
            a.invalid_syntax = True
        if ret != 0 and p.pos < p.end and p.data[p.pos] == 64:
            ret2 = self._domain()
            if ret2 <= 0:
                ret = ret2
        if p.last_comment:
            a.name = bytes(p.last_comment)
        elif ret2 == -2:
            # "user" alone is a mailbox; "user" followed by more words is a display name
            self.str.append(32)
            orig_len = len(self.str)
            p.parse_phrase(self.str)
            if len(self.str) != orig_len:
                a.mailbox = None
                a.name = bytes(self.str)
            elif not quoted_string:
                a.domain = b""
            a.invalid_syntax = True
            ret = -1
        return ret

    def _mailbox(self) -> int:
        p = self.p
        start = p.pos
        ret = self._name_addr()
        if ret < 0:
            p.pos = start
            ret = self._addr_spec()
            a = self.addr
            if a.invalid_syntax and a.name is None and a.mailbox is not None and a.domain is None:
                a.name = a.mailbox
                a.mailbox = None
        if ret < 0:
            self.addr.invalid_syntax = True
        self._add_fixed()
        return ret

    def _group(self) -> int:
        p = self.p
        self.str.clear()
        if p.parse_phrase(self.str) <= 0 or p.data[p.pos] != 58:  # ':'
            return -1
        # from now on this is a group even if it is broken
        p.pos += 1
        ret = p.skip_lwsp()
        if ret <= 0:
            self.addr.invalid_syntax = True
        self.addr.mailbox = bytes(self.str)
        self._add()
        if ret > 0 and p.data[p.pos] != 59:  # ';'
            while True:
                self._mailbox()
                if p.pos >= p.end or p.data[p.pos] != 44:
                    break
                p.pos += 1
                if p.skip_lwsp() <= 0:
                    ret = -1
                    break
        if ret >= 0:
            if p.pos >= p.end or p.data[p.pos] != 59:
                ret = -1
            else:
                p.pos += 1
                ret = p.skip_lwsp()
        if ret < 0:
            self.addr.invalid_syntax = True
        self._add()
        return 0 if ret == 0 else 1

    def _address(self) -> int:
        start = self.p.pos
        ret = self._group()
        if ret < 0:
            self.p.pos = start
            ret = self._mailbox()
        return ret

    def parse(self) -> list[Address]:
        p = self.p
        if p.skip_lwsp() <= 0:
            return self.addrs
        while True:
            if self._address() == 0:
                break
            if p.pos >= p.end or p.data[p.pos] != 44:
                break
            p.pos += 1
            ret = p.skip_lwsp()
            if ret <= 0:
                if ret < 0:
                    # ends with some garbage
                    self._add_fixed()
                break
        return self.addrs


def parse_addresses(value: bytes, fill_missing: bool = True) -> list[Address]:
    """Parse an address-list header value the way Dovecot does for ENVELOPE."""
    return _AddressParser(value, fill_missing).parse()
