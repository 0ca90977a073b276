"""Several sessions on one mailbox: EXISTS, FETCH and EXPUNGE at the moments RFC 3501 allows,
IDLE woken by changes committed elsewhere, with raw sockets, imaplib and imapclient."""

from __future__ import annotations

import imaplib
import socket
import time

from imapclient import IMAPClient

MESSAGE = b"From: a@example.org\r\nSubject: multi\r\n\r\nbody\r\n"


def _append(client, tag: bytes = b"A") -> bytes:
    client.send(tag + b" APPEND INBOX {%d+}\r\n" % len(MESSAGE) + MESSAGE + b"\r\n")
    return client.until(tag)


def test_updates_are_announced_only_when_allowed(raw, account):
    a, b = raw(), raw()
    a.login(*account)
    b.login(*account)
    a.cmd(b"s SELECT INBOX")
    _append(b, b"A1")
    _append(b, b"A2")
    _append(b, b"A3")
    assert a.cmd(b"n NOOP") == b"* 3 EXISTS\r\n* 3 RECENT\r\nn OK NOOP completed.\r\n"
    b.cmd(b"s SELECT INBOX")
    assert b.cmd(b"t STORE 1 +FLAGS (\\Seen)") == b"* 1 FETCH (FLAGS (\\Seen))\r\nt OK Store completed.\r\n"
    assert a.cmd(b"n NOOP") == b"* 1 FETCH (UID 1 FLAGS (\\Seen \\Recent))\r\nn OK NOOP completed.\r\n"
    b.cmd(b"t STORE 2 +FLAGS.SILENT (\\Deleted)")
    assert b.cmd(b"e EXPUNGE") == b"* 2 EXPUNGE\r\ne OK Expunge completed.\r\n"
    # no EXPUNGE during FETCH / STORE / SEARCH (UID variants included): numbers stay stable
    assert a.cmd(b"f FETCH 2:3 (UID FLAGS)") == (
        b"* 2 FETCH (UID 2 FLAGS (\\Deleted \\Recent))\r\n* 3 FETCH (UID 3 FLAGS (\\Recent))\r\n"
        b"f OK Fetch completed.\r\n"
    )
    assert a.cmd(b"g SEARCH ALL") == b"* SEARCH 1 3\r\ng OK Search completed.\r\n"
    assert a.cmd(b"h UID SEARCH ALL") == b"* SEARCH 1 3\r\nh OK Search completed.\r\n"
    assert a.cmd(b"i STORE 3 +FLAGS (\\Flagged)") == (
        b"* 3 FETCH (FLAGS (\\Flagged \\Recent))\r\ni OK Store completed.\r\n"
    )
    # b's APPEND to its selected mailbox reports a's flag change and claims the new message
    assert _append(b, b"A4").startswith(
        b"* 2 FETCH (UID 3 FLAGS (\\Flagged))\r\n* 3 EXISTS\r\n* 1 RECENT\r\nA4 OK [APPENDUID ")
    # new messages may be announced during FETCH; the expunge still waits
    assert a.cmd(b"j UID FETCH 4 UID") == b"* 4 EXISTS\r\n* 4 FETCH (UID 4)\r\nj OK Fetch completed.\r\n"
    # any other command may carry the EXPUNGE; afterwards the numbers shift
    assert a.cmd(b"k NOOP") == b"* 2 EXPUNGE\r\nk OK NOOP completed.\r\n"
    assert a.cmd(b"l FETCH 1:* UID") == (
        b"* 1 FETCH (UID 1)\r\n* 2 FETCH (UID 3)\r\n* 3 FETCH (UID 4)\r\nl OK Fetch completed.\r\n"
    )
    assert b.cmd(b"m FETCH 3 FLAGS") == b"* 3 FETCH (FLAGS (\\Recent))\r\nm OK Fetch completed.\r\n"


def test_idle_wakes_on_append_by_store_and_other_session(imap_server, raw, account):
    user, _ = account
    a, b = raw(), raw()
    a.login(*account)
    b.login(*account)
    a.cmd(b"s SELECT INBOX")
    a.send(b"i IDLE\r\n")
    assert a.line() == b"+ idling\r\n"
    owner = imap_server.call(imap_server.store.find_account, user)
    inbox = imap_server.call(imap_server.store.get_mailbox, owner.id, "INBOX")
    started = time.monotonic()
    imap_server.call(imap_server.store.append, owner.id, inbox.id, MESSAGE)
    assert a.line() == b"* 1 EXISTS\r\n"
    assert a.line() == b"* 1 RECENT\r\n"
    assert time.monotonic() - started < 5  # pushed by NOTIFY, not by the 2-minute keepalive
    b.cmd(b"s SELECT INBOX")
    b.cmd(b"t STORE 1 +FLAGS.SILENT (\\Answered)")
    assert a.line() == b"* 1 FETCH (UID 1 FLAGS (\\Answered \\Recent))\r\n"
    b.cmd(b"u STORE 1 +FLAGS.SILENT (\\Deleted)")
    assert a.line() == b"* 1 FETCH (UID 1 FLAGS (\\Answered \\Deleted \\Recent))\r\n"
    b.cmd(b"v EXPUNGE")
    assert a.line() == b"* 1 EXPUNGE\r\n"
    a.send(b"DONE\r\n")
    assert a.line() == b"i OK Idle completed.\r\n"
    # IDLE without a selected mailbox works too (keepalives only)
    a.cmd(b"x UNSELECT")
    a.send(b"j IDLE\r\n")
    assert a.line() == b"+ idling\r\n"
    a.send(b"done\r\n")
    assert a.line() == b"j OK Idle completed.\r\n"
    a.send(b"k IDLE\r\n")
    a.line()
    a.send(b"nope\r\n")
    assert a.line() == b"k BAD Expected DONE.\r\n"


def test_imaplib_two_connections(imap_server, account):
    port = imap_server.port("imap")
    with imaplib.IMAP4("127.0.0.1", port) as one, imaplib.IMAP4("127.0.0.1", port) as two:
        one.login(*account)
        two.login(*account)
        assert one.select("INBOX") == ("OK", [b"0"])
        typ, data = two.append("INBOX", "(\\Flagged)", None, MESSAGE)
        assert typ == "OK" and b"APPENDUID" in data[0]
        one.noop()
        assert one.response("EXISTS")[1][-1] == b"1"
        two.select("INBOX")
        two.store("1", "+FLAGS", "\\Deleted")
        two.expunge()
        typ, data = one.fetch("1", "(FLAGS)")
        assert typ == "OK" and b"\\Deleted" in data[0]
        one.noop()
        assert one.response("EXPUNGE") == ("EXPUNGE", [b"1"])
        assert one.search(None, "ALL") == ("OK", [b""])


def test_imapclient_idle_and_flags(imap_server, account):
    port = imap_server.port("imap")
    with IMAPClient("127.0.0.1", port=port, ssl=False) as watcher, \
            IMAPClient("127.0.0.1", port=port, ssl=False) as writer:
        watcher.login(*account)
        writer.login(*account)
        assert b"IDLE" in watcher.capabilities()
        watcher.select_folder("INBOX")
        watcher.idle()
        result = writer.append("INBOX", MESSAGE, flags=("$Important",))
        assert b"APPENDUID" in result
        responses = watcher.idle_check(timeout=5)
        assert (1, b"EXISTS") in responses
        watcher.idle_done()
        fetched = watcher.fetch([1], ["FLAGS", "ENVELOPE", "RFC822.SIZE"])
        assert fetched[1][b"FLAGS"] == (b"\\Recent", b"$Important")
        assert fetched[1][b"ENVELOPE"].subject == b"multi"
        assert fetched[1][b"RFC822.SIZE"] == len(MESSAGE)
        writer.select_folder("INBOX")
        writer.move([1], "Archive")
        watcher.idle()
        responses = watcher.idle_check(timeout=5)
        assert (1, b"EXPUNGE") in responses
        watcher.idle_done()
        assert watcher.folder_status("Archive", ["MESSAGES"]) == {b"MESSAGES": 1}
        folders = {name: (flags, delimiter) for flags, delimiter, name in watcher.list_folders()}
        assert folders["Sent"][0] == (b"\\HasNoChildren", b"\\Sent")
        assert watcher.find_special_folder(b"\\Trash") == "Trash"


def test_disconnect_mid_append_stores_nothing(imap_server, raw, account):
    a = raw()
    a.login(*account)
    a.send(b"a APPEND INBOX {1000+}\r\n" + b"x" * 500)
    a.sock.shutdown(socket.SHUT_RDWR)
    a.close()
    b = raw()
    b.login(*account)
    time.sleep(0.2)
    assert b.cmd(b"s STATUS INBOX (MESSAGES)") == b"* STATUS INBOX (MESSAGES 0)\r\ns OK Status completed.\r\n"


def test_idle_keepalive_idle_timeout_and_shutdown_goodbye(sora_server, raw):
    server = sora_server(plugins=["imap"], config={"imap": {"idle_keepalive": "0.3s", "idle_timeout": "1s"}})
    server.create_account("k@example.com", "pw")
    silent = raw(server.port("imap"))
    silent.login("k@example.com", "pw")
    client = raw(server.port("imap"))
    client.login("k@example.com", "pw")
    client.send(b"i IDLE\r\n")
    assert client.line() == b"+ idling\r\n"
    started = time.monotonic()
    assert client.line() == b"* OK Still here\r\n"
    # a silent authenticated client is cut off; IDLE is exempt from the idle timeout
    assert silent.line() == b"* BYE Idle timeout, closing connection.\r\n"
    while time.monotonic() - started < 1.5:
        assert client.line() == b"* OK Still here\r\n"
    server.portal.call(server.kernel.shutdown)
    line = client.line()
    while line == b"* OK Still here\r\n":
        line = client.line()
    assert line == b"* BYE Server shutting down\r\n"
    assert client.line() == b""


def test_imapclient_full_flow(imap_server, account):
    port = imap_server.port("imap")
    utf8 = (b"From: =?utf-8?q?J=C3=B6rg?= <jorg@example.org>\r\nTo: you@example.com\r\n"
            b"Subject: =?utf-8?b?SMOpbGxvIHfDtnJsZA==?=\r\nContent-Type: text/plain; charset=utf-8\r\n"
            b"Content-Transfer-Encoding: 8bit\r\n\r\nGr\xc3\xbc\xc3\x9fe aus K\xc3\xb6ln\r\n")
    with IMAPClient("127.0.0.1", port=port, ssl=False) as client:
        client.login(*account)
        assert client.namespace().personal == (("", "/"),)
        client.create_folder("Projects/Sora")
        assert client.folder_exists("Projects")
        client.subscribe_folder("Projects/Sora")
        assert "Projects/Sora" in [name for _, _, name in client.list_sub_folders()]
        client.rename_folder("Projects/Sora", "Projects/Kernel")
        client.append("Projects/Kernel", utf8, flags=(b"\\Seen",))
        client.append("Projects/Kernel", MESSAGE)
        client.select_folder("Projects/Kernel")
        assert client.search(["SUBJECT", "héllo"], charset="UTF-8") == [1]
        assert client.search(["BODY", "Köln"], charset="UTF-8") == [1]
        assert client.search(["FROM", "jorg"]) == [1]
        assert client.search(["UNSEEN"]) == [2]
        body = client.fetch([1], ["BODY[]", "BODY.PEEK[HEADER.FIELDS (SUBJECT)]"])[1]
        assert body[b"BODY[]"] == utf8
        assert body[b"BODY[HEADER.FIELDS (SUBJECT)]"] == b"Subject: =?utf-8?b?SMOpbGxvIHfDtnJsZA==?=\r\n\r\n"
        client.add_flags([1, 2], [b"$Done"])
        client.remove_flags([1], [b"\\Seen"])
        assert client.get_flags([1, 2]) == {1: (b"\\Recent", b"$Done"), 2: (b"\\Recent", b"$Done")}
        client.copy([1, 2], "INBOX")
        client.delete_messages([2])
        assert client.expunge()[1] == [(2, b"EXPUNGE")]
        client.unselect_folder()
        assert client.folder_status("INBOX", ["MESSAGES", "UNSEEN"]) == {b"MESSAGES": 2, b"UNSEEN": 2}
        client.select_folder("INBOX", readonly=True)
        assert len(client.fetch(client.search(), ["UID"])) == 2
        client.close_folder()
        client.delete_folder("Projects/Kernel")
        assert not client.folder_exists("Projects/Kernel")
        assert client.id_({"name": "imapclient"})[0][:2] == (b"name", b"Sora")
