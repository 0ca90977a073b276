"""IMAP command parser: one joined command (lines + literals) in, one typed :class:`Command` out.

Framing contract with the socket loop: read a line (without CRLF); while
:func:`literal_at_end` finds ``{n}``/``{n+}``/``~{n}`` at its end, answer ``+`` for a
synchronizing literal, read ``n`` octets and the next line. Hand the whole thing to
:func:`parse_command` as ``line1 + b"\\r\\n" + literal + line2 ...`` (final CRLF stripped).
"""

from __future__ import annotations

import binascii
import re
import typing
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar, NamedTuple

from .dates import match_date_time
from .errors import ParseError
from .fetch import FetchAtt, parse_fetch_atts
from .limits import DEFAULT_LIMITS, Limits
from .reader import MAX_NUMBER64, RawValue, Reader, check_number
from .search import SearchKey, parse_search_program
from .sequence import SequenceSet, parse_sequence_set

# -- framing ---------------------------------------------------------------------------------


class Literal(NamedTuple):
    """A literal announced at the end of a line: ``{size}``, ``{size+}`` or ``~{size}``."""

    size: int
    non_sync: bool
    binary: bool = False


_LITERAL_END_RE = re.compile(rb"(~?)\{([0-9]+)(\+?)\}\Z")


def literal_at_end(line: bytes) -> Literal | None:
    """``Literal(size, non_sync, binary)`` if ``line`` (no CRLF) ends with a literal prefix.

    ``{n}`` is synchronizing (send ``+ Ready``), ``{n+}`` is LITERAL+/LITERAL-, ``~{n}`` a
    literal8 (BINARY). The caller compares ``size`` with its limits (``max_append_size`` for
    APPEND, ``max_literal_size`` otherwise, 4096 for non-sync under LITERAL-). Sizes too large
    to be real raise :class:`ParseError` carrying the tag if one can be read.
    """
    if not line.endswith(b"}"):
        return None
    start = line.rfind(b"{")
    if start < 0:
        return None
    if start > 0 and line[start - 1] == 0x7E:
        start -= 1
    match = _LITERAL_END_RE.match(line, start)
    if match is None:
        return None
    try:
        size = check_number(match.group(2), MAX_NUMBER64, "literal size")
    except ParseError as exc:
        exc.tag = peek_tag_and_name(line)[0]
        raise
    return Literal(size, bool(match.group(3)), bool(match.group(1)))


_PEEK_RE = re.compile(rb'([^(){ %*"\\+\x00-\x1f\x7f-\xff]+)(?: ([A-Za-z]+)(?: ([A-Za-z]+))?)?')


def peek_tag_and_name(line: bytes) -> tuple[str | None, str | None]:
    """Best-effort (tag, command name) from a line's start, for errors before a full parse.

    The name is upper-cased; ``UID FETCH`` etc. come back with the sub-command.
    """
    match = _PEEK_RE.match(line)
    if match is None:
        return None, None
    tag = match.group(1).decode("ascii")
    name = match.group(2).decode("ascii").upper() if match.group(2) else None
    if name == "UID" and match.group(3):
        name = "UID " + match.group(3).decode("ascii").upper()
    return tag, name


def is_idle_done(line: bytes) -> bool:
    """True if a line (without CRLF) read during IDLE is ``DONE`` (case-insensitive)."""
    return line.upper() == b"DONE"


def decode_sasl_response(line: bytes) -> bytes | None:
    """A SASL continuation line (without CRLF) to octets; ``None`` means ``*`` (cancel)."""
    if line == b"*":
        return None
    return _base64(line)


def _base64(data: bytes) -> bytes:
    if data in (b"", b"="):
        return b""
    try:
        return binascii.a2b_base64(data, strict_mode=True)
    except (binascii.Error, ValueError) as exc:
        raise ParseError("Invalid base64") from exc


# -- commands --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Command:
    """Base of every parsed command. ``name`` is the upper-case command name."""

    tag: str
    NAME: ClassVar[str] = ""

    @property
    def name(self) -> str:
        """Command name as written in responses and logs, e.g. ``UID FETCH``."""
        return self.NAME


@dataclass(frozen=True, slots=True)
class Capability(Command):
    """CAPABILITY."""

    NAME: ClassVar[str] = "CAPABILITY"


@dataclass(frozen=True, slots=True)
class Noop(Command):
    """NOOP."""

    NAME: ClassVar[str] = "NOOP"


@dataclass(frozen=True, slots=True)
class Logout(Command):
    """LOGOUT."""

    NAME: ClassVar[str] = "LOGOUT"


@dataclass(frozen=True, slots=True)
class StartTls(Command):
    """STARTTLS."""

    NAME: ClassVar[str] = "STARTTLS"


@dataclass(frozen=True, slots=True)
class Authenticate(Command):
    """AUTHENTICATE mechanism [initial-response]; ``=`` gives ``b""``, absent gives None."""

    mechanism: str
    initial_response: bytes | None = None
    NAME: ClassVar[str] = "AUTHENTICATE"


@dataclass(frozen=True, slots=True)
class Login(Command):
    """LOGIN username password (UTF-8)."""

    username: str
    password: str
    NAME: ClassVar[str] = "LOGIN"

    def __repr__(self) -> str:
        return f"Login(tag={self.tag!r}, username={self.username!r}, password='***')"


@dataclass(frozen=True, slots=True)
class QResync:
    """SELECT/EXAMINE ``(QRESYNC (uidvalidity modseq [known-uids] [(seqs uids)]))``."""

    uidvalidity: int
    modseq: int
    known_uids: SequenceSet | None = None
    seq_match: tuple[SequenceSet, SequenceSet] | None = None


@dataclass(frozen=True, slots=True)
class Select(Command):
    """SELECT, or EXAMINE when ``readonly``; ``params`` is the raw parameter list."""

    mailbox: str
    params: tuple[RawValue, ...] = ()
    readonly: bool = False
    condstore: bool = False
    qresync: QResync | None = None

    @property
    def name(self) -> str:
        """``SELECT`` or ``EXAMINE``."""
        return "EXAMINE" if self.readonly else "SELECT"


@dataclass(frozen=True, slots=True)
class Create(Command):
    """CREATE mailbox [(USE (\\Sent ...))]; ``special_use`` holds the USE flags."""

    mailbox: str
    special_use: tuple[str, ...] = ()
    params: tuple[RawValue, ...] = ()
    NAME: ClassVar[str] = "CREATE"


@dataclass(frozen=True, slots=True)
class Delete(Command):
    """DELETE mailbox."""

    mailbox: str
    NAME: ClassVar[str] = "DELETE"


@dataclass(frozen=True, slots=True)
class Rename(Command):
    """RENAME mailbox new_name."""

    mailbox: str
    new_name: str
    NAME: ClassVar[str] = "RENAME"


@dataclass(frozen=True, slots=True)
class Subscribe(Command):
    """SUBSCRIBE mailbox."""

    mailbox: str
    NAME: ClassVar[str] = "SUBSCRIBE"


@dataclass(frozen=True, slots=True)
class Unsubscribe(Command):
    """UNSUBSCRIBE mailbox."""

    mailbox: str
    NAME: ClassVar[str] = "UNSUBSCRIBE"


@dataclass(frozen=True, slots=True)
class List(Command):
    """LIST, basic or LIST-EXTENDED (RFC 5258, 6154, 5819).

    ``selection``: upper-case selection options (SUBSCRIBED, REMOTE, RECURSIVEMATCH,
    SPECIAL-USE). ``return_options``: upper-case RETURN options (SUBSCRIBED, CHILDREN,
    SPECIAL-USE, STATUS); ``status_items`` the items of RETURN (STATUS (...)) or None.
    ``extended`` is True when any extended syntax was used (then answer with extended rules).
    """

    reference: str
    patterns: tuple[str, ...]
    selection: tuple[str, ...] = ()
    return_options: tuple[str, ...] = ()
    status_items: tuple[str, ...] | None = None
    extended: bool = False
    NAME: ClassVar[str] = "LIST"


@dataclass(frozen=True, slots=True)
class Lsub(Command):
    """LSUB reference pattern."""

    reference: str
    pattern: str
    NAME: ClassVar[str] = "LSUB"


@dataclass(frozen=True, slots=True)
class Status(Command):
    """STATUS mailbox (items); items upper-case, validated against :data:`STATUS_ITEMS`."""

    mailbox: str
    items: tuple[str, ...]
    NAME: ClassVar[str] = "STATUS"


@dataclass(frozen=True, slots=True)
class AppendMessage:
    """One message of an APPEND (several with MULTIAPPEND).

    ``flags``: canonical system flags / keywords. ``binary``: sent as literal8 (``~{n}``).
    ``utf8``: sent as ``UTF8 (~{n})`` (RFC 6855).
    """

    data: bytes
    flags: tuple[str, ...] = ()
    internal_date: datetime | None = None
    binary: bool = False
    utf8: bool = False

    def __repr__(self) -> str:
        return (
            f"AppendMessage(<{len(self.data)} octets>, flags={self.flags!r}, "
            f"internal_date={self.internal_date!r}, binary={self.binary}, utf8={self.utf8})"
        )


@dataclass(frozen=True, slots=True)
class Append(Command):
    """APPEND mailbox message [message ...]."""

    mailbox: str
    messages: tuple[AppendMessage, ...]
    NAME: ClassVar[str] = "APPEND"


@dataclass(frozen=True, slots=True)
class Unauthenticate(Command):
    """UNAUTHENTICATE (RFC 8437)."""

    NAME: ClassVar[str] = "UNAUTHENTICATE"


@dataclass(frozen=True, slots=True)
class Check(Command):
    """CHECK."""

    NAME: ClassVar[str] = "CHECK"


@dataclass(frozen=True, slots=True)
class Close(Command):
    """CLOSE."""

    NAME: ClassVar[str] = "CLOSE"


@dataclass(frozen=True, slots=True)
class Unselect(Command):
    """UNSELECT."""

    NAME: ClassVar[str] = "UNSELECT"


@dataclass(frozen=True, slots=True)
class Expunge(Command):
    """EXPUNGE, or UID EXPUNGE when ``uids`` is set."""

    uids: SequenceSet | None = None

    @property
    def name(self) -> str:
        """``EXPUNGE`` or ``UID EXPUNGE``."""
        return "EXPUNGE" if self.uids is None else "UID EXPUNGE"


@dataclass(frozen=True, slots=True)
class _UidCommand(Command):
    @property
    def name(self) -> str:
        """``X`` or ``UID X``."""
        return ("UID " if getattr(self, "uid", False) else "") + self.NAME


@dataclass(frozen=True, slots=True)
class Search(_UidCommand):
    """[UID] SEARCH [RETURN (...)] [CHARSET c] keys.

    ``return_options`` is None without RETURN (answer ``* SEARCH``), else the upper-case
    options (MIN MAX ALL COUNT SAVE); an empty tuple means ``RETURN ()`` = ALL, as ESEARCH.
    """

    criteria: SearchKey
    charset: str | None = None
    return_options: tuple[str, ...] | None = None
    uid: bool = False
    NAME: ClassVar[str] = "SEARCH"


@dataclass(frozen=True, slots=True)
class Sort(_UidCommand):
    """[UID] SORT [RETURN (...)] (criteria) charset keys (RFC 5256, ESORT RFC 5267, RFC 5957).

    ``keys`` are (key, reverse) pairs, key upper-case (ARRIVAL, CC, DATE, FROM, SIZE, SUBJECT, TO,
    DISPLAYFROM, DISPLAYTO); ``return_options`` as for :class:`Search` (None: ``* SORT``).
    """

    keys: tuple[tuple[str, bool], ...]
    criteria: SearchKey
    charset: str
    return_options: tuple[str, ...] | None = None
    uid: bool = False
    NAME: ClassVar[str] = "SORT"


@dataclass(frozen=True, slots=True)
class Thread(_UidCommand):
    """[UID] THREAD algorithm charset keys (RFC 5256; REFS is RFC 9051's sibling draft's)."""

    algorithm: str
    criteria: SearchKey
    charset: str
    uid: bool = False
    NAME: ClassVar[str] = "THREAD"


@dataclass(frozen=True, slots=True)
class Fetch(_UidCommand):
    """[UID] FETCH set attributes [modifiers]; macros already expanded.

    ``modifiers`` is the raw list; ``changedsince``/``vanished`` are parsed from it (CONDSTORE,
    QRESYNC). For UID FETCH the session adds UID to the response itself.
    """

    sequence_set: SequenceSet
    attributes: tuple[FetchAtt, ...]
    modifiers: tuple[RawValue, ...] = ()
    changedsince: int | None = None
    vanished: bool = False
    uid: bool = False
    NAME: ClassVar[str] = "FETCH"


StoreMode = typing.Literal["replace", "add", "remove"]
_STORE_MODES: dict[bytes, StoreMode] = {b"": "replace", b"+": "add", b"-": "remove"}


@dataclass(frozen=True, slots=True)
class Store(_UidCommand):
    """[UID] STORE set [(UNCHANGEDSINCE n)] (+|-)FLAGS[.SILENT] flags.

    ``mode``: ``replace`` (FLAGS), ``add`` (+FLAGS), ``remove`` (-FLAGS).
    """

    sequence_set: SequenceSet
    mode: StoreMode
    flags: tuple[str, ...]
    silent: bool = False
    unchangedsince: int | None = None
    modifiers: tuple[RawValue, ...] = ()
    uid: bool = False
    NAME: ClassVar[str] = "STORE"


@dataclass(frozen=True, slots=True)
class Copy(_UidCommand):
    """[UID] COPY set mailbox."""

    sequence_set: SequenceSet
    mailbox: str
    uid: bool = False
    NAME: ClassVar[str] = "COPY"


@dataclass(frozen=True, slots=True)
class Move(_UidCommand):
    """[UID] MOVE set mailbox."""

    sequence_set: SequenceSet
    mailbox: str
    uid: bool = False
    NAME: ClassVar[str] = "MOVE"


@dataclass(frozen=True, slots=True)
class Idle(Command):
    """IDLE; the session then waits for a line where :func:`is_idle_done` is true."""

    NAME: ClassVar[str] = "IDLE"


@dataclass(frozen=True, slots=True)
class Namespace(Command):
    """NAMESPACE."""

    NAME: ClassVar[str] = "NAMESPACE"


@dataclass(frozen=True, slots=True)
class Id(Command):
    """ID (RFC 2971): ``params`` is None for NIL, else (field, value-or-None) pairs."""

    params: tuple[tuple[str, str | None], ...] | None
    NAME: ClassVar[str] = "ID"


@dataclass(frozen=True, slots=True)
class Enable(Command):
    """ENABLE cap ...; capability names upper-cased."""

    capabilities: tuple[str, ...]
    NAME: ClassVar[str] = "ENABLE"


@dataclass(frozen=True, slots=True)
class GetQuota(Command):
    """GETQUOTA root."""

    root: str
    NAME: ClassVar[str] = "GETQUOTA"


@dataclass(frozen=True, slots=True)
class GetQuotaRoot(Command):
    """GETQUOTAROOT mailbox."""

    mailbox: str
    NAME: ClassVar[str] = "GETQUOTAROOT"


@dataclass(frozen=True, slots=True)
class SetQuota(Command):
    """SETQUOTA root ((resource limit) ...); resource names upper-cased."""

    root: str
    resources: tuple[tuple[str, int], ...]
    NAME: ClassVar[str] = "SETQUOTA"


# -- helpers ---------------------------------------------------------------------------------

SYSTEM_FLAGS: dict[str, str] = {
    name.upper(): name
    for name in ("\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft", "\\Recent")
}
SPECIAL_USE: dict[str, str] = {
    name.upper(): name
    for name in (
        "\\All", "\\Archive", "\\Drafts", "\\Flagged", "\\Junk", "\\Sent", "\\Trash",
        "\\Important",
    )
}  # fmt: skip
STATUS_ITEMS = frozenset(
    {
        "MESSAGES", "RECENT", "UIDNEXT", "UIDVALIDITY", "UNSEEN", "DELETED", "SIZE",
        "HIGHESTMODSEQ", "APPENDLIMIT", "MAILBOXID",
    }
)  # fmt: skip
LIST_SELECTION = frozenset({"SUBSCRIBED", "REMOTE", "RECURSIVEMATCH", "SPECIAL-USE"})
LIST_RETURN = frozenset({"SUBSCRIBED", "CHILDREN", "SPECIAL-USE", "STATUS"})
SEARCH_RETURN = frozenset({"MIN", "MAX", "ALL", "COUNT", "SAVE"})


def _flag(reader: Reader) -> str:
    if reader.peek() == 0x5C:
        reader.pos += 1
        name = reader.atom("flag").decode("ascii")
        return SYSTEM_FLAGS.get("\\" + name.upper(), "\\" + name)
    return reader.atom("flag").decode("ascii")


def _flag_list(reader: Reader) -> tuple[str, ...]:
    reader.open_paren()
    flags: list[str] = []
    if reader.peek() == 0x29:
        reader.pos += 1
        return ()
    while True:
        flags.append(_flag(reader))
        if reader.peek() == 0x29:
            reader.pos += 1
            return tuple(flags)
        reader.sp()


def _sequence_set(reader: Reader) -> SequenceSet:
    return parse_sequence_set(reader.seq_token(), max_length=reader.limits.max_line_length)


def _modseq(value: RawValue, *, zero: bool) -> int:
    if not isinstance(value, str):
        raise ParseError("Expected mod-sequence value")
    number = check_number(value.encode("ascii"), MAX_NUMBER64, "mod-sequence")
    if number == 0 and not zero:
        raise ParseError("Invalid mod-sequence value")
    return number


def _pairs(params: tuple[RawValue, ...], known: dict[str, bool]) -> list[tuple[str, RawValue]]:
    """Split ``(NAME [value] NAME [value] ...)``; ``known`` says which names take a value."""
    out: list[tuple[str, RawValue]] = []
    index = 0
    while index < len(params):
        item = params[index]
        if not isinstance(item, str) or item.upper() not in known:
            raise ParseError("Unknown parameter")
        name = item.upper()
        value: RawValue = None
        if known[name]:
            if index + 1 >= len(params):
                raise ParseError(f"{name} needs a value")
            value = params[index + 1]
            index += 1
        out.append((name, value))
        index += 1
    return out


def _utf8(reader: Reader, raw: bytes, what: str) -> str:
    return reader.text_utf8(raw, what)


# -- per-command parsers (reader positioned after the command name) --------------------------

Parser = Callable[[Reader, str], Command]


def _no_args(cls: type[Command]) -> Parser:
    def parse(reader: Reader, tag: str) -> Command:
        return cls(tag)

    return parse


def _p_authenticate(reader: Reader, tag: str) -> Command:
    reader.sp()
    mechanism = reader.atom_upper("mechanism")
    initial = None
    if reader.maybe_sp():
        initial = _base64(reader.atom("initial response"))
    return Authenticate(tag, mechanism, initial)


def _p_login(reader: Reader, tag: str) -> Command:
    reader.sp()
    user = _utf8(reader, reader.astring("user name"), "user name")
    reader.sp()
    password = _utf8(reader, reader.astring("password"), "password")
    return Login(tag, user, password)


def _qresync(value: RawValue) -> QResync:
    if not isinstance(value, tuple) or not 2 <= len(value) <= 4:
        raise ParseError("Invalid QRESYNC parameters")
    uidvalidity = _modseq(value[0], zero=False)
    if uidvalidity > 2**32 - 1:
        raise ParseError("Invalid UIDVALIDITY")
    modseq = _modseq(value[1], zero=True)
    known_uids = None
    seq_match = None
    rest = list(value[2:])
    if rest and isinstance(first := rest[0], str):
        known_uids = parse_sequence_set(first, allow_saved=False)
        rest.pop(0)
    if rest:
        match = rest.pop(0)
        if (
            rest
            or not isinstance(match, tuple)
            or len(match) != 2
            or not all(isinstance(item, str) for item in match)
        ):
            raise ParseError("Invalid QRESYNC parameters")
        seqs = parse_sequence_set(str(match[0]), allow_saved=False)
        uids = parse_sequence_set(str(match[1]), allow_saved=False)
        seq_match = (seqs, uids)
    return QResync(uidvalidity, modseq, known_uids, seq_match)


def _select(readonly: bool) -> Parser:
    def parse(reader: Reader, tag: str) -> Command:
        reader.sp()
        mailbox = reader.mailbox()
        params: tuple[RawValue, ...] = ()
        condstore = False
        qresync = None
        if reader.maybe_sp():
            params = reader.raw_list()
            for name, value in _pairs(params, {"CONDSTORE": False, "QRESYNC": True}):
                if name == "CONDSTORE":
                    condstore = True
                else:
                    qresync = _qresync(value)
        return Select(tag, mailbox, params, readonly, condstore, qresync)

    return parse


def _p_create(reader: Reader, tag: str) -> Command:
    reader.sp()
    mailbox = reader.mailbox()
    params: tuple[RawValue, ...] = ()
    special_use: list[str] = []
    if reader.maybe_sp():
        params = reader.raw_list()
        for _name, value in _pairs(params, {"USE": True}):
            if not isinstance(value, tuple):
                raise ParseError("USE needs a list")
            for flag in value:
                if not isinstance(flag, str) or not flag.startswith("\\"):
                    raise ParseError("Invalid special-use attribute")
                special_use.append(SPECIAL_USE.get(flag.upper(), flag))
    return Create(tag, mailbox, tuple(special_use), params)


def _one_mailbox(cls: type[Delete | Subscribe | Unsubscribe | GetQuotaRoot]) -> Parser:
    def parse(reader: Reader, tag: str) -> Command:
        reader.sp()
        return cls(tag, reader.mailbox())

    return parse


def _p_rename(reader: Reader, tag: str) -> Command:
    reader.sp()
    old = reader.mailbox()
    reader.sp()
    return Rename(tag, old, reader.mailbox())


def _status_items(reader: Reader) -> tuple[str, ...]:
    items = reader.atom_list(allow_empty=False)
    for item in items:
        if item not in STATUS_ITEMS:
            raise ParseError("Unknown STATUS item")
    return tuple(items)


def _p_list(reader: Reader, tag: str) -> Command:
    reader.sp()
    extended = False
    selection: list[str] = []
    if reader.peek() == 0x28:
        extended = True
        selection = reader.atom_list()
        for option in selection:
            if option not in LIST_SELECTION:
                raise ParseError("Unknown LIST selection option")
        if "RECURSIVEMATCH" in selection and set(selection) <= {"RECURSIVEMATCH", "REMOTE"}:  # RFC 5258 3.1
            raise ParseError("RECURSIVEMATCH needs another selection option")
        reader.sp()
    reference = reader.mailbox(pattern=True)
    reader.sp()
    patterns: list[str] = []
    if reader.peek() == 0x28:
        extended = True
        reader.pos += 1
        while True:
            patterns.append(reader.mailbox(pattern=True))
            if reader.peek() == 0x29:
                reader.pos += 1
                break
            reader.sp()
    else:
        patterns.append(reader.mailbox(pattern=True))
    return_options: list[str] = []
    status_items = None
    if reader.maybe_sp():
        if not reader.peek_word(b"RETURN"):
            raise ParseError("Expected RETURN")
        extended = True
        reader.pos += 6
        reader.sp()
        reader.open_paren()
        while reader.peek() != 0x29:
            if return_options:
                reader.sp()
            option = reader.atom_upper("return option")
            if option not in LIST_RETURN:
                raise ParseError("Unknown LIST return option")
            if option == "STATUS":
                reader.sp()
                status_items = _status_items(reader)
            return_options.append(option)
        reader.pos += 1
    return List(
        tag,
        reference,
        tuple(patterns),
        tuple(selection),
        tuple(return_options),
        status_items,
        extended,
    )


def _p_lsub(reader: Reader, tag: str) -> Command:
    reader.sp()
    reference = reader.mailbox(pattern=True)
    reader.sp()
    return Lsub(tag, reference, reader.mailbox(pattern=True))


def _p_status(reader: Reader, tag: str) -> Command:
    reader.sp()
    mailbox = reader.mailbox()
    reader.sp()
    return Status(tag, mailbox, _status_items(reader))


def _p_append(reader: Reader, tag: str) -> Command:
    reader.sp()
    mailbox = reader.mailbox()
    messages: list[AppendMessage] = []
    max_size = reader.limits.max_append_size
    while True:
        if len(messages) >= reader.limits.max_append_messages:
            raise ParseError("Too many messages in APPEND")
        reader.sp()
        flags: tuple[str, ...] = ()
        internal_date = None
        if reader.peek() == 0x28:
            flags = _flag_list(reader)
            reader.sp()
        if reader.peek() == 0x22:
            parsed = match_date_time(reader.data, reader.pos)
            if parsed is None:
                raise ParseError("Invalid date-time")
            internal_date, reader.pos = parsed
            reader.sp()
        binary = utf8 = False
        if reader.peek_word(b"UTF8"):
            reader.pos += 4
            reader.sp()
            reader.open_paren()
            if not reader.is_literal8():
                raise ParseError("UTF8 needs a literal8")
            data = reader.literal(binary=True, max_size=max_size)
            reader.close_paren()
            utf8 = True
        elif reader.is_literal8():
            data = reader.literal(binary=True, max_size=max_size)
            binary = True
        elif reader.peek() == 0x7B:
            data = reader.literal(max_size=max_size)
        else:
            raise ParseError("Expected message literal")
        messages.append(AppendMessage(data, flags, internal_date, binary, utf8))
        if reader.at_end():
            return Append(tag, mailbox, tuple(messages))


def _search(uid: bool) -> Parser:
    def parse(reader: Reader, tag: str) -> Command:
        reader.sp()
        return_options = None
        if reader.peek_word(b"RETURN"):
            reader.pos += 6
            reader.sp()
            options = reader.atom_list()
            for option in options:
                if option not in SEARCH_RETURN:
                    raise ParseError("Unknown SEARCH return option")
            return_options = tuple(options)
            reader.sp()
        charset = None
        if reader.peek_word(b"CHARSET"):
            reader.pos += 7
            reader.sp()
            raw = reader.astring("charset")
            if any(b < 0x21 or b > 0x7E for b in raw):
                raise ParseError("Invalid charset name")
            charset = raw.decode("ascii")
            reader.sp()
        criteria = parse_search_program(reader, charset)
        return Search(tag, criteria, charset, return_options, uid)

    return parse


SORT_KEYS = frozenset({"ARRIVAL", "CC", "DATE", "FROM", "SIZE", "SUBJECT", "TO", "DISPLAYFROM", "DISPLAYTO"})
SORT_RETURN = frozenset({"MIN", "MAX", "ALL", "COUNT"})
THREAD_ALGORITHMS = frozenset({"ORDEREDSUBJECT", "REFERENCES", "REFS"})


def _return_options(reader: Reader, allowed: frozenset[str], what: str) -> tuple[str, ...] | None:
    if not reader.peek_word(b"RETURN"):
        return None
    reader.pos += 6
    reader.sp()
    options = reader.atom_list()
    for option in options:
        if option not in allowed:
            raise ParseError(f"Unknown {what} return option")
    reader.sp()
    return tuple(options)


def _charset(reader: Reader) -> str:
    raw = reader.astring("charset")
    if any(b < 0x21 or b > 0x7E for b in raw):
        raise ParseError("Invalid charset name")
    return raw.decode("ascii")


def _sort(uid: bool) -> Parser:
    def parse(reader: Reader, tag: str) -> Command:
        reader.sp()
        return_options = _return_options(reader, SORT_RETURN, "SORT")
        words = reader.atom_list(allow_empty=False)
        keys: list[tuple[str, bool]] = []
        reverse = False
        for word in words:
            if word == "REVERSE" and not reverse:
                reverse = True
                continue
            if word not in SORT_KEYS:
                raise ParseError("Unknown sort criterion")
            keys.append((word, reverse))
            reverse = False
        if reverse:
            raise ParseError("REVERSE must be followed by a sort key")
        reader.sp()
        charset = _charset(reader)
        reader.sp()
        criteria = parse_search_program(reader, charset)
        return Sort(tag, tuple(keys), criteria, charset, return_options, uid)

    return parse


def _thread(uid: bool) -> Parser:
    def parse(reader: Reader, tag: str) -> Command:
        reader.sp()
        algorithm = reader.atom_upper()
        if algorithm not in THREAD_ALGORITHMS:
            raise ParseError("Unknown threading algorithm")
        reader.sp()
        charset = _charset(reader)
        reader.sp()
        criteria = parse_search_program(reader, charset)
        return Thread(tag, algorithm, criteria, charset, uid)

    return parse


def _fetch(uid: bool) -> Parser:
    def parse(reader: Reader, tag: str) -> Command:
        reader.sp()
        sequence_set = _sequence_set(reader)
        reader.sp()
        attributes = parse_fetch_atts(reader)
        modifiers: tuple[RawValue, ...] = ()
        changedsince = None
        vanished = False
        if reader.maybe_sp():
            modifiers = reader.raw_list()
            for name, value in _pairs(modifiers, {"CHANGEDSINCE": True, "VANISHED": False}):
                if name == "CHANGEDSINCE":
                    changedsince = _modseq(value, zero=False)
                else:
                    vanished = True
            if vanished and (not uid or changedsince is None):
                raise ParseError("VANISHED needs UID FETCH and CHANGEDSINCE")
        return Fetch(tag, sequence_set, attributes, modifiers, changedsince, vanished, uid)

    return parse


_STORE_ITEM_RE = re.compile(rb"([+-]?)FLAGS(\.SILENT)?(?= )", re.IGNORECASE)


def _store(uid: bool) -> Parser:
    def parse(reader: Reader, tag: str) -> Command:
        reader.sp()
        sequence_set = _sequence_set(reader)
        reader.sp()
        modifiers: tuple[RawValue, ...] = ()
        unchangedsince = None
        if reader.peek() == 0x28:
            modifiers = reader.raw_list()
            for _name, value in _pairs(modifiers, {"UNCHANGEDSINCE": True}):
                unchangedsince = _modseq(value, zero=True)
            reader.sp()
        match = _STORE_ITEM_RE.match(reader.data, reader.pos)
        if match is None:
            raise ParseError("Expected FLAGS, +FLAGS or -FLAGS")
        reader.pos = match.end()
        mode = _STORE_MODES[match.group(1)]
        silent = match.group(2) is not None
        reader.sp()
        if reader.peek() == 0x28:
            flags = _flag_list(reader)
        else:
            items = [_flag(reader)]
            while reader.maybe_sp():
                items.append(_flag(reader))
            flags = tuple(items)
        return Store(tag, sequence_set, mode, flags, silent, unchangedsince, modifiers, uid)

    return parse


def _copy(cls: type[Copy | Move], uid: bool) -> Parser:
    def parse(reader: Reader, tag: str) -> Command:
        reader.sp()
        sequence_set = _sequence_set(reader)
        reader.sp()
        return cls(tag, sequence_set, reader.mailbox(), uid)

    return parse


def _p_uid_expunge(reader: Reader, tag: str) -> Command:
    reader.sp()
    return Expunge(tag, _sequence_set(reader))


def _p_id(reader: Reader, tag: str) -> Command:
    reader.sp()
    if reader.peek_word(b"NIL"):
        reader.pos += 3
        return Id(tag, None)
    reader.open_paren()
    pairs: list[tuple[str, str | None]] = []
    while reader.peek() != 0x29:
        if pairs:
            reader.sp()
        key = reader.string().decode("utf-8", "replace")
        reader.sp()
        raw = reader.nstring()
        pairs.append((key, None if raw is None else raw.decode("utf-8", "replace")))
    reader.pos += 1
    return Id(tag, tuple(pairs))


def _p_enable(reader: Reader, tag: str) -> Command:
    reader.sp()
    capabilities = [reader.atom_upper("capability")]
    while reader.maybe_sp():
        capabilities.append(reader.atom_upper("capability"))
    return Enable(tag, tuple(capabilities))


def _p_getquota(reader: Reader, tag: str) -> Command:
    reader.sp()
    return GetQuota(tag, _utf8(reader, reader.astring("quota root"), "quota root"))


def _p_setquota(reader: Reader, tag: str) -> Command:
    reader.sp()
    root = _utf8(reader, reader.astring("quota root"), "quota root")
    reader.sp()
    reader.open_paren()
    resources: list[tuple[str, int]] = []
    while reader.peek() != 0x29:
        if resources:
            reader.sp()
        name = reader.atom_upper("resource name")
        reader.sp()
        resources.append((name, reader.number(MAX_NUMBER64)))
    reader.pos += 1
    return SetQuota(tag, root, tuple(resources))


_COMMANDS: dict[str, Parser] = {
    "CAPABILITY": _no_args(Capability),
    "NOOP": _no_args(Noop),
    "LOGOUT": _no_args(Logout),
    "STARTTLS": _no_args(StartTls),
    "AUTHENTICATE": _p_authenticate,
    "LOGIN": _p_login,
    "SELECT": _select(False),
    "EXAMINE": _select(True),
    "CREATE": _p_create,
    "DELETE": _one_mailbox(Delete),
    "RENAME": _p_rename,
    "SUBSCRIBE": _one_mailbox(Subscribe),
    "UNSUBSCRIBE": _one_mailbox(Unsubscribe),
    "LIST": _p_list,
    "LSUB": _p_lsub,
    "STATUS": _p_status,
    "APPEND": _p_append,
    "CHECK": _no_args(Check),
    "UNAUTHENTICATE": _no_args(Unauthenticate),
    "CLOSE": _no_args(Close),
    "UNSELECT": _no_args(Unselect),
    "EXPUNGE": _no_args(Expunge),
    "SEARCH": _search(False),
    "SORT": _sort(False),
    "THREAD": _thread(False),
    "FETCH": _fetch(False),
    "STORE": _store(False),
    "COPY": _copy(Copy, False),
    "MOVE": _copy(Move, False),
    "IDLE": _no_args(Idle),
    "NAMESPACE": _no_args(Namespace),
    "ID": _p_id,
    "ENABLE": _p_enable,
    "GETQUOTA": _p_getquota,
    "GETQUOTAROOT": _one_mailbox(GetQuotaRoot),
    "SETQUOTA": _p_setquota,
}

_UID_COMMANDS: dict[str, Parser] = {
    "COPY": _copy(Copy, True),
    "MOVE": _copy(Move, True),
    "FETCH": _fetch(True),
    "STORE": _store(True),
    "SEARCH": _search(True),
    "SORT": _sort(True),
    "THREAD": _thread(True),
    "EXPUNGE": _p_uid_expunge,
}

#: Command names :func:`parse_command` knows (``UID x`` listed as such).
COMMAND_NAMES: frozenset[str] = frozenset(_COMMANDS) | {"UID " + name for name in _UID_COMMANDS}


def _check_framing(data: bytes, limits: Limits) -> None:
    """Walk lines and literals: every CRLF must follow a literal prefix; lines are bounded."""
    pos = 0
    length = len(data)
    while True:
        crlf = data.find(b"\r\n", pos)
        end = length if crlf < 0 else crlf
        if end - pos > limits.max_line_length:
            raise ParseError("Line too long")
        if crlf < 0:
            return
        literal = literal_at_end(data[pos:crlf])
        if literal is None:
            raise ParseError("Unexpected line break")
        pos = crlf + 2 + literal.size
        if pos > length:
            raise ParseError("Literal shorter than announced")


def parse_command(data: bytes, *, utf8: bool = False, limits: Limits = DEFAULT_LIMITS) -> Command:
    """Parse one complete command (see module docstring for the joined form).

    ``utf8``: UTF8=ACCEPT (or IMAP4rev2) is enabled, so ASCII mailbox names are taken
    literally instead of as modified UTF-7. Raises :class:`ParseError` (``tag`` set when the
    tag was readable) or its subclass :class:`BadCharset`.
    """
    reader = Reader(data, limits, utf8=utf8)
    try:
        tag = reader.tag()
    except ParseError:
        raise ParseError("Invalid tag") from None
    try:
        _check_framing(data, limits)
        reader.sp()
        name = reader.atom_upper("command name")
        if name == "UID":
            reader.sp()
            sub = reader.atom_upper("command name")
            parser = _UID_COMMANDS.get(sub)
        else:
            parser = _COMMANDS.get(name)
        if parser is None:
            raise ParseError("Unknown command")
        command = parser(reader, tag)
        reader.end()
    except ParseError as exc:
        exc.tag = tag
        raise
    return command
