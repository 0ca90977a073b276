"""LIST (SUBSCRIBED RECURSIVEMATCH): parents of subscribed mailboxes come with
``("CHILDINFO" ("SUBSCRIBED"))`` (RFC 5258 3.5, RFC 9051 6.3.9.1)."""

from __future__ import annotations

import re


def _created(out: bytes, tag: bytes) -> bool:
    """CREATE answered OK with its MAILBOXID (RFC 8474 4.1)."""
    return re.fullmatch(re.escape(tag) + rb" OK \[MAILBOXID \(M\d+\)\] Create completed\.\r\n", out) is not None



def test_recursivematch_lists_parents_of_subscribed_mailboxes(session):
    assert _created(session.cmd(b"a CREATE r/s"), b"a")
    assert session.cmd(b"b SUBSCRIBE r/s") == b"b OK Subscribe completed.\r\n"
    assert session.cmd(b'c LIST (SUBSCRIBED RECURSIVEMATCH) "" "r"') == (
        b'* LIST () "/" r ("CHILDINFO" ("SUBSCRIBED"))\r\nc OK List completed.\r\n')
    assert session.cmd(b'd LIST (SUBSCRIBED RECURSIVEMATCH) "" "%"') == (
        b'* LIST (\\Subscribed) "/" INBOX\r\n'
        b'* LIST (\\Subscribed \\Archive) "/" Archive\r\n'
        b'* LIST (\\Subscribed \\Drafts) "/" Drafts\r\n'
        b'* LIST (\\Subscribed \\Junk) "/" Junk\r\n'
        b'* LIST (\\Subscribed \\Sent) "/" Sent\r\n'
        b'* LIST (\\Subscribed \\Trash) "/" Trash\r\n'
        b'* LIST () "/" r ("CHILDINFO" ("SUBSCRIBED"))\r\nd OK List completed.\r\n')
    # without RECURSIVEMATCH the unsubscribed parent is not listed (unlike LSUB's \Noselect)
    assert session.cmd(b'e LIST (SUBSCRIBED) "" "r"') == b"e OK List completed.\r\n"
    assert session.cmd(b'f LSUB "" "r%"') == b'* LSUB (\\Noselect) "/" r\r\nf OK Lsub completed.\r\n'
    # a subscribed parent meets the selection itself: \Subscribed, no CHILDINFO (RFC 5258 3.5, as Dovecot)
    assert session.cmd(b"g SUBSCRIBE r") == b"g OK Subscribe completed.\r\n"
    assert session.cmd(b'h LIST (SUBSCRIBED RECURSIVEMATCH) "" "r"') == (
        b'* LIST (\\Subscribed) "/" r\r\nh OK List completed.\r\n')
    assert session.cmd(b'i LIST (SUBSCRIBED RECURSIVEMATCH) "" "r*"') == (
        b'* LIST (\\Subscribed) "/" r\r\n'
        b'* LIST (\\Subscribed) "/" r/s\r\ni OK List completed.\r\n')
    assert session.cmd(b'j LIST (SUBSCRIBED RECURSIVEMATCH) "" "r" RETURN (CHILDREN)') == (
        b'* LIST (\\Subscribed \\HasChildren) "/" r\r\nj OK List completed.\r\n')


def test_recursivematch_with_deep_and_nonexistent_subscriptions(session):
    session.cmd(b"a CREATE p/q/r")
    session.cmd(b"b SUBSCRIBE p/q/r")
    session.cmd(b"c SUBSCRIBE gone/child")  # subscriptions may name mailboxes that do not exist
    assert session.cmd(b'd LIST (SUBSCRIBED RECURSIVEMATCH) "" "p/%"') == (
        b'* LIST () "/" p/q ("CHILDINFO" ("SUBSCRIBED"))\r\nd OK List completed.\r\n')
    assert session.cmd(b'e LIST (SUBSCRIBED RECURSIVEMATCH) "" "p"') == (
        b'* LIST () "/" p ("CHILDINFO" ("SUBSCRIBED"))\r\ne OK List completed.\r\n')
    assert session.cmd(b'f LIST (SUBSCRIBED RECURSIVEMATCH) "" "gone*"') == (
        b'* LIST (\\NonExistent) "/" gone ("CHILDINFO" ("SUBSCRIBED"))\r\n'
        b'* LIST (\\Subscribed \\NonExistent) "/" gone/child\r\nf OK List completed.\r\n')
    # several patterns: each name once
    assert session.cmd(b'g LIST (SUBSCRIBED RECURSIVEMATCH) "" (p p/q "p/%")') == (
        b'* LIST () "/" p ("CHILDINFO" ("SUBSCRIBED"))\r\n'
        b'* LIST () "/" p/q ("CHILDINFO" ("SUBSCRIBED"))\r\ng OK List completed.\r\n')
