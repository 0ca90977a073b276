"""Maildir import and export against a real Dovecot (Debian's dovecot-imapd and dovecot-lmtpd).

Dovecot → Sora: mail delivered over Dovecot's LMTP and IMAP (folders, flags, keywords, an expunge),
its Maildir imported, and Sora's IMAP answers compared with Dovecot's: UIDVALIDITY, UIDNEXT, UIDs,
flags, keywords, INTERNALDATE and bodies. Sora → Dovecot: mail appended over Sora's IMAP, exported,
and Dovecot pointed at the result must answer the same.

Dovecot runs as root with mail owned by a ``vmail`` user, as contrib/bench/dovecot.sh does; CI
(``.ci/run``) installs it. Without it the tests fail when ``CI`` is set and are skipped otherwise.
"""

from __future__ import annotations

import imaplib
import os
import re
import shutil
import smtplib
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from sora_kernel.maildir_transfer import ExportOptions, ImportOptions, export_maildir, import_maildir, summary_lines

INSTALL = "apt-get install -y dovecot-imapd dovecot-lmtpd"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Dovecot:
    """A throwaway Dovecot on loopback: any user, password "pw", Maildir under ``mail/<user>``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.mail = folder / "mail"
        self.imap_port = _free_port()
        self.lmtp_port = _free_port()
        self.config = folder / "dovecot.conf"

    def start(self) -> None:
        if subprocess.run(["id", "vmail"], capture_output=True).returncode != 0:
            subprocess.run(["useradd", "--system", "--no-create-home", "vmail"], check=True, capture_output=True)
        (self.folder / "run").mkdir(parents=True)
        self.mail.mkdir()
        shutil.chown(self.mail, "vmail", "vmail")
        self.config.write_text(f"""
base_dir = {self.folder}/run
log_path = {self.folder}/dovecot.log
protocols = imap lmtp
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:{self.mail}/%u
mail_uid = vmail
mail_gid = vmail
first_valid_uid = 1
passdb {{
  driver = static
  args = password=pw
}}
userdb {{
  driver = static
  args = uid=vmail gid=vmail home={self.mail}/%u allow_all_users=yes
}}
service imap-login {{
  inet_listener imap {{
    port = {self.imap_port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service lmtp {{
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {self.lmtp_port}
  }}
}}
""")
        # the daemon keeps its standard streams: pipes here would never reach EOF
        subprocess.run(["dovecot", "-c", str(self.config)], check=True, stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.imap_port), timeout=1):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("dovecot did not listen: " + self.log()) from None
                time.sleep(0.05)  # polling interval, not a timing assumption

    def stop(self) -> None:
        subprocess.run(["dovecot", "-c", str(self.config), "stop"], stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)

    def log(self) -> str:
        path = self.folder / "dovecot.log"
        return path.read_text() if path.exists() else ""

    def imap(self, user: str) -> imaplib.IMAP4:
        client = imaplib.IMAP4("127.0.0.1", self.imap_port, timeout=30)
        client.login(user, "pw")
        return client


@pytest.fixture(scope="module")
def dovecot() -> Iterator[Dovecot]:
    missing = None
    if shutil.which("dovecot") is None:
        missing = f"Dovecot is not installed ({INSTALL})"
    elif os.geteuid() != 0:
        missing = "these tests run Dovecot as root (mail owned by vmail), as CI does"
    if missing:
        if os.environ.get("CI"):
            pytest.fail(missing + "; .ci/run installs it")
        pytest.skip(missing)
    # not under pytest's tmp_path: its 0700 parents keep the vmail user out
    folder = Path(tempfile.mkdtemp(prefix="sora-dovecot-"))
    folder.chmod(0o755)
    server = Dovecot(folder)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)


View = dict[int, tuple[frozenset[str], float, bytes]]


def view(client: imaplib.IMAP4, mailbox: str) -> tuple[int, int, View]:
    """(UIDVALIDITY, UIDNEXT, {uid: (flags without \\Recent, INTERNALDATE as a timestamp, body)})."""
    status, data = client.status(mailbox, "(UIDVALIDITY UIDNEXT)")
    assert status == "OK", (mailbox, data)
    text = data[0].decode() if isinstance(data[0], bytes) else str(data[0])
    numbers = dict(re.findall(r"(UIDVALIDITY|UIDNEXT) (\d+)", text))
    assert client.select(mailbox, readonly=True)[0] == "OK"
    status, rows = client.uid("FETCH", "1:*", "(UID FLAGS INTERNALDATE BODY.PEEK[])")
    assert status == "OK"
    found: View = {}
    for item in rows:
        if isinstance(item, tuple):
            head = item[0].decode()
            uid = int(re.search(r"UID (\d+)", head).group(1))  # type: ignore[union-attr]
            flags = frozenset(re.search(r"FLAGS \(([^)]*)\)", head).group(1).split()) - {"\\Recent"}  # type: ignore[union-attr]
            date = re.search(r'INTERNALDATE "([^"]+)"', head).group(1)  # type: ignore[union-attr]
            found[uid] = (flags, datetime.strptime(date, "%d-%b-%Y %H:%M:%S %z").timestamp(), item[1])
    client.close()
    return int(numbers["UIDVALIDITY"]), int(numbers["UIDNEXT"]), found


def _message(n: int, subject: str) -> bytes:
    return (f"From: Ann <ann@example.com>\r\nTo: dove@example.com\r\nSubject: {subject}\r\n"
            f"Message-ID: <{n}.{subject.replace(' ', '.')}@example.com>\r\n\r\nbody {n}\r\nmore\r\n").encode()


def _date(ts: int) -> str:
    return imaplib.Time2Internaldate(ts)


@pytest.fixture
def imap(sora_server: Callable[..., Any]) -> Any:
    return sora_server(plugins=["imap"])


def test_dovecot_maildir_imports_with_the_same_uids_flags_and_dates(dovecot: Dovecot, imap: Any) -> None:
    user = "dove@example.com"
    with smtplib.LMTP("127.0.0.1", dovecot.lmtp_port, timeout=30) as lmtp:
        for n in range(1, 5):
            lmtp.sendmail("ann@example.com", [user], _message(n, f"delivered {n}"))
    client = dovecot.imap(user)
    for name in ("Sent", "Sent.2024", "&AMk-t&AOk-"):
        assert client.create(name)[0] == "OK"
    client.append("Sent", r"(\Seen \Answered)", _date(1_600_000_000), _message(10, "sent"))
    client.append("Sent.2024", r"(\Seen $Forwarded Work)", _date(1_600_000_100), _message(11, "archived"))
    client.append("Sent.2024", r"(\Draft)", _date(1_600_000_200), _message(12, "draft"))
    client.append("&AMk-t&AOk-", None, _date(1_600_000_300), _message(13, "accented"))
    client.select("INBOX")
    client.uid("STORE", "1", "+FLAGS", r"(\Seen $Label1)")
    client.uid("STORE", "2", "+FLAGS", r"(\Flagged \Deleted)")
    client.uid("STORE", "3", "+FLAGS", r"(\Deleted)")
    client.uid("EXPUNGE", "3")
    client.uid("STORE", "4", "+FLAGS", r"(Junk $Label1)")
    client.unselect()  # CLOSE would expunge UID 2
    client.subscribe("Sent.2024")
    client.subscribe("&AMk-t&AOk-")
    mailboxes = {"INBOX": "INBOX", "Sent": "Sent", "Sent.2024": "Sent/2024", "&AMk-t&AOk-": "&AMk-t&AOk-"}
    expected = {name: view(client, name) for name in mailboxes}
    client.logout()
    assert sorted(expected["INBOX"][2]) == [1, 2, 4]

    account = imap.create_account(user, "secret")
    report = imap.call(import_maildir, imap.store, account.id, ImportOptions(dovecot.mail / user, preserve_uids=True))
    assert report.skipped == [], summary_lines(report, "imported")
    assert report.done == 7
    sora = imaplib.IMAP4("127.0.0.1", imap.port("imap"), timeout=30)
    sora.login(user, "secret")
    try:
        for dovecot_name, sora_name in mailboxes.items():
            assert view(sora, sora_name) == expected[dovecot_name], dovecot_name
        status, listed = sora.lsub('""', '"*"')
        assert status == "OK"
        subscribed = {line.decode().rsplit(" ", 1)[-1].strip('"') for line in listed if isinstance(line, bytes)}
        assert {"Sent/2024", "&AMk-t&AOk-"} <= subscribed
    finally:
        sora.logout()


def test_sora_export_reads_back_in_dovecot_with_the_same_uids(dovecot: Dovecot, imap: Any) -> None:
    user = "back@example.com"
    account = imap.create_account(user, "secret")
    sora = imaplib.IMAP4("127.0.0.1", imap.port("imap"), timeout=30)
    sora.login(user, "secret")
    try:
        sora.create("Sent/2024")
        sora.create("&AMk-t&AOk-")
        sora.subscribe("Sent/2024")
        for n in range(1, 6):
            sora.append("INBOX", None, _date(1_650_000_000 + n), _message(n, f"inbox {n}"))
        sora.append("Sent/2024", r"(\Seen $Forwarded Work)", _date(1_650_000_100), _message(20, "archived"))
        sora.append("&AMk-t&AOk-", r"(\Answered \Draft)", _date(1_650_000_200), _message(21, "accented"))
        sora.select("INBOX")
        sora.uid("STORE", "1", "+FLAGS", r"(\Seen $Label1)")
        sora.uid("STORE", "2", "+FLAGS", r"(\Flagged \Deleted)")
        sora.uid("STORE", "3", "+FLAGS", r"(\Deleted)")
        sora.uid("EXPUNGE", "3")
        sora.unselect()
        mailboxes = {"INBOX": "INBOX", "Sent/2024": "Sent.2024", "&AMk-t&AOk-": "&AMk-t&AOk-"}
        expected = {name: view(sora, name) for name in mailboxes}
    finally:
        sora.logout()
    home = dovecot.mail / user
    report = imap.call(export_maildir, imap.store, account.id, ExportOptions(home, dovecot_uidlist=True))
    assert report.skipped == [], summary_lines(report, "exported")
    subprocess.run(["chown", "-R", "vmail:vmail", str(home)], check=True)
    client = dovecot.imap(user)
    try:
        for sora_name, dovecot_name in mailboxes.items():
            assert view(client, dovecot_name) == expected[sora_name], (sora_name, dovecot.log())
        status, listed = client.lsub('""', '"*"')
        assert status == "OK" and any(b"Sent.2024" in line for line in listed if isinstance(line, bytes))
    finally:
        client.logout()
