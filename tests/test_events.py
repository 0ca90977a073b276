"""Change events with a kind (issue #14): the store's NOTIFY payloads, the hub's typed events, and the
generic channels, on a real PostgreSQL."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import asyncpg
import pytest
import structlog

from sora_kernel.errors import NotFound, TemporaryStoreError
from sora_kernel.events import (
    NOTIFY_CHANNEL,
    ChangeEvent,
    ChangeKind,
    EventHub,
    Subscription,
    check_channel,
    parse_change,
)
from sora_kernel.flags import DELETED, SEEN

K = ChangeKind
RAW = b"From: a@example.com\r\nSubject: hi\r\n\r\nbody\r\n"


# ---------------------------------------------------------------- the payload


@pytest.mark.parametrize(("payload", "event"), [
    ("new:1:2:3", ChangeEvent(K.MESSAGE_NEW, 1, 2, 3)),
    ("expunge:10:20:30", ChangeEvent(K.MESSAGE_EXPUNGE, 10, 20, 30)),
    ("flags:1:2:9223372036854775807", ChangeEvent(K.MESSAGE_FLAGS, 1, 2, 2**63 - 1)),
    ("create:1:5:1", ChangeEvent(K.MAILBOX_CREATE, 1, 5, 1)),
    ("rename:1:5:1", ChangeEvent(K.MAILBOX_RENAME, 1, 5, 1)),
    ("delete:1:5:7", ChangeEvent(K.MAILBOX_DELETE, 1, 5, 7)),
    ("subscription:1:0:0", ChangeEvent(K.SUBSCRIPTION, 1, 0, 0)),
    ("1:2:3", ChangeEvent(K.CHANGED, 1, 2, 3)),  # a node from before kinds (rolling upgrade)
    ("annotate:1:2:3", ChangeEvent(K.CHANGED, 1, 2, 3)),  # a kind from a newer node
])
def test_parse_change(payload: str, event: ChangeEvent) -> None:
    assert parse_change(payload) == event


@pytest.mark.parametrize("payload", [
    "", "garbage", "1:2", "new:1:2", "1:2:3:4", "new:1:2:3:4", "new:-1:2:3", "new: 1:2:3", "new:1:2:3 ",
    "new:+1:2:3", "new:1_0:2:3", "NEW:1:2:3", "new:1:2:x", "new:\u0661:2:3", "new:1:2:" + "9" * 20,
])
def test_parse_change_refuses_malformed(payload: str) -> None:
    with pytest.raises(ValueError):
        parse_change(payload)


def test_payload_round_trip_and_size() -> None:
    for kind in ChangeKind:
        event = ChangeEvent(kind, 2**63 - 1, 2**63 - 1, 2**63 - 1)
        assert parse_change(event.payload()) == event
        assert len(event.payload()) < 80  # NOTIFY allows 8000


@pytest.mark.parametrize("name", ["", "Sora", "1abc", "a-b", "a b", "a" * 64, "sora_changes", "é"])
def test_channel_names_checked(name: str) -> None:
    with pytest.raises(ValueError):
        check_channel(name)


def test_channel_name_accepted() -> None:
    assert check_channel("sora_kick") == "sora_kick"
    assert check_channel("a" * 63) == "a" * 63


# ---------------------------------------------------------------- subscriptions


def test_subscription_records_kinds_until_clear() -> None:
    async def scenario() -> None:
        sub = Subscription(max_events=2)
        assert not sub.pending and sub.kinds == frozenset() and sub.events == ()
        first = ChangeEvent(K.MESSAGE_NEW, 1, 2, 5)
        sub.notify(5, first)
        assert sub.pending and sub.last_modseq == 5
        assert await sub.wait(0)
        assert not sub.pending
        assert sub.events == (first,)  # wait only re-arms; the record stays for the reader
        sub.notify(6, ChangeEvent(K.MESSAGE_FLAGS, 1, 2, 6))
        sub.notify(7, ChangeEvent(K.MESSAGE_EXPUNGE, 1, 2, 7))
        assert sub.missed  # the oldest was dropped: the reader must resynchronise
        assert [e.modseq for e in sub.events] == [6, 7]
        assert sub.kinds == {K.MESSAGE_NEW, K.MESSAGE_FLAGS, K.MESSAGE_EXPUNGE}  # kinds are never dropped
        sub.clear()
        assert (sub.pending, sub.events, sub.kinds, sub.missed) == (False, (), frozenset(), False)
        assert sub.last_modseq == 7
        assert not await sub.wait(0.01)
        sub.notify(3)  # the old call, without an event, still wakes
        assert sub.pending and sub.last_modseq == 7 and sub.events == ()

    anyio.run(scenario)


def test_dispatch_reaches_each_subscriber_once() -> None:
    async def scenario() -> None:
        hub = EventHub()
        event = ChangeEvent(K.MESSAGE_NEW, 1, 2, 3)
        with hub.subscribe(mailbox_id=2, account_id=1) as both, hub.subscribe(mailbox_id=9) as other, \
                hub.subscribe(account_id=1) as account:
            hub.dispatch(event)
            assert both.events == (event,) and account.events == (event,)
            assert not other.pending
        assert not hub._mailboxes and not hub._accounts  # unsubscribed on leaving

    anyio.run(scenario)


# ---------------------------------------------------------------- the store's events


async def _expect(sub: Subscription, count: int, timeout: float = 10) -> list[ChangeEvent]:
    """Wait until ``count`` events are recorded, then return and clear them."""
    with anyio.fail_after(timeout):
        while len(sub.events) < count:
            await sub.wait()
    await anyio.sleep(0.05)  # anything more would be a bug: give it a moment to show up
    events = list(sub.events)
    sub.clear()
    return events


def test_each_change_has_its_event(sora_server) -> None:
    srv = sora_server()
    account = srv.create_account("ev@example.com")
    store = srv.store
    aid = account.id

    async def scenario() -> None:
        inbox = await store.get_mailbox(aid, "INBOX")
        with srv.kernel.events.subscribe(account_id=aid) as sub, \
                srv.kernel.events.subscribe(mailbox_id=inbox.id) as in_inbox:
            created = await store.create_mailbox(aid, "Work/Projects")
            parent = await store.get_mailbox(aid, "Work")
            assert sorted(await _expect(sub, 2), key=lambda e: e.mailbox_id) == [
                ChangeEvent(K.MAILBOX_CREATE, aid, parent.id, parent.highest_modseq),
                ChangeEvent(K.MAILBOX_CREATE, aid, created.id, created.highest_modseq)]

            appended = await store.append(aid, inbox.id, RAW)
            assert await _expect(sub, 1) == [ChangeEvent(K.MESSAGE_NEW, aid, inbox.id, appended.modseq)]
            await store.append(aid, inbox.id, RAW + b"2\r\n")
            await _expect(sub, 1)

            changed, _ = await store.store_flags(aid, inbox.id, [(1, 2)], "add", SEEN)
            assert len(changed) == 2  # two rows, one modseq, one notification
            assert await _expect(sub, 1) == [ChangeEvent(K.MESSAGE_FLAGS, aid, inbox.id, changed[0].modseq)]

            await store.copy(aid, inbox.id, [(1, 1)], created.id)
            box = await store.get_mailbox_by_id(created.id)
            assert await _expect(sub, 1) == [ChangeEvent(K.MESSAGE_NEW, aid, created.id, box.highest_modseq)]

            await store.store_flags(aid, inbox.id, [(1, 1)], "add", DELETED)
            await _expect(sub, 1)
            assert await store.expunge(aid, inbox.id) == [1]
            box = await store.get_mailbox_by_id(inbox.id)
            assert await _expect(sub, 1) == [ChangeEvent(K.MESSAGE_EXPUNGE, aid, inbox.id, box.highest_modseq)]

            await store.move(aid, inbox.id, [(2, 2)], created.id)
            source, target = await store.get_mailbox_by_id(inbox.id), await store.get_mailbox_by_id(created.id)
            assert sorted(await _expect(sub, 2), key=lambda e: e.kind) == [
                ChangeEvent(K.MESSAGE_EXPUNGE, aid, inbox.id, source.highest_modseq),
                ChangeEvent(K.MESSAGE_NEW, aid, created.id, target.highest_modseq)]
            # the INBOX-only subscriber heard INBOX's changes and nothing else
            assert {e.mailbox_id for e in in_inbox.events} == {inbox.id}
            assert in_inbox.kinds == {K.MESSAGE_NEW, K.MESSAGE_FLAGS, K.MESSAGE_EXPUNGE}
            in_inbox.clear()

            await store.subscribe(aid, "Work/Projects")
            await store.subscribe(aid, "Work")
            assert await _expect(sub, 2) == [ChangeEvent(K.SUBSCRIPTION, aid, 0, 0)] * 2
            await store.subscribe(aid, "Work")  # already subscribed: no change, no event
            await store.unsubscribe(aid, "Work")
            assert await _expect(sub, 1) == [ChangeEvent(K.SUBSCRIPTION, aid, 0, 0)]
            with pytest.raises(NotFound):
                await store.unsubscribe(aid, "Work")

            await store.rename_mailbox(aid, "Work", "Play")
            work, projects = await store.get_mailbox_by_id(parent.id), await store.get_mailbox_by_id(created.id)
            assert (work.name, projects.name) == ("Play", "Play/Projects")
            events = await _expect(sub, 3)  # two mailboxes renamed, their subscription moved
            assert sorted((e for e in events if e.kind is K.MAILBOX_RENAME), key=lambda e: e.mailbox_id) == [
                ChangeEvent(K.MAILBOX_RENAME, aid, parent.id, work.highest_modseq),
                ChangeEvent(K.MAILBOX_RENAME, aid, created.id, projects.highest_modseq)]
            assert [e for e in events if e.kind is K.SUBSCRIPTION] == [ChangeEvent(K.SUBSCRIPTION, aid, 0, 0)]

            before = await store.get_mailbox_by_id(created.id)
            await store.delete_mailbox(aid, "Play/Projects")
            assert await _expect(sub, 1) == [
                ChangeEvent(K.MAILBOX_DELETE, aid, created.id, before.highest_modseq + 1)]

            await store.append(aid, inbox.id, RAW)
            await _expect(sub, 1)
            in_inbox.clear()
            await store.rename_mailbox(aid, "INBOX", "Old")  # messages move to a new mailbox
            old = await store.get_mailbox(aid, "Old")
            inbox_now, old = await store.get_mailbox_by_id(inbox.id), await store.get_mailbox_by_id(old.id)
            events = await _expect(sub, 3)
            assert sorted(events, key=lambda e: e.kind) == sorted([
                ChangeEvent(K.MAILBOX_CREATE, aid, old.id, 1),
                ChangeEvent(K.MESSAGE_NEW, aid, old.id, old.highest_modseq),
                ChangeEvent(K.MESSAGE_EXPUNGE, aid, inbox.id, inbox_now.highest_modseq)], key=lambda e: e.kind)
            assert in_inbox.kinds == {K.MESSAGE_EXPUNGE}

    srv.call(scenario)


def test_new_account_announces_its_mailboxes(sora_server) -> None:
    srv = sora_server()
    first = srv.create_account("first@example.com")

    async def scenario() -> None:
        # account ids come from a sequence: the next account's id is the next value
        with srv.kernel.events.subscribe(account_id=first.id + 1) as sub:
            account = await srv.store.create_account("second@example.com", None)
            assert account.id == first.id + 1
            boxes = await srv.store.list_mailboxes(account.id)
            events = await _expect(sub, len(boxes) + 1)
        creates = {e.mailbox_id for e in events if e.kind is K.MAILBOX_CREATE}
        assert creates == {b.id for b in boxes}
        # one transaction: PostgreSQL folds the identical subscription payloads into one
        assert [e for e in events if e.kind is K.SUBSCRIPTION] == [ChangeEvent(K.SUBSCRIPTION, account.id, 0, 0)]

    srv.call(scenario)


def test_malformed_and_old_payloads_do_not_stop_the_listener(sora_server) -> None:
    srv = sora_server()
    account = srv.create_account("old@example.com")

    async def scenario() -> list[ChangeEvent]:
        inbox = await srv.store.get_mailbox(account.id, "INBOX")
        conn = await asyncpg.connect(srv.kernel.dsn)
        try:
            with srv.kernel.events.subscribe(mailbox_id=inbox.id) as sub:
                for payload in ("garbage", f"{account.id}:{inbox.id}", "new:x:y:z", "new:1:2:3:4",
                                f"{account.id}:{inbox.id}:42"):
                    await conn.execute("SELECT pg_notify($1, $2)", NOTIFY_CHANNEL, payload)
                first = await _expect(sub, 1)
                await srv.store.append(account.id, inbox.id, RAW)  # and the hub is still listening
                return first + await _expect(sub, 1)
        finally:
            await conn.close()

    with structlog.testing.capture_logs() as logs:
        events = srv.call(scenario)
    inbox = srv.call(srv.store.get_mailbox, account.id, "INBOX")
    assert events == [ChangeEvent(K.CHANGED, account.id, inbox.id, 42),
                      ChangeEvent(K.MESSAGE_NEW, account.id, inbox.id, inbox.highest_modseq)]
    ignored = [e["payload"] for e in logs if e["event"] == "malformed change notification ignored"]
    assert ignored == ["garbage", f"{account.id}:{inbox.id}", "new:x:y:z", "new:1:2:3:4"]


# ---------------------------------------------------------------- other channels


def _with_hubs(dsn: str, count: int, scenario: Callable[..., Awaitable[Any]]) -> Any:
    """Run ``count`` event hubs on one database (as on ``count`` nodes) around ``scenario(*hubs)``."""
    result: list[Any] = []

    async def main() -> None:
        hubs = [EventHub() for _ in range(count)]
        async with anyio.create_task_group() as tg:
            for hub in hubs:
                await tg.start(hub.run, dsn)
            with anyio.fail_after(30):
                result.append(await scenario(*hubs))
            tg.cancel_scope.cancel()

    anyio.run(main)
    return result[0]


def test_publish_reaches_listeners_on_every_hub(sora_dsn: str) -> None:
    async def scenario(a: EventHub, b: EventHub) -> None:
        async with b.listen("sora_kick") as on_b, a.listen("sora_kick") as on_a, \
                b.listen("sora_other") as other:
            await a.publish("sora_kick", "session 42")
            await b.publish("sora_kick", "ünïcode: " + "x" * 7000)
            for receiver in (on_b, on_a):
                first, second = await receiver.receive(), await receiver.receive()
                assert (first.channel, first.payload, first.pid) == ("sora_kick", "session 42", a.backend_pid)
                assert second.payload.startswith("ünïcode: ") and second.pid == b.backend_pid
            await a.publish("sora_other", "rate 10/s")
            async for message in other:
                assert message.payload == "rate 10/s"
                break
            assert on_a.dropped == on_b.dropped == 0
        assert not b._channels and not b._listening  # UNLISTENed on leaving
        # a channel listened on again after nobody was
        async with b.listen("sora_kick") as again:
            await a.publish("sora_kick", "back")
            assert (await again.receive()).payload == "back"

    _with_hubs(sora_dsn, 2, scenario)


def test_publish_refuses_bad_input_and_a_disconnected_hub(sora_dsn: str) -> None:
    async def scenario(hub: EventHub) -> None:
        with pytest.raises(ValueError):
            await hub.publish("Bad-Name", "x")
        with pytest.raises(ValueError):
            await hub.publish(NOTIFY_CHANNEL, "new:1:2:3")  # the store's channel
        with pytest.raises(ValueError):
            await hub.publish("sora_kick", "é" * 4000)  # 8000 bytes
        with pytest.raises(ValueError):
            await hub.publish("sora_kick", "a\x00b")
        with pytest.raises(ValueError):
            async with hub.listen("sora_changes"):
                pass
        with pytest.raises(TemporaryStoreError):
            await EventHub().publish("sora_kick", "nobody is connected")

    _with_hubs(sora_dsn, 1, scenario)


def test_full_receiver_drops_instead_of_blocking(sora_dsn: str) -> None:
    async def scenario(hub: EventHub) -> None:
        async with hub.listen("sora_burst", buffer=2) as slow, hub.listen("sora_burst") as fast:
            for n in range(5):
                await hub.publish("sora_burst", str(n))
            assert [(await fast.receive()).payload for _ in range(5)] == ["0", "1", "2", "3", "4"]
            assert [(await slow.receive()).payload for _ in range(2)] == ["0", "1"]
            assert slow.dropped == 3

    _with_hubs(sora_dsn, 1, scenario)


def test_reconnect_marks_subscriptions_missed_and_listens_again(sora_dsn: str) -> None:
    async def scenario(hub: EventHub, other: EventHub) -> None:
        async with hub.listen("sora_kick") as receiver:
            with hub.subscribe(account_id=1) as sub:
                lost = hub.backend_pid
                conn = await asyncpg.connect(sora_dsn)
                try:
                    await conn.execute("SELECT pg_terminate_backend($1)", lost)
                finally:
                    await conn.close()
                await sub.wait()  # woken when the hub is back: changes may have gone unheard
                assert sub.missed and sub.events == ()
                assert hub.backend_pid not in (None, lost)
                await other.publish("sora_kick", "after reconnect")
                assert (await receiver.receive()).payload == "after reconnect"
                conn = await asyncpg.connect(sora_dsn)
                try:
                    await conn.execute("SELECT pg_notify($1, $2)", NOTIFY_CHANNEL, "delete:1:7:9")
                finally:
                    await conn.close()
                await sub.wait()
                assert sub.events == (ChangeEvent(K.MAILBOX_DELETE, 1, 7, 9),)

    _with_hubs(sora_dsn, 2, scenario)
