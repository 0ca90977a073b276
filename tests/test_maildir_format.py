"""Maildir++ format logic (sora_kernel.maildir) on hand-written input from the Maildir spec and from files
Dovecot 2.3 wrote (copied byte for byte below): names, flags, dovecot-keywords, dovecot-uidlist, subscriptions."""

from __future__ import annotations

from pathlib import Path

import pytest

from sora_kernel import maildir as md
from sora_kernel.flags import ANSWERED, DELETED, DRAFT, FLAGGED, SEEN

# written by Dovecot 2.3.19 after CREATE Sent, Sent.2024, "&AMk-t&AOk-" and two APPENDs
DOVECOT_UIDLIST = ("3 V1796227198 N3 Gb9f1423b7c40106bb834000083ecc375\n"
                   "1 :1796227197.M5505P13496.vm,S=61,W=66\n"
                   "2 :1796227197.M8706P13496.vm,S=62,W=67\n")
DOVECOT_SUBSCRIPTIONS = "V\t2\n\nSent\t2024\n&AMk-t&AOk-\n"


@pytest.mark.parametrize(("name", "encoded"), [
    ("Sent", "Sent"), ("Été", "&AMk-t&AOk-"), ("a&b", "a&-b"), ("日本語", "&ZeVnLIqe-"), ("~peter", "~peter"),
])
def test_mutf7_round_trip(name: str, encoded: str) -> None:
    assert md.mutf7_encode(name) == encoded
    assert md.mutf7_decode(encoded) == name


@pytest.mark.parametrize("bad", ["&AMk", "&A-", "caf\u00e9", "&!!-"])
def test_mutf7_rejects_what_dovecot_would_not_write(bad: str) -> None:
    with pytest.raises(md.MaildirFormatError):
        md.mutf7_decode(bad)


@pytest.mark.parametrize(("dirname", "mailbox"), [
    ("", "INBOX"), (".Sent", "Sent"), (".Sent.2024", "Sent/2024"), (".&AMk-t&AOk-", "Été"),
    (".INBOX.Work", "INBOX/Work"), (".inbox", "INBOX"),
])
def test_folder_names(dirname: str, mailbox: str) -> None:
    assert md.folder_to_mailbox(dirname) == mailbox
    if dirname != ".inbox":
        assert md.mailbox_to_folder(mailbox) == dirname


@pytest.mark.parametrize("dirname", ["Sent", ".Sent..x", ".a.", ".&AMk"])
def test_folder_names_that_cannot_be_mailboxes(dirname: str) -> None:
    with pytest.raises(md.MaildirFormatError):
        md.folder_to_mailbox(dirname)


def test_a_dot_in_a_level_cannot_be_exported() -> None:
    with pytest.raises(md.MaildirFormatError, match="Maildir\\+\\+ separator"):
        md.mailbox_to_folder("Lists/python.org")


def test_filename_split_and_size() -> None:
    assert md.split_filename("1796227197.M8706P13496.vm,S=62,W=67:2,DFRT") == (
        "1796227197.M8706P13496.vm,S=62,W=67", "DFRT")
    assert md.split_filename("1796227197.M1P1.vm") == ("1796227197.M1P1.vm", "")
    assert md.filename_size("1796227197.M8706P13496.vm,S=62,W=67") == 62
    assert md.filename_size("plain") is None


def test_flags_follow_the_maildir_spec_not_the_go_importer() -> None:
    table = {0: "$Label1", 1: "Junk"}
    flags = md.parse_info("DFPRSTab", table)
    assert flags.bits == DRAFT | FLAGGED | ANSWERED | SEEN | DELETED
    assert flags.keywords == ("$Forwarded", "$Label1", "Junk")
    assert md.parse_info("T", {}).bits == DELETED  # Trashed, not \\Draft
    assert md.parse_info("D", {}).bits == DRAFT
    unknown = md.parse_info("Sz", table)
    assert unknown.bits == SEEN and unknown.keywords == () and unknown.unknown == "z"


def test_format_info_sorts_letters_and_reports_keywords_without_a_letter() -> None:
    index = {"$Label1": 0, "Junk": 1}
    assert md.format_info(SEEN | DRAFT, ["Junk", "$Label1"], index) == ("DSab", [])
    assert md.format_info(0, ["$Forwarded", "Other"], index) == ("P", ["Other"])
    assert md.format_info(DELETED | FLAGGED | ANSWERED, [], {}) == ("FRT", [])


def test_keywords_file() -> None:
    table, problems = md.parse_keywords("0 $Label1\n1 Junk\n\nx broken\n3 bad(kw\n")
    assert table == {0: "$Label1", 1: "Junk"}
    assert len(problems) == 2 and "line 4" in problems[0] and "line 5" in problems[1]
    assert md.format_keywords(["$Label1", "Junk"]) == "0 $Label1\n1 Junk\n"


def test_dovecot_uidlist_v3() -> None:
    uidlist = md.parse_uidlist(DOVECOT_UIDLIST)
    assert (uidlist.uidvalidity, uidlist.nextuid, uidlist.guid) == (1796227198, 3, "b9f1423b7c40106bb834000083ecc375")
    assert uidlist.entries["1796227197.M5505P13496.vm,S=61,W=66"].uid == 1
    assert uidlist.entries["1796227197.M8706P13496.vm,S=62,W=67"].uid == 2
    assert uidlist.problems == []
    again = md.parse_uidlist(md.format_uidlist(1796227198, 3, [(2, "1796227197.M8706P13496.vm,S=62,W=67"),
                                                               (1, "1796227197.M5505P13496.vm,S=61,W=66")],
                                               "b9f1423b7c40106bb834000083ecc375"))
    assert again.entries == uidlist.entries and again.uidvalidity == uidlist.uidvalidity


def test_uidlist_next_uid_is_written_lazily() -> None:
    # Dovecot wrote this one: N1 while UID 1 is listed
    uidlist = md.parse_uidlist("3 V1796227197 N1 Gb8f1\n1 :1796227197.M11705P13496.vm,S=64,W=69\n")
    assert uidlist.next_uid == 2


def test_uidlist_extension_fields_and_version_1() -> None:
    uidlist = md.parse_uidlist("3 V5 N10\n4 S100 W104 GAbC :base4\n7 :base7:2,S\n")
    assert uidlist.entries["base4"] == md.UidEntry(4, (("S", "100"), ("W", "104"), ("G", "AbC")))
    assert uidlist.entries["base7"].uid == 7
    old = md.parse_uidlist("1 1234 20\n3 base3\n9 base9:2,RS\n")
    assert (old.uidvalidity, old.nextuid) == (1234, 20)
    assert {k: v.uid for k, v in old.entries.items()} == {"base3": 3, "base9": 9}


def test_broken_uidlist_lines_are_reported_and_skipped() -> None:
    uidlist = md.parse_uidlist("3 V5 N10\n4 :a\nnonsense\n3 :b\n4 :c\n6 :a\n0 :z\n8 :ok\n")
    assert {k: v.uid for k, v in uidlist.entries.items()} == {"a": 4, "ok": 8}
    assert [p.split(":")[0] for p in uidlist.problems] == ["line 3", "line 4", "line 5", "line 6", "line 7"]


@pytest.mark.parametrize("header", ["", "2 5 10", "3 N10", "3 V0 N1", "xyz"])
def test_bad_uidlist_header(header: str) -> None:
    with pytest.raises(md.MaildirFormatError):
        md.parse_uidlist(header + "\n1 :a\n")


def test_subscriptions_dovecot_and_courier() -> None:
    assert md.parse_subscriptions(DOVECOT_SUBSCRIPTIONS) == ["Sent/2024", "Été"]
    assert md.format_subscriptions(["Sent/2024", "Été"]) == DOVECOT_SUBSCRIPTIONS
    assert md.parse_subscriptions("INBOX.Sent\nINBOX.Sent.2024\nINBOX\n") == ["Sent", "Sent/2024", "INBOX"]


def test_scan_finds_folders_and_files(tmp_path: Path) -> None:
    for folder in ("", ".Sent", ".Sent.2024", ".bad&AMk", ".NoMaildir"):
        for sub in ("cur", "new", "tmp") if folder != ".NoMaildir" else ():
            (tmp_path / folder / sub).mkdir(parents=True)
    (tmp_path / ".NoMaildir").mkdir()
    (tmp_path / "cur" / "100.M1P1.host,S=3:2,SF").write_bytes(b"a\n\n")
    (tmp_path / "new" / "101.M2P1.host").write_bytes(b"b\n\n")
    (tmp_path / "tmp" / "102.M3P1.host").write_bytes(b"unfinished")
    (tmp_path / "cur" / "gone:2,S").symlink_to(tmp_path / "nowhere")
    folders = md.find_folders(tmp_path)
    assert [(f.dirname, f.name) for f in folders] == [
        ("", "INBOX"), (".Sent", "Sent"), (".Sent.2024", "Sent/2024"), (".bad&AMk", None)]
    assert "unterminated" in folders[3].problem
    md.scan_files(folders[0])
    assert [(f.base, f.info, f.size) for f in folders[0].files] == [
        ("100.M1P1.host,S=3", "SF", 3), ("101.M2P1.host", "", 3)]
    assert [p.name for p, _ in folders[0].unreadable] == ["gone:2,S"]
