"""parse_command transcripts: bytes in, typed Command out, for every supported command."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sora_plugin_imap.grammar import (
    COMMAND_NAMES,
    Append,
    AppendMessage,
    Authenticate,
    BadCharset,
    Capability,
    Check,
    Close,
    Command,
    Copy,
    Create,
    Delete,
    Enable,
    Expunge,
    Fetch,
    GetQuota,
    GetQuotaRoot,
    Id,
    Idle,
    Limits,
    List,
    Login,
    Logout,
    Lsub,
    Move,
    Namespace,
    Noop,
    ParseError,
    QResync,
    Rename,
    Search,
    Select,
    SequenceSet,
    SetQuota,
    StartTls,
    Status,
    Store,
    Subscribe,
    Unselect,
    Unsubscribe,
    parse_command,
    parse_sequence_set,
)
from sora_plugin_imap.grammar.fetch import ALL, FAST, FULL, BodySection, Flags, Section, Uid
from sora_plugin_imap.grammar.reader import UNDECODABLE
from sora_plugin_imap.grammar.search import All, And, FlagIs, SearchKey, SeqNums, TextContains


def seq(text: str) -> SequenceSet:
    return parse_sequence_set(text)


def mailbox(data: bytes, *, utf8: bool = False) -> str:
    command = parse_command(data, utf8=utf8)
    assert isinstance(command, Select)
    return command.mailbox


SIMPLE: list[tuple[bytes, Command]] = [
    (b"a CAPABILITY", Capability("a")),
    (b"a capability", Capability("a")),
    (b"a NOOP", Noop("a")),
    (b"a LOGOUT", Logout("a")),
    (b"a STARTTLS", StartTls("a")),
    (b"a CHECK", Check("a")),
    (b"a CLOSE", Close("a")),
    (b"a UNSELECT", Unselect("a")),
    (b"a EXPUNGE", Expunge("a")),
    (b"a IDLE", Idle("a")),
    (b"a NAMESPACE", Namespace("a")),
    (b"a AUTHENTICATE PLAIN", Authenticate("a", "PLAIN")),
    (b"a authenticate plain =", Authenticate("a", "PLAIN", b"")),
    (b"a AUTHENTICATE PLAIN AHUAcA==", Authenticate("a", "PLAIN", b"\x00u\x00p")),
    (b"a AUTHENTICATE SCRAM-SHA-256 biwsbj11", Authenticate("a", "SCRAM-SHA-256", b"n,,n=u")),
    (b"a LOGIN joe secret", Login("a", "joe", "secret")),
    (b'a LOGIN "joe@x.org" "se\\"c\\\\ret"', Login("a", "joe@x.org", 'se"c\\ret')),
    (b"a LOGIN {3}\r\njoe {2+}\r\npw", Login("a", "joe", "pw")),
    (b'a LOGIN "" ""', Login("a", "", "")),
    (b'a LOGIN "j\xc3\xb6" pw]', Login("a", "j\u00f6", "pw]")),
    (b"a SELECT INBOX", Select("a", "INBOX")),
    (b"a select inbox", Select("a", "inbox")),
    (b"a EXAMINE Drafts", Select("a", "Drafts", readonly=True)),
    (
        b"a SELECT INBOX (CONDSTORE)",
        Select("a", "INBOX", ("CONDSTORE",), condstore=True),
    ),
    (
        b"a SELECT INBOX (QRESYNC (67890007 20050715194045000 1:*,5 (1:3 5:7)))",
        Select(
            "a",
            "INBOX",
            ("QRESYNC", ("67890007", "20050715194045000", "1:*,5", ("1:3", "5:7"))),
            qresync=QResync(67890007, 20050715194045000, seq("1:*,5"), (seq("1:3"), seq("5:7"))),
        ),
    ),
    (
        b"a SELECT INBOX (QRESYNC (1 0 (1 2)))",
        Select(
            "a",
            "INBOX",
            ("QRESYNC", ("1", "0", ("1", "2"))),
            qresync=QResync(1, 0, None, (seq("1"), seq("2"))),
        ),
    ),
    (b"a CREATE Work/Projects", Create("a", "Work/Projects")),
    (
        b"a CREATE Sent (USE (\\Sent \\x-custom))",
        Create("a", "Sent", ("\\Sent", "\\x-custom"), ("USE", ("\\Sent", "\\x-custom"))),
    ),
    (b"a DELETE foo", Delete("a", "foo")),
    (b'a RENAME "old name" new', Rename("a", "old name", "new")),
    (b"a SUBSCRIBE foo", Subscribe("a", "foo")),
    (b"a UNSUBSCRIBE foo", Unsubscribe("a", "foo")),
    (b'a LIST "" *', List("a", "", ("*",))),
    (b"a LIST ~/Mail %/x*", List("a", "~/Mail", ("%/x*",))),
    (b'a LIST "" "a b]"', List("a", "", ("a b]",))),
    (b'a LIST "" {3}\r\na%b', List("a", "", ("a%b",))),
    (
        b'a LIST (SUBSCRIBED RECURSIVEMATCH) "" (INBOX "Other*" %)',
        List("a", "", ("INBOX", "Other*", "%"), ("SUBSCRIBED", "RECURSIVEMATCH"), extended=True),
    ),
    (b'a LIST () "" %', List("a", "", ("%",), extended=True)),
    (
        b'a LIST "" % RETURN (SUBSCRIBED CHILDREN SPECIAL-USE STATUS (MESSAGES UNSEEN SIZE))',
        List(
            "a",
            "",
            ("%",),
            return_options=("SUBSCRIBED", "CHILDREN", "SPECIAL-USE", "STATUS"),
            status_items=("MESSAGES", "UNSEEN", "SIZE"),
            extended=True,
        ),
    ),
    (b'a LIST "" % RETURN ()', List("a", "", ("%",), extended=True)),
    (b'a LSUB "" *', Lsub("a", "", "*")),
    (
        b"a STATUS INBOX (MESSAGES UIDNEXT uidvalidity UNSEEN RECENT HIGHESTMODSEQ)",
        Status(
            "a",
            "INBOX",
            ("MESSAGES", "UIDNEXT", "UIDVALIDITY", "UNSEEN", "RECENT", "HIGHESTMODSEQ"),
        ),
    ),
    (b"a UID EXPUNGE 3:5,9", Expunge("a", seq("3:5,9"))),
    (b"a COPY 1:3 Trash", Copy("a", seq("1:3"), "Trash")),
    (b"a UID COPY 7 Trash", Copy("a", seq("7"), "Trash", uid=True)),
    (b'a MOVE $ "Old Mail"', Move("a", seq("$"), "Old Mail")),
    (b"a uid move 1:* Junk", Move("a", seq("1:*"), "Junk", uid=True)),
    (b"a ID NIL", Id("a", None)),
    (b"a ID ()", Id("a", ())),
    (
        b'a ID ("name" "Thunderbird" "version" NIL)',
        Id("a", (("name", "Thunderbird"), ("version", None))),
    ),
    (b"a ENABLE CONDSTORE", Enable("a", ("CONDSTORE",))),
    (b"a ENABLE utf8=accept qresync", Enable("a", ("UTF8=ACCEPT", "QRESYNC"))),
    (b'a GETQUOTA ""', GetQuota("a", "")),
    (b"a GETQUOTAROOT INBOX", GetQuotaRoot("a", "INBOX")),
    (
        b'a SETQUOTA "" (STORAGE 512 MESSAGE 10)',
        SetQuota("a", "", (("STORAGE", 512), ("MESSAGE", 10))),
    ),
    (b'a SETQUOTA "" ()', SetQuota("a", "", ())),
]


@pytest.mark.parametrize(
    ("data", "expected"), SIMPLE, ids=[d[:40].decode("latin-1") for d, _ in SIMPLE]
)
def test_commands(data: bytes, expected: Command) -> None:
    assert parse_command(data) == expected


def test_names() -> None:
    assert parse_command(b"a EXAMINE x").name == "EXAMINE"
    assert parse_command(b"a SELECT x").name == "SELECT"
    assert parse_command(b"a UID FETCH 1 UID").name == "UID FETCH"
    assert parse_command(b"a FETCH 1 UID").name == "FETCH"
    assert parse_command(b"a UID EXPUNGE 1").name == "UID EXPUNGE"
    assert parse_command(b"a noop").name == "NOOP"
    assert {"UID FETCH", "IDLE", "APPEND", "LOGIN"} <= COMMAND_NAMES


def test_login_repr_hides_password() -> None:
    assert "secret" not in repr(parse_command(b"a LOGIN joe secret"))


# -- mailbox names -----------------------------------------------------------------------------


def test_mailbox_modified_utf7_and_raw_utf8() -> None:
    assert mailbox(b"a SELECT &ZeVnLIqe-") == "\u65e5\u672c\u8a9e"
    assert mailbox(b'a SELECT "Caf&AOk-"') == "Caf\u00e9"
    assert mailbox(b"a SELECT Tom&-Jerry") == "Tom&Jerry"
    assert mailbox(b'a SELECT "Caf\xc3\xa9"') == "Caf\u00e9"
    assert mailbox(b"a SELECT {5}\r\nCaf\xc3\xa9") == "Caf\u00e9"
    # With UTF8=ACCEPT enabled an ASCII "&" is just a character.
    assert mailbox(b"a SELECT Tom&Jerry", utf8=True) == "Tom&Jerry"
    assert mailbox(b"a SELECT Caf&AOk-", utf8=True) == "Caf&AOk-"


@pytest.mark.parametrize(
    "data",
    [
        b"a SELECT Tom&Jerry",  # unterminated base64 run
        b"a SELECT &AGE-",  # encodes printable ASCII
        b"a SELECT &2D0-",  # lone UTF-16 surrogate
    ],
)
def test_invalid_modified_utf7_names_no_mailbox(data: bytes) -> None:
    """A valid astring that is not modified UTF-7 parses, as a name no mailbox can have."""
    name = mailbox(data)
    assert name.startswith(UNDECODABLE)
    assert name[1:] == data.split(b" ", 2)[2].decode()


@pytest.mark.parametrize(
    "data",
    [
        b'a SELECT "Caf\xe9"',  # not UTF-8
        b"a SELECT {3}\r\na\x00b",  # NUL in name
        b"a SELECT {3}\r\na\tb",  # control character
        b"a SELECT \xc3\xa9",  # 8-bit atom
    ],
)
def test_bad_mailbox_names(data: bytes) -> None:
    with pytest.raises(ParseError) as info:
        parse_command(data)
    assert info.value.tag == "a"


# -- APPEND ------------------------------------------------------------------------------------


def test_append_forms() -> None:
    assert parse_command(b"a APPEND INBOX {5}\r\nhello") == Append(
        "a", "INBOX", (AppendMessage(b"hello"),)
    )
    cmd = parse_command(
        b'a APPEND Sent (\\SEEN $Forwarded) " 7-Feb-1994 21:52:25 -0800" {3+}\r\nabc'
    )
    assert isinstance(cmd, Append)
    (msg,) = cmd.messages
    assert msg.flags == ("\\Seen", "$Forwarded")
    assert msg.internal_date == datetime(
        1994, 2, 7, 21, 52, 25, tzinfo=timezone(timedelta(hours=-8))
    )
    assert msg.data == b"abc"
    cmd = parse_command(b'a APPEND x "01-Jan-2025 00:00:00 +0000" {0}\r\n')
    assert isinstance(cmd, Append)
    assert cmd.messages[0] == AppendMessage(b"", (), datetime(2025, 1, 1, tzinfo=UTC))
    assert parse_command(b"a APPEND x () {1}\r\nz") == Append("a", "x", (AppendMessage(b"z"),))


def test_multiappend_binary_and_utf8() -> None:
    data = (
        b"a APPEND INBOX (\\Draft) {4}\r\n\r\n\r\n ~{3}\r\n\x00\x01\x02"
        b' "1-Jan-2020 10:00:00 +0100" UTF8 (~{2}\r\n\xc3\xa9)'
    )
    cmd = parse_command(data)
    assert isinstance(cmd, Append)
    assert [m.data for m in cmd.messages] == [b"\r\n\r\n", b"\x00\x01\x02", b"\xc3\xa9"]
    assert [m.binary for m in cmd.messages] == [False, True, False]
    assert [m.utf8 for m in cmd.messages] == [False, False, True]
    assert cmd.messages[0].flags == ("\\Draft",)
    assert cmd.messages[2].internal_date is not None


@pytest.mark.parametrize(
    "data",
    [
        b"a APPEND INBOX",
        b"a APPEND INBOX hello",
        b'a APPEND INBOX "hello"',
        b"a APPEND INBOX (\\Seen {1}\r\nx",
        b'a APPEND INBOX "32-Jan-2020 10:00:00 +0000" {1}\r\nx',
        b'a APPEND INBOX "01-Foo-2020 10:00:00 +0000" {1}\r\nx',
        b'a APPEND INBOX "01-Jan-2020 25:00:00 +0000" {1}\r\nx',
        b'a APPEND INBOX "01-Jan-2020 10:00:00 +2400" {1}\r\nx',
        b'a APPEND INBOX "01-Jan-2020 10:00:00" {1}\r\nx',
        b"a APPEND INBOX {1}\r\nx ",
        b"a APPEND INBOX {1}\r\nx junk",
        b"a APPEND INBOX (\\*) {1}\r\nx",
        b"a APPEND INBOX UTF8 ({1}\r\nx)",
        b"a APPEND INBOX {5}\r\nab",
    ],
)
def test_append_errors(data: bytes) -> None:
    with pytest.raises(ParseError) as info:
        parse_command(data)
    assert info.value.tag == "a"


def test_append_limits() -> None:
    limits = Limits(max_append_size=4, max_literal_size=2, max_append_messages=2)
    assert parse_command(b"a APPEND x {4}\r\nabcd", limits=limits).name == "APPEND"
    with pytest.raises(ParseError, match="too large"):
        parse_command(b"a APPEND x {5}\r\nabcde", limits=limits)
    with pytest.raises(ParseError, match="too large"):
        parse_command(b"a APPEND {3}\r\nabc {1}\r\nx", limits=limits)
    with pytest.raises(ParseError, match="Too many"):
        parse_command(b"a APPEND x {1}\r\na {1}\r\nb {1}\r\nc", limits=limits)


# -- FETCH / STORE / SEARCH --------------------------------------------------------------------


def test_fetch_forms() -> None:
    assert parse_command(b"a FETCH 1:* ALL") == Fetch("a", seq("1:*"), ALL)
    assert parse_command(b"a FETCH 1 fast") == Fetch("a", seq("1"), FAST)
    assert parse_command(b"a FETCH 1 FULL") == Fetch("a", seq("1"), FULL)
    assert parse_command(b"a FETCH 2,4 FLAGS") == Fetch("a", seq("2,4"), (Flags(),))
    assert parse_command(b"a UID FETCH 1:* (UID FLAGS)") == Fetch(
        "a", seq("1:*"), (Uid(), Flags()), uid=True
    )
    assert parse_command(b"a FETCH 1 BODY.PEEK[]") == Fetch(
        "a", seq("1"), (BodySection(Section(), None, True),)
    )
    cmd = parse_command(b"a UID FETCH 1:* (FLAGS) (CHANGEDSINCE 12345 VANISHED)")
    assert isinstance(cmd, Fetch)
    assert (cmd.changedsince, cmd.vanished) == (12345, True)
    assert cmd.modifiers == ("CHANGEDSINCE", "12345", "VANISHED")
    cmd = parse_command(b"a FETCH 1 FLAGS (changedsince 1)")
    assert isinstance(cmd, Fetch)
    assert cmd.changedsince == 1


@pytest.mark.parametrize(
    "data",
    [
        b"a FETCH 1",
        b"a FETCH 1 ()",
        b"a FETCH 1 (FLAGS",
        b"a FETCH 1 (ALL)",
        b"a FETCH 0 FLAGS",
        b"a FETCH 1 FLAGS (CHANGEDSINCE 0)",
        b"a FETCH 1 FLAGS (CHANGEDSINCE)",
        b"a FETCH 1 FLAGS (CHANGEDSINCE 1 VANISHED)",
        b"a UID FETCH 1 FLAGS (VANISHED)",
        b"a FETCH 1 FLAGS (FOO)",
        b"a FETCH 1 FLAGS FLAGS",
        b"a FETCH * BODY[",
        b"a FETCH 1:2:3 FLAGS",
    ],
)
def test_fetch_errors(data: bytes) -> None:
    with pytest.raises(ParseError):
        parse_command(data)


@pytest.mark.parametrize(
    ("data", "mode", "silent", "flags", "unchangedsince"),
    [
        (b"a STORE 1 FLAGS (\\Seen)", "replace", False, ("\\Seen",), None),
        (b"a STORE 1 FLAGS ()", "replace", False, (), None),
        (b"a STORE 1 +FLAGS \\Deleted", "add", False, ("\\Deleted",), None),
        (b"a STORE 1 -flags.silent (\\seen foo)", "remove", True, ("\\Seen", "foo"), None),
        (b"a STORE 1 +FLAGS.SILENT a b \\Flagged", "add", True, ("a", "b", "\\Flagged"), None),
        (b"a STORE 1 (UNCHANGEDSINCE 0) FLAGS (x)", "replace", False, ("x",), 0),
        (b"a STORE 1 (UNCHANGEDSINCE 320162338) -FLAGS x", "remove", False, ("x",), 320162338),
    ],
)
def test_store_forms(
    data: bytes, mode: str, silent: bool, flags: tuple[str, ...], unchangedsince: int | None
) -> None:
    cmd = parse_command(data)
    assert isinstance(cmd, Store)
    assert (cmd.mode, cmd.silent, cmd.flags, cmd.unchangedsince) == (
        mode,
        silent,
        flags,
        unchangedsince,
    )
    assert cmd.sequence_set == seq("1")


def test_uid_store() -> None:
    cmd = parse_command(b"a UID STORE 5:7 +FLAGS (\\Answered)")
    assert cmd == Store("a", seq("5:7"), "add", ("\\Answered",), uid=True)
    assert cmd.name == "UID STORE"


@pytest.mark.parametrize(
    "data",
    [
        b"a STORE 1 FLAGS",
        b"a STORE 1 FLAGS ",
        b"a STORE 1 XFLAGS (\\Seen)",
        b"a STORE 1 *FLAGS (\\Seen)",
        b"a STORE 1 FLAGS.LOUD (\\Seen)",
        b"a STORE 1 FLAGS (\\Seen",
        b"a STORE 1 FLAGS (\\*)",
        b"a STORE 1 FLAGS \\",
        b"a STORE 1 (UNCHANGEDSINCE) FLAGS x",
        b"a STORE 1 (UNCHANGEDSINCE x) FLAGS x",
        b"a STORE 1 (FOO 1) FLAGS x",
        b"a STORE 1 FLAGS  x",
        b'a STORE 1 FLAGS "x"',
    ],
)
def test_store_errors(data: bytes) -> None:
    with pytest.raises(ParseError):
        parse_command(data)


def test_search_forms() -> None:
    assert parse_command(b"a SEARCH ALL") == Search("a", All())
    assert parse_command(b"a UID SEARCH 1:* UNSEEN") == Search(
        "a", _and(SeqNums(seq("1:*")), FlagIs("\\Seen", False)), uid=True
    )
    assert parse_command(b"a SEARCH CHARSET UTF-8 SUBJECT {2}\r\n\xc3\xa9") == Search(
        "a", TextContains("subject", "\u00e9"), "UTF-8"
    )
    assert parse_command(b"a SEARCH charset us-ascii TEXT x") == Search(
        "a", TextContains("text", "x"), "us-ascii"
    )
    assert parse_command(b"a SEARCH RETURN () ALL") == Search("a", All(), None, ())
    assert parse_command(b"a SEARCH RETURN (MIN MAX COUNT ALL SAVE) CHARSET UTF-8 ALL") == Search(
        "a", All(), "UTF-8", ("MIN", "MAX", "COUNT", "ALL", "SAVE")
    )
    assert parse_command(b'a SEARCH SUBJECT "caf\xc3\xa9"') == Search(
        "a", TextContains("subject", "caf\u00e9")
    )


def _and(*keys: SearchKey) -> And:
    return And(keys)


def test_search_bad_charset() -> None:
    with pytest.raises(BadCharset) as info:
        parse_command(b"t1 SEARCH CHARSET KOI8-R SUBJECT x")
    assert info.value.tag == "t1"
    assert info.value.supported == ("US-ASCII", "UTF-8")
    assert isinstance(info.value, ParseError)
    with pytest.raises(ParseError, match="charset"):
        parse_command(b"t1 SEARCH CHARSET US-ASCII SUBJECT {2}\r\n\xc3\xa9")


@pytest.mark.parametrize(
    "data",
    [
        b"a SEARCH",
        b"a SEARCH ",
        b"a SEARCH RETURN (FOO) ALL",
        b"a SEARCH RETURN ALL",
        b"a SEARCH CHARSET",
        b"a SEARCH CHARSET UTF-8",
        b"a SEARCH ALL ",
        b"a UID SEARCH",
    ],
)
def test_search_command_errors(data: bytes) -> None:
    with pytest.raises(ParseError):
        parse_command(data)


# -- errors common to all commands -------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "tag", "message"),
    [
        (b"", None, "Invalid tag"),
        (b"a", "a", "Missing argument"),
        (b"+ NOOP", None, "Invalid tag"),
        (b"* NOOP", None, "Invalid tag"),
        (b"a{1} NOOP", "a", "Expected SP"),
        (b"a FROB", "a", "Unknown command"),
        (b"a UID FROB 1", "a", "Unknown command"),
        (b"a UID", "a", ""),
        (b"a NOOP extra", "a", "extra"),
        (b"a NOOP ", "a", "extra"),
        (b"a  NOOP", "a", ""),
        (b"a SELECT", "a", "Missing argument"),
        (b"a SELECT ", "a", ""),
        (b"a LOGIN joe", "a", "Missing argument"),
        (b"a LOGIN joe pw extra", "a", ""),
        (b"a RENAME a", "a", ""),
        (b"a STATUS INBOX ()", "a", ""),
        (b"a STATUS INBOX (FOO)", "a", "STATUS"),
        (b"a STATUS INBOX MESSAGES", "a", ""),
        (b'a LIST (FOO) "" %', "a", "selection"),
        (b'a LIST (RECURSIVEMATCH) "" %', "a", "RECURSIVEMATCH"),
        (b'a LIST "" % RETURN (FOO)', "a", "return"),
        (b'a LIST "" % RETURN (STATUS ())', "a", ""),
        (b'a LIST "" % EXTRA (x)', "a", "RETURN"),
        (b'a LIST "" ()', "a", ""),
        (b"a SELECT INBOX (FOO)", "a", "parameter"),
        (b"a SELECT INBOX (QRESYNC)", "a", ""),
        (b"a SELECT INBOX (QRESYNC (0 1))", "a", ""),
        (b"a SELECT INBOX (QRESYNC (1))", "a", ""),
        (b"a SELECT INBOX (QRESYNC (1 1 1:2 (1) x))", "a", ""),
        (b"a CREATE x (USE \\Sent)", "a", "USE"),
        (b"a CREATE x (USE (Sent))", "a", ""),
        (b"a CREATE x (FOO (x))", "a", ""),
        (b"a ENABLE", "a", ""),
        (b"a ID", "a", ""),
        (b'a ID ("a")', "a", ""),
        (b'a ID ("a" "b"', "a", ""),
        (b"a ID (a b)", "a", ""),
        (b"a AUTHENTICATE", "a", ""),
        (b"a AUTHENTICATE PLAIN !!!", "a", "base64"),
        (b"a AUTHENTICATE PLAIN AHU", "a", "base64"),
        (b"a COPY 1", "a", ""),
        (b"a COPY x INBOX", "a", ""),
        (b"a UID EXPUNGE", "a", ""),
        (b"a EXPUNGE 1", "a", ""),
        (b"a SETQUOTA x (STORAGE)", "a", ""),
        (b"a LOGIN joe pw\r\n", "a", "line break"),
        (b"a LOGIN joe\r\npw", "a", "line break"),
        (b"a LOGIN joe\npw", "a", ""),
    ],
)
def test_errors(data: bytes, tag: str | None, message: str) -> None:
    with pytest.raises(ParseError) as info:
        parse_command(data)
    assert info.value.tag == tag
    assert message.lower() in str(info.value).lower()
