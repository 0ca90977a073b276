"""A server with ``[storage] backend = "s3"``: delivered over LMTP, fetched over IMAP, S3 outage included."""

from __future__ import annotations

import imaplib
import smtplib
from collections.abc import Callable

from s3_support import ADDRESS, PASSWORD, MotoS3, counter, message, status, uploaded_all, wait_for

from sora_kernel.testing import SoraTestServer

PLUGINS = ("s3", "lmtp", "imap")


def _deliver(server: SoraTestServer, raws: list[bytes]) -> list[tuple[int, bytes]]:
    """Send each message in its own LMTP transaction; returns (code, text) per message."""
    replies = []
    with smtplib.LMTP("127.0.0.1", server.port("lmtp")) as lmtp:
        lmtp.ehlo("mta.example.org")
        for raw in raws:
            lmtp.mail("bob@example.org")
            code, _ = lmtp.rcpt(ADDRESS)
            assert code == 250
            replies.append(lmtp.data(raw))
    return replies


def _same(bodies: list[bytes], raws: list[bytes]) -> bool:
    """Stored messages are the delivered ones with the trace fields (Return-Path, Received) on top."""
    return len(bodies) == len(raws) and all(b.endswith(r) and b.startswith(b"Return-Path:")
                                            for b, r in zip(bodies, raws, strict=True))


def _fetch_all(server: SoraTestServer) -> tuple[str, list[bytes]]:
    with imaplib.IMAP4("127.0.0.1", server.port("imap")) as imap:
        imap.login(ADDRESS, PASSWORD)
        imap.select("INBOX")
        typ, data = imap.uid("FETCH", "1:*", "(BODY.PEEK[])")
        bodies = [part[1] for part in data if isinstance(part, tuple)]
        return typ, bodies


def _fetch_one(server: SoraTestServer, uid: int) -> tuple[str, list[object]]:
    with imaplib.IMAP4("127.0.0.1", server.port("imap")) as imap:
        imap.login(ADDRESS, PASSWORD)
        imap.select("INBOX")
        try:
            return imap.uid("FETCH", str(uid), "(BODY.PEEK[])")
        except imaplib.IMAP4.error as exc:
            return "NO", [str(exc).encode()]


def test_lmtp_delivery_and_imap_fetch_warm_and_cold(s3_server: Callable[..., SoraTestServer],
                                                     moto_s3: MotoS3) -> None:
    server = s3_server(plugins=PLUGINS)
    raws = [message(f"m{i}", size=i * 3000) for i in range(5)]
    assert [code for code, _ in _deliver(server, raws)] == [250] * 5
    uploaded_all(server)
    assert len(moto_s3.keys(server.kernel.blobs.settings.bucket)) == 5
    typ, bodies = _fetch_all(server)
    assert typ == "OK" and _same(bodies, raws)
    assert counter(server, "sora_s3_reads_total", source="s3") == 0
    server.kernel.blobs.cache.purge()
    typ, bodies = _fetch_all(server)
    assert typ == "OK" and _same(bodies, raws)
    assert counter(server, "sora_s3_reads_total", source="s3") == 5


def test_s3_outage_deliveries_spool_reads_fail_temporarily_and_uploads_finish_after(
        s3_server: Callable[..., SoraTestServer], moto_s3: MotoS3) -> None:
    server = s3_server(plugins=PLUGINS)
    before = [message(f"before{i}") for i in range(3)]
    assert [code for code, _ in _deliver(server, before)] == [250] * 3
    uploaded_all(server)
    server.kernel.blobs.cache.purge()  # uid 1..3 now live only in S3

    moto_s3.stop()
    during = [message(f"during{i}", size=5000) for i in range(10)]
    assert [code for code, _ in _deliver(server, during)] == [250] * 10  # accepted into the spool
    wait_for(lambda: counter(server, "sora_s3_uploads_total", result="retry") >= 1, what="a failed upload")
    assert status(server).pending == 10
    typ, data = _fetch_one(server, 1)  # only in S3: a temporary failure, and the session goes on
    assert typ == "NO" and b"UNAVAILABLE" in data[0], data
    typ, data = _fetch_one(server, 4)  # in the spool: readable
    assert typ == "OK" and _same([data[0][1]], [during[0]])

    moto_s3.start()
    uploaded_all(server, timeout=30)
    assert len(moto_s3.keys(server.kernel.blobs.settings.bucket)) == 13
    server.kernel.blobs.cache.purge()
    typ, bodies = _fetch_all(server)
    assert typ == "OK" and _same(bodies, before + during)  # nothing acknowledged was lost


def test_the_staging_limit_turns_deliveries_into_temporary_failures(
        s3_server: Callable[..., SoraTestServer], moto_s3: MotoS3) -> None:
    server = s3_server(plugins=PLUGINS, max_staging="20KiB")
    moto_s3.stop()
    raws = [message(f"s{i}", size=6000) for i in range(6)]
    replies = _deliver(server, raws)
    codes = [code for code, _ in replies]
    accepted = [raw for raw, code in zip(raws, codes, strict=True) if code == 250]
    assert 2 <= len(accepted) < 6
    assert set(codes[len(accepted):]) == {452}, replies  # the MTA keeps the rest and retries
    moto_s3.start()
    uploaded_all(server, timeout=30)
    typ, bodies = _fetch_all(server)
    assert typ == "OK" and _same(bodies, accepted)
    assert [code for code, _ in _deliver(server, raws[len(accepted):])] == [250] * (6 - len(accepted))


def test_pop3_retr_of_a_body_only_in_s3_while_it_is_down_is_a_temporary_error(
        s3_server: Callable[..., SoraTestServer], moto_s3: MotoS3) -> None:
    import poplib

    server = s3_server(plugins=("s3", "lmtp", "pop3"))
    raws = [message("p1"), message("p2")]
    assert [code for code, _ in _deliver(server, raws)] == [250, 250]
    uploaded_all(server)
    server.kernel.blobs.cache.purge()
    moto_s3.stop()
    pop = poplib.POP3("127.0.0.1", server.port("pop3"), timeout=10)
    try:
        pop.user(ADDRESS)
        pop.pass_(PASSWORD)
        try:
            pop.retr(1)
            raise AssertionError("RETR succeeded with S3 down and nothing cached")
        except poplib.error_proto as exc:
            assert exc.args[0].startswith(b"-ERR [SYS/TEMP]"), exc
        assert pop.stat()[0] == 2  # the session goes on
        moto_s3.start()
        wait_for(lambda: not server.kernel.blobs.breakers["get"].refusing(), what="the breaker to allow a probe")
        _, lines, _ = pop.retr(1)
        assert b"\r\n".join(lines).endswith(raws[0].rstrip(b"\r\n"))
    finally:
        pop.quit()


def test_an_imap_login_warms_the_cache_with_the_newest_inbox_messages(
        s3_server: Callable[..., SoraTestServer]) -> None:
    server = s3_server(plugins=PLUGINS, warmup=True, warmup_messages=2)
    raws = [message(f"w{i}") for i in range(3)]
    assert [code for code, _ in _deliver(server, raws)] == [250] * 3
    uploaded_all(server)
    cache = server.kernel.blobs.cache
    cache.purge()
    with imaplib.IMAP4("127.0.0.1", server.port("imap")) as imap:
        imap.login(ADDRESS, PASSWORD)
        wait_for(lambda: cache.stats()["entries"] == 2, what="the warm-up")
        assert counter(server, "sora_s3_reads_total", source="s3") == 2
        imap.select("INBOX")
        typ, data = imap.uid("FETCH", "2:3", "(BODY.PEEK[])")
        assert typ == "OK" and _same([p[1] for p in data if isinstance(p, tuple)], raws[1:])
        assert counter(server, "sora_s3_reads_total", source="s3") == 2  # both served from the cache
