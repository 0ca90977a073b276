"""UTF8=ACCEPT (RFC 6855) as transcripts."""

from __future__ import annotations


def test_utf8_accept_names_and_append(raw, account):
    client = raw()
    client.login(*account)
    message = "Subject: Grüße\r\nFrom: Jörg <jörg@example.org>\r\n\r\nbody\r\n".encode()
    # section 4: the UTF8 APPEND data extension only after ENABLE UTF8=ACCEPT
    client.send(b"a APPEND INBOX UTF8 (~{%d+}\r\n" % len(message) + message + b")\r\n")
    assert client.until(b"a") == b"a BAD APPEND UTF8 needs ENABLE UTF8=ACCEPT.\r\n"
    assert client.cmd(b"b ENABLE UTF8=ACCEPT") == b"* ENABLED UTF8=ACCEPT\r\nb OK Enable completed.\r\n"
    # section 3: mailbox names are UTF-8, "&" is just a character
    assert client.cmd('c CREATE "Café"'.encode()).startswith(b"c OK")
    assert client.cmd(b'd CREATE "Tom&Jerry"').startswith(b"d OK")
    assert client.cmd(b'e LIST "" "Caf*"') == '* LIST (\\HasNoChildren) "/" "Café"\r\ne OK List completed.\r\n'.encode()
    client.send(b'f APPEND "Caf\xc3\xa9" UTF8 (~{%d+}\r\n' % len(message) + message + b")\r\n")
    assert client.until(b"f").startswith(b"f OK [APPENDUID")
    assert client.cmd('g STATUS "Café" (MESSAGES)'.encode()) == (
        '* STATUS "Café" (MESSAGES 1)\r\ng OK Status completed.\r\n'.encode())
    # a session without UTF8=ACCEPT sees the same mailboxes in modified UTF-7
    other = raw()
    other.login(*account)
    assert other.cmd(b'h LIST "" "Caf*"') == b'* LIST (\\HasNoChildren) "/" Caf&AOk-\r\nh OK List completed.\r\n'
    assert other.cmd(b'i LIST "" "Tom*"') == b'* LIST (\\HasNoChildren) "/" Tom&-Jerry\r\ni OK List completed.\r\n'
    other.cmd(b"j SELECT Caf&AOk-")
    out = other.cmd(b"k FETCH 1 (BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    assert "Subject: Grüße".encode() in out
    assert b" UTF8=ACCEPT" in other.cmd(b"l CAPABILITY")
