"""PREVIEW (RFC 8970) as transcripts."""

from __future__ import annotations


def append(client, message: bytes, tag: bytes = b"A") -> bytes:
    client.send(tag + b" APPEND INBOX {%d+}\r\n" % len(message) + message + b"\r\n")
    return client.until(tag)


HTML = (
    b"Subject: h\r\nMIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=B\r\n\r\n"
    b"--B\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
    b"<html><head><style>p {}</style></head><body><p>Hello   <b>world</b>,</p>\r\n"
    b"<p>caf=C3=A9 time.</p></body></html>\r\n--B--\r\n"
)


def test_preview(session):
    """Section 3: the preview is plain text (no markup), decoded, white space folded, <= 256
    characters; section 4: PREVIEW (LAZY) may be answered the same way."""
    append(session, b"Subject: p\r\n\r\nFirst  line\r\n\tsecond line\r\n", b"A1")
    append(session, HTML, b"A2")
    append(session, b"Subject: long\r\n\r\n" + b"word " * 100 + b"\r\n", b"A3")
    append(session, b"Subject: empty\r\nContent-Type: image/png\r\nMIME-Version: 1.0\r\n\r\nAAAA\r\n", b"A4")
    session.cmd(b"a SELECT INBOX")
    assert session.cmd(b"b FETCH 1 (PREVIEW)") == (
        b'* 1 FETCH (PREVIEW "First line second line")\r\nb OK Fetch completed.\r\n')
    # the text the search index extracts: every tag becomes a space, so "</b>," gives " ,"
    text = "Hello world , café time.".encode()
    assert session.cmd(b"c FETCH 2 (PREVIEW (LAZY) UID)") == (
        b"* 2 FETCH (PREVIEW {%d}\r\n%s UID 2)\r\nc OK Fetch completed.\r\n" % (len(text), text))
    out = session.cmd(b"d FETCH 3 PREVIEW")
    preview = out.split(b'"')[1]
    assert len(preview) <= 256 and preview.startswith(b"word word") and not preview.endswith(b" ")
    assert session.cmd(b"e FETCH 4 (PREVIEW)") == b'* 4 FETCH (PREVIEW "")\r\ne OK Fetch completed.\r\n'
    # PREVIEW does not set \Seen
    assert session.cmd(b"f FETCH 1 (FLAGS)") == b"* 1 FETCH (FLAGS (\\Recent))\r\nf OK Fetch completed.\r\n"
