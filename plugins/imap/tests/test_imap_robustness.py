"""Robustness transcripts: internal failures of a command are answered and logged, never a
dropped connection; unsupported syntax is a BAD."""

from __future__ import annotations

import pytest

from sora_kernel.api import TemporaryStoreError, hookimpl

MESSAGE = b"From: a@example.org\r\nSubject: robust\r\n\r\nbody\r\n"


class FailingCommands:
    """An in-process plugin with IMAP commands that fail the ways real code can."""

    @hookimpl
    def sora_imap_commands(self, kernel):
        async def boom(session, tag, data):
            session.send(b"* OK about to fail\r\n")
            raise RuntimeError("boom")

        async def transient(session, tag, data):
            raise TemporaryStoreError("database unavailable: test")

        async def wrong_type(session, tag, data):
            return "not bytes"

        async def fine(session, tag, data):
            return session.tagged(tag, "OK", "Fine.")

        return {"XBOOM": boom, "XTRANSIENT": transient, "XWRONG": wrong_type, "XFINE": fine}


@pytest.fixture
def failing_server(sora_server):
    server = sora_server(plugins=["imap"], extra_plugins=[("failing", FailingCommands())])
    server.create_account("r@example.com", "pw")
    return server


def test_internal_error_in_a_command_is_answered_and_logged(failing_server, raw, caplog):
    client = raw(failing_server.port("imap"))
    client.login("r@example.com", "pw")
    assert client.cmd(b"a XBOOM") == b"* OK about to fail\r\na NO [SERVERBUG] Internal error.\r\n"
    assert client.cmd(b"b NOOP") == b"b OK NOOP completed.\r\n"
    assert client.cmd(b"c XTRANSIENT") == b"c NO [UNAVAILABLE] Temporary storage failure, try again later.\r\n"
    # a handler breaking the contract (no bytes) does not poison the output queue either
    assert client.cmd(b"d XWRONG") == b"d NO [SERVERBUG] Internal error.\r\n"
    assert client.cmd(b"e XFINE") == b"e OK Fine.\r\n"
    logged = caplog.text
    assert "imap command failed" in logged
    assert "XBOOM" in logged and "RuntimeError: boom" in logged
    assert "XTRANSIENT" in logged and "TemporaryStoreError" in logged


def test_internal_error_in_selected_state_keeps_the_mailbox(failing_server, raw):
    client = raw(failing_server.port("imap"))
    client.login("r@example.com", "pw")
    client.send(b"A APPEND INBOX {%d+}\r\n" % len(MESSAGE) + MESSAGE + b"\r\n")
    assert client.until(b"A").startswith(b"A OK [APPENDUID ")
    assert client.cmd(b"s SELECT INBOX").endswith(b"s OK [READ-WRITE] Select completed.\r\n")
    # ten failures in a row are not "bad commands": the session is not cut off
    for n in range(12):
        tag = b"f%d" % n
        assert client.cmd(tag + b" XBOOM") == b"* OK about to fail\r\n" + tag + b" NO [SERVERBUG] Internal error.\r\n"
    assert client.cmd(b"g FETCH 1 (UID)") == b"* 1 FETCH (UID 1)\r\ng OK Fetch completed.\r\n"
    assert client.cmd(b"h LOGOUT") == b"* BYE Logging out.\r\nh OK Logout completed.\r\n"


def test_empty_saved_search_result_is_accepted_everywhere(session):
    """SEARCHRES (RFC 5182): ``$`` is valid in every command that takes a set; before any
    SEARCH ... SAVE it is empty, so nothing is touched."""
    session.send(b"A APPEND INBOX {%d+}\r\n" % len(MESSAGE) + MESSAGE + b"\r\n")
    session.until(b"A")
    session.cmd(b"s SELECT INBOX")
    commands = [
        (b"SEARCH $", b"* SEARCH\r\n"), (b"UID SEARCH UID $", b"* SEARCH\r\n"),
        (b"SEARCH NOT $", b"* SEARCH 1\r\n"), (b"SEARCH OR 1 $", b"* SEARCH 1\r\n"),
        (b"FETCH $ (UID)", b""), (b"UID FETCH $ (UID)", b""), (b"STORE $ +FLAGS (x)", b""),
        (b"UID STORE $ +FLAGS (x)", b""), (b"COPY $ INBOX", b""), (b"UID MOVE $ Trash", b""),
        (b"UID EXPUNGE $", b""),
    ]
    for n, (command, untagged) in enumerate(commands):
        tag = b"t%d" % n
        out = session.cmd(tag + b" " + command)
        assert out.startswith(untagged) and out.splitlines()[-1].startswith(tag + b" OK"), (command, out)
        assert b"FETCH" not in out.removeprefix(untagged)
