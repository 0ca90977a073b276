"""The kernel's Sieve script store: one active script per account, limits, vacation once per period."""

from __future__ import annotations

import pytest

from sora_kernel.errors import ActiveScript, AlreadyExists, LimitExceeded, NotFound


def test_scripts_put_activate_rename_delete(kernel_server) -> None:
    srv = kernel_server
    sieve = srv.store.sieve
    account = srv.create_account("s@example.com")
    other = srv.create_account("o@example.com")
    srv.call(sieve.put_script, account.id, "main", "keep;")
    srv.call(sieve.put_script, account.id, "spare", "discard;")
    assert srv.call(sieve.get_active_script, account.id) is None
    srv.call(sieve.activate, account.id, "main")
    assert srv.call(sieve.get_active_script, account.id).name == "main"
    srv.call(sieve.activate, account.id, "spare")
    assert [(s.name, s.active) for s in srv.call(sieve.list_scripts, account.id)] == [
        ("main", False), ("spare", True)]
    srv.call(sieve.put_script, account.id, "spare", "stop;")  # replacing keeps it active
    active = srv.call(sieve.get_active_script, account.id)
    assert (active.name, active.script) == ("spare", "stop;")
    assert srv.call(sieve.total_size, account.id) == len("keep;") + len("stop;")
    with pytest.raises(ActiveScript):
        srv.call(sieve.delete_script, account.id, "spare")
    with pytest.raises(NotFound):
        srv.call(sieve.activate, account.id, "nope")
    with pytest.raises(AlreadyExists):
        srv.call(sieve.rename_script, account.id, "main", "spare")
    srv.call(sieve.rename_script, account.id, "spare", "live")
    assert srv.call(sieve.get_active_script, account.id).name == "live"
    srv.call(sieve.activate, account.id, None)
    assert srv.call(sieve.get_active_script, account.id) is None
    srv.call(sieve.delete_script, account.id, "live")
    assert [s.name for s in srv.call(sieve.list_scripts, account.id)] == ["main"]
    assert srv.call(sieve.list_scripts, other.id) == []
    assert srv.call(sieve.get_script, other.id, "main") is None  # nothing crosses accounts


def test_script_count_limit(kernel_server) -> None:
    srv = kernel_server
    account = srv.create_account("l@example.com")
    srv.call(srv.store.sieve.put_script, account.id, "a", "keep;", max_scripts=1)
    srv.call(srv.store.sieve.put_script, account.id, "a", "stop;", max_scripts=1)  # replace is fine
    with pytest.raises(LimitExceeded):
        srv.call(srv.store.sieve.put_script, account.id, "b", "keep;", max_scripts=1)


def test_vacation_once_per_period(kernel_server) -> None:
    srv = kernel_server
    sieve = srv.store.sieve
    account = srv.create_account("v@example.com")
    assert srv.call(sieve.vacation_due, account.id, "Friend@Example.com", "", 3600) is True
    assert srv.call(sieve.vacation_due, account.id, "friend@example.com", "", 3600) is False
    assert srv.call(sieve.vacation_due, account.id, "friend@example.com", "other-handle", 3600) is True
    assert srv.call(sieve.vacation_due, account.id, "friend@example.com", "", 0) is True  # period over
