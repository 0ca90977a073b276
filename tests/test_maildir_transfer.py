"""Maildir import and export against a real kernel, real PostgreSQL and the real IMAP server (imaplib).

The Maildir here is built by hand from the Maildir spec and the files Dovecot 2.3 writes (see
test_maildir_format.py); tests/test_maildir_dovecot.py does the same against a running Dovecot.
"""

from __future__ import annotations

import asyncio
import imaplib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from sora_kernel.maildir_transfer import ExportOptions, ImportOptions, export_maildir, import_maildir, summary_lines

T0 = 1_700_000_000  # 2023-11-14T22:13:20Z


def _message(subject: str, body: str = "hello", *, crlf: bool = False) -> bytes:
    text = (f"From: Ann <ann@example.com>\nTo: bob@example.com\nSubject: {subject}\n"
            f"Message-ID: <{subject.replace(' ', '.')}@example.com>\nDate: Tue, 14 Nov 2023 22:13:20 +0100\n\n"
            f"{body}\nsecond line\n")
    data = text.encode()
    return data.replace(b"\n", b"\r\n") if crlf else data


def _put(folder: Path, sub: str, base: str, info: str | None, data: bytes, mtime: int) -> Path:
    path = folder / sub / (base + (f":2,{info}" if info is not None else ""))
    path.write_bytes(data)
    os.utime(path, (mtime, mtime))
    return path


def build_maildir(root: Path) -> dict[str, Any]:
    """A Dovecot-style Maildir++: INBOX with kept UIDs, keywords and a new/ file missing from the uidlist;
    Sent and Sent/2024; a mUTF-7 folder; subscriptions. Returns what IMAP should show."""
    for folder in ("", ".Sent", ".Sent.2024", ".&AMk-t&AOk-"):
        for sub in ("cur", "new", "tmp"):
            (root / folder / sub).mkdir(parents=True, exist_ok=True)
        if folder:
            (root / folder / "maildirfolder").touch()
    inbox = {
        "1700000000.M1P1.old,S=%d": ("S", _message("one"), T0, 5),
        "1700000100.M2P1.old,S=%d": ("RSab", _message("two"), T0 + 100, 7),
        "1700000200.M3P1.old,S=%d": ("DFT", _message("three", crlf=True), T0 + 200, 9),
    }
    expected: dict[str, Any] = {"INBOX": {}, "Sent": {}, "Sent/2024": {}, "Été": {}}
    lines = []
    for pattern, (info, data, mtime, uid) in inbox.items():
        base = pattern % len(data)
        _put(root, "cur", base, info, data, mtime)
        lines.append(f"{uid} :{base}")
        expected["INBOX"][uid] = (info, data, mtime)
    fresh = _message("four, not in the uidlist")
    _put(root, "new", f"1700000300.M4P1.old,S={len(fresh)}", None, fresh, T0 + 300)
    expected["INBOX"][20] = ("", fresh, T0 + 300)  # above the uidlist's N20
    (root / "dovecot-uidlist").write_text("3 V1234567 N20 G0123456789abcdef\n" + "\n".join(lines) + "\n")
    (root / "dovecot-keywords").write_text("0 $Label1\n1 Junk\n")
    sent = _message("sent one")
    _put(root / ".Sent", "cur", "1700000400.M5P1.old", "S", sent, T0 + 400)
    (root / ".Sent" / "dovecot-uidlist").write_text("3 V1234568 N3\n2 :1700000400.M5P1.old\n")
    expected["Sent"][2] = ("S", sent, T0 + 400)
    archived = _message("archived")
    _put(root / ".Sent.2024", "cur", "1700000500.M6P1.old", "Sa", archived, T0 + 500)
    (root / ".Sent.2024" / "dovecot-keywords").write_text("0 $Forwarded\n")
    expected["Sent/2024"][1] = ("Sa", archived, T0 + 500)
    accented = _message("accented")
    _put(root / ".&AMk-t&AOk-", "cur", "1700000600.M7P1.old", "", accented, T0 + 600)
    expected["Été"][1] = ("", accented, T0 + 600)
    (root / "subscriptions").write_text("V\t2\n\nSent\t2024\n&AMk-t&AOk-\n")
    return expected


_FLAGS = {"S": "\\Seen", "R": "\\Answered", "F": "\\Flagged", "T": "\\Deleted", "D": "\\Draft"}


def _flag_set(info: str, keywords: dict[str, str]) -> set[str]:
    return {_FLAGS[c] if c in _FLAGS else keywords[c] for c in info}


View = tuple[int, int, dict[int, tuple[set[str], str, bytes]]]


def imap_view(port: int, user: str, password: str, mailbox: str) -> View:
    """(UIDVALIDITY, UIDNEXT, {uid: (flags, INTERNALDATE, body)}) as an IMAP client sees a mailbox."""
    client = imaplib.IMAP4("127.0.0.1", port)
    try:
        client.login(user, password)
        status, data = client.status(mailbox, "(UIDVALIDITY UIDNEXT)")
        assert status == "OK", data
        text = data[0].decode() if isinstance(data[0], bytes) else str(data[0])
        uidvalidity = int(re.search(r"UIDVALIDITY (\d+)", text).group(1))  # type: ignore[union-attr]
        uidnext = int(re.search(r"UIDNEXT (\d+)", text).group(1))  # type: ignore[union-attr]
        status, _ = client.select(mailbox, readonly=True)
        assert status == "OK"
        status, rows = client.uid("FETCH", "1:*", "(UID FLAGS INTERNALDATE BODY.PEEK[])")
        assert status == "OK"
        found: dict[int, tuple[set[str], str, bytes]] = {}
        for item in rows:
            if not isinstance(item, tuple):
                continue
            head = item[0].decode()
            uid = int(re.search(r"UID (\d+)", head).group(1))  # type: ignore[union-attr]
            flags = set(re.search(r"FLAGS \(([^)]*)\)", head).group(1).split()) - {"\\Recent"}  # type: ignore[union-attr]
            date = re.search(r'INTERNALDATE "([^"]+)"', head).group(1)  # type: ignore[union-attr]
            found[uid] = (flags, date, item[1])
        return uidvalidity, uidnext, found
    finally:
        client.logout()


def _internaldate(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%d-%b-%Y %H:%M:%S +0000")


def _crlf(data: bytes) -> bytes:
    return re.sub(rb"(?<!\r)\n", b"\r\n", data)


@pytest.fixture
def imap(sora_server: Callable[..., Any]) -> Any:
    return sora_server(plugins=["imap"])


def test_import_keeps_uids_flags_keywords_dates_and_subscriptions(imap: Any, tmp_path: Path) -> None:
    expected = build_maildir(tmp_path / "Maildir")
    account = imap.create_account("mover@example.com", "secret")
    report = imap.call(import_maildir, imap.store, account.id,
                       ImportOptions(tmp_path / "Maildir", preserve_uids=True, sieve_script="keep;\n"))
    assert report.skipped == [], summary_lines(report, "imported")
    assert report.done == 7 and report.already == 0 and report.subscribed == 2
    assert {m.name: m.uids_kept for m in report.mailboxes} == {
        "INBOX": True, "Sent": True, "Sent/2024": False, "Été": False}
    keywords = {"a": "$Label1", "b": "Junk"}
    uidvalidity, uidnext, inbox = imap_view(imap.port("imap"), "mover@example.com", "secret", "INBOX")
    assert (uidvalidity, uidnext) == (1234567, 21)
    assert sorted(inbox) == [5, 7, 9, 20]
    for uid, (info, data, mtime) in expected["INBOX"].items():
        flags, date, body = inbox[uid]
        assert flags == _flag_set(info, keywords), uid
        assert date == _internaldate(mtime)
        assert body == _crlf(data)
    assert imap_view(imap.port("imap"), "mover@example.com", "secret", "Sent")[:2] == (1234568, 3)
    _, _, archive = imap_view(imap.port("imap"), "mover@example.com", "secret", "Sent/2024")
    assert archive[1][0] == {"\\Seen", "$Forwarded"}
    _, _, accented = imap_view(imap.port("imap"), "mover@example.com", "secret", "&AMk-t&AOk-")
    assert list(accented) == [1]
    assert set(imap.call(imap.store.list_subscriptions, account.id)) == {
        "INBOX", "Sent", "Drafts", "Archive", "Junk", "Trash", "Sent/2024", "Été"}
    active = imap.call(imap.store.sieve.get_active_script, account.id)
    assert active is not None and active.name == "imported" and active.script == "keep;\n"
    # a second run stores nothing and says so
    again = imap.call(import_maildir, imap.store, account.id, ImportOptions(tmp_path / "Maildir", preserve_uids=True))
    assert (again.done, again.already, again.skipped) == (0, 7, [])
    assert imap_view(imap.port("imap"), "mover@example.com", "secret", "INBOX")[2].keys() == inbox.keys()


def test_export_gives_back_the_same_files(imap: Any, tmp_path: Path) -> None:
    build_maildir(tmp_path / "Maildir")
    account = imap.create_account("round@example.com", "secret")
    imap.call(import_maildir, imap.store, account.id, ImportOptions(tmp_path / "Maildir", preserve_uids=True))
    # a message that did not come from the import: Dovecot-style name, LF line ends
    inbox = imap.call(imap.store.get_mailbox, account.id, "INBOX")
    imap.call(imap.store.append, account.id, inbox.id, b"Subject: later\r\n\r\nnew mail\r\n",
              internal_date=datetime.fromtimestamp(T0 + 900, UTC))
    out = tmp_path / "out"
    report = imap.call(export_maildir, imap.store, account.id, ExportOptions(out, dovecot_uidlist=True))
    assert report.skipped == [] and report.done == 8
    source = tmp_path / "Maildir"
    for original in sorted(p for p in source.rglob("*") if p.parent.name in ("cur", "new") and p.is_file()):
        folder = original.parent.parent.relative_to(source)
        base = original.name.split(":2,")[0]
        written = [p for p in (out / folder / "cur").iterdir() if p.name.split(":2,")[0] == base]
        assert len(written) == 1, original
        assert written[0].read_bytes() == original.read_bytes(), original
        assert int(written[0].stat().st_mtime) == int(original.stat().st_mtime)
        if original.parent.name == "cur":
            assert written[0].name == original.name  # same flags, in the same letters
    uidlist = (out / "dovecot-uidlist").read_text().splitlines()
    assert uidlist[0] == "3 V1234567 N22"
    assert [line.split(" ")[0] for line in uidlist[1:]] == ["5", "7", "9", "20", "21"]
    later = [p for p in (out / "cur").iterdir() if p.name.startswith(f"{T0 + 900}.")]
    assert len(later) == 1 and later[0].read_bytes() == b"Subject: later\n\nnew mail\n"
    assert re.search(r",S=25,W=28:2,$", later[0].name), later[0].name
    assert (out / "dovecot-keywords").read_text() == "0 $Label1\n1 Junk\n"
    assert (out / ".Sent.2024" / "maildirfolder").exists()
    assert (out / "subscriptions").read_text().startswith("V\t2\n\n")
    assert "Sent\t2024\n" in (out / "subscriptions").read_text()
    # exporting again writes nothing new
    again = imap.call(export_maildir, imap.store, account.id, ExportOptions(out, dovecot_uidlist=True))
    assert (again.done, again.already) == (0, 8)
    # and the export imports into a fresh account with the same UIDs
    other = imap.create_account("back@example.com", "secret")
    back = imap.call(import_maildir, imap.store, other.id, ImportOptions(out, preserve_uids=True))
    assert back.skipped == [] and back.done == 8
    original_view = imap_view(imap.port("imap"), "round@example.com", "secret", "INBOX")
    assert imap_view(imap.port("imap"), "back@example.com", "secret", "INBOX") == original_view


def test_bad_input_is_reported_and_skipped(imap: Any, tmp_path: Path) -> None:
    root = tmp_path / "Maildir"
    build_maildir(root)
    big = _message("big", "x" * 5000)
    _put(root, "cur", "1700000700.M8P1.old", "S", big, T0 + 700)
    (root / "cur" / "1700000800.M9P1.old:2,S").symlink_to(tmp_path / "missing")
    with (root / "dovecot-uidlist").open("a") as handle:
        handle.write("this is not a uidlist line\n")
    for sub in ("cur", "new", "tmp"):
        (root / ".bad&AMk" / sub).mkdir(parents=True)
    _put(root / ".bad&AMk", "cur", "1700000900.M10P1.old", "", _message("lost"), T0 + 900)
    (root / ".Sent" / "dovecot-uidlist").write_text("9 garbage header\n")
    account = imap.create_account("bad@example.com", "secret")
    report = imap.call(import_maildir, imap.store, account.id,
                       ImportOptions(root, preserve_uids=True, max_size=4096))
    reasons = {item.path: item.reason for item in report.skipped}
    assert "over the size limit (4096 bytes)" in reasons[str(root / "cur" / "1700000700.M8P1.old:2,S")]
    assert "unreadable" in reasons[str(root / "cur" / "1700000800.M9P1.old:2,S")]
    assert any(p.startswith(f"{root / 'dovecot-uidlist'}: line 5") for p in reasons)
    assert "cannot be a mailbox name" in reasons[str(root / ".bad&AMk")]
    assert "unsupported uidlist header" in reasons[str(root / ".Sent" / "dovecot-uidlist")]
    assert report.done == 7  # the good messages all made it
    assert {m.name: m.uids_kept for m in report.mailboxes}["Sent"] is False
    text = "\n".join(summary_lines(report, "imported"))
    assert "5 skipped" in text and str(root / ".bad&AMk") in text


def test_dry_run_changes_nothing_and_filters_select(imap: Any, tmp_path: Path) -> None:
    build_maildir(tmp_path / "Maildir")
    account = imap.create_account("dry@example.com", "secret")
    dry = imap.call(import_maildir, imap.store, account.id,
                    ImportOptions(tmp_path / "Maildir", preserve_uids=True, dry_run=True, sieve_script="keep;"))
    assert dry.done == 7 and dry.dry_run
    assert imap.call(imap.store.get_mailbox, account.id, "Sent/2024") is None
    assert imap.call(imap.store.get_mailbox, account.id, "INBOX").message_count == 0
    assert imap.call(imap.store.sieve.get_active_script, account.id) is None
    only = imap.call(import_maildir, imap.store, account.id,
                     ImportOptions(tmp_path / "Maildir", mailbox_filter=["Sent"],
                                   since=datetime.fromtimestamp(T0 + 450, UTC)))
    assert [(m.name, m.done) for m in only.mailboxes] == [("Sent", 0), ("Sent/2024", 1)]
    assert imap.call(imap.store.get_mailbox, account.id, "INBOX").message_count == 0


# ------------------------------------------------------------------------------------------ the command line


def sora(*args: str, config: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sora_cli.main", "--config", str(config), *args],
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def configured(tmp_path: Path, sora_dsn: str) -> tuple[Path, str]:
    config = tmp_path / "sora.toml"
    result = sora("init", "--data-dir", str(tmp_path / "data"), config=config)
    assert result.returncode == 0, result.stderr
    config.write_text(config.read_text().replace('dsn = ""', f'dsn = "{sora_dsn}"', 1))
    created = sora("accounts", "create", "--email", "cli@example.com", "--password", "secret", config=config)
    assert created.returncode == 0, created.stderr
    return config, sora_dsn


def test_cli_import_summary_dry_run_rerun_and_export(configured: tuple[Path, str], tmp_path: Path) -> None:
    config, _ = configured
    build_maildir(tmp_path / "Maildir")
    base = ("import", "maildir", "--email", "cli@example.com", "--path", str(tmp_path / "Maildir"), "--dovecot")
    dry = sora(*base, "--dry-run", config=config)
    assert dry.returncode == 0, dry.stderr
    assert "would be imported: 7 messages in 4 mailboxes" in dry.stdout
    first = sora(*base, "--no-progress", config=config)
    assert first.returncode == 0, first.stderr
    assert "imported: 7 messages in 4 mailboxes, 0 already there, 0 skipped" in first.stdout
    assert "INBOX: 4 imported, 0 already there, 0 skipped, UIDs kept" in first.stdout
    assert "maildir mailbox imported" in first.stderr  # one log line per mailbox without a terminal
    again = sora(*base, config=config)
    assert again.returncode == 0 and "imported: 0 messages in 4 mailboxes, 7 already there" in again.stdout
    shown = sora("export", "maildir", "--email", "cli@example.com", "--path", str(tmp_path / "out"), "--dovecot",
                 "--progress", config=config)
    assert shown.returncode == 0, shown.stderr
    assert "exported: 7 messages" in shown.stdout and "msg/s" in shown.stderr
    assert (tmp_path / "out" / "dovecot-uidlist").read_text().startswith("3 V1234567 N21\n")
    (tmp_path / "Maildir" / "cur" / "1700000999.M1P1.old:2,S").symlink_to(tmp_path / "missing")
    bad = sora(*base, config=config)
    assert bad.returncode == 1 and "unreadable" in bad.stdout and "1700000999.M1P1.old" in bad.stdout
    missing = sora("import", "maildir", "--email", "nobody@example.com", "--path", str(tmp_path), config=config)
    assert missing.returncode == 1 and "no account with address nobody@example.com" in missing.stderr


def _count(dsn: str) -> int:
    async def go() -> int:
        conn = await asyncpg.connect(dsn)
        try:
            return int(await conn.fetchval("SELECT count(*) FROM maildir_imports"))
        finally:
            await conn.close()

    return asyncio.run(go())


def test_cli_import_killed_midway_resumes_without_duplicates(configured: tuple[Path, str], tmp_path: Path) -> None:
    config, dsn = configured
    root = tmp_path / "Maildir"
    for sub in ("cur", "new", "tmp"):
        (root / sub).mkdir(parents=True)
    total = 3000
    lines = []
    for n in range(1, total + 1):
        base = f"{T0 + n}.M{n}P1.old"
        _put(root, "cur", base, "S", _message(f"m{n}", "x" * 200), T0 + n)
        lines.append(f"{n * 2} :{base}")
    (root / "dovecot-uidlist").write_text("3 V777 N7000\n" + "\n".join(lines) + "\n")
    args = [sys.executable, "-m", "sora_cli.main", "--config", str(config), "import", "maildir", "--email",
            "cli@example.com", "--path", str(root), "--dovecot", "--batch-size", "2", "--jobs", "1"]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while _count(dsn) < 20:
            assert process.poll() is None, "the import finished before it could be interrupted"
            assert time.monotonic() < deadline, "the import did not start"
            time.sleep(0.02)  # polling interval, not a timing assumption
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(timeout=30)
    interrupted = _count(dsn)
    assert 20 <= interrupted < total
    resumed = sora("import", "maildir", "--email", "cli@example.com", "--path", str(root), "--dovecot",
                   config=config)
    assert resumed.returncode == 0, resumed.stderr
    assert f"imported: {total - interrupted} messages in 1 mailboxes, {interrupted} already there" in resumed.stdout

    async def check() -> tuple[int, int, list[int], int]:
        conn = await asyncpg.connect(dsn)
        try:
            row = await conn.fetchrow("SELECT uidvalidity, uidnext, message_count, id FROM mailboxes"
                                      " WHERE name = 'INBOX'")
            uids = [r["uid"] for r in await conn.fetch(
                "SELECT uid FROM messages WHERE mailbox_id = $1 ORDER BY uid", row["id"])]
            return row["uidvalidity"], row["uidnext"], uids, row["message_count"]
        finally:
            await conn.close()

    uidvalidity, uidnext, uids, count = asyncio.run(check())
    assert (uidvalidity, uidnext, count) == (777, 7000, total)
    assert uids == [n * 2 for n in range(1, total + 1)]
