"""Deliveries per second over LMTP with no Sieve, Sieve without a script, and a 50-rule script.

Not collected by ``make test`` (a benchmark, not a test); run it explicitly:
``.venv/bin/python -m pytest -q -s plugins/sieve/tools/bench_sieve.py`` (same load as ``sora bench
lmtp``: the LMTP plugin's ``run_bench``, 600 messages over 4 connections after a warm-up).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from sora_plugin_lmtp.bench import run_bench


def _rule(i: int) -> str:
    if i % 3 == 0:
        return f'if header :contains "subject" "nomatch-{i}" {{ fileinto "F{i}"; stop; }}'
    if i % 3 == 1:
        return f'if address :is "from" "nobody{i}@example.net" {{ addflag "$x{i}"; fileinto "F{i}"; stop; }}'
    return f'if anyof (header :matches "x-list" "*list{i}*", envelope :domain :is "from" "d{i}.example") {{ discard; }}'


RULES = 'require ["fileinto", "envelope", "imap4flags"];\n' + "\n".join(_rule(i) for i in range(50))


def _bench(srv: Any) -> dict[str, Any]:
    port = srv.port("lmtp")
    asyncio.run(run_bench("127.0.0.1", port, ["a@example.com"], messages=50, concurrency=4))
    return asyncio.run(run_bench("127.0.0.1", port, ["a@example.com"], messages=600, concurrency=4, seed=7))


def test_bench(sora_server: Any) -> None:
    """Print one JSON line per setup."""
    out = {}
    srv = sora_server(plugins=["lmtp"])
    srv.create_account("a@example.com")
    out["no sieve plugin"] = _bench(srv)
    srv = sora_server(plugins=["lmtp", "sieve"], config={"sieve": {"before_script": ""}})
    srv.create_account("a@example.com")
    out["sieve, no script"] = _bench(srv)
    srv = sora_server(plugins=["lmtp", "sieve"], config={"sieve": {"before_script": ""}})
    account = srv.create_account("a@example.com")
    srv.call(srv.store.sieve.put_script, account.id, "rules", RULES)
    srv.call(srv.store.sieve.activate, account.id, "rules")
    out["sieve, 50-rule script"] = _bench(srv)
    for name, figures in out.items():
        assert figures["errors"] == 0
        print(json.dumps({"setup": name, **{k: figures[k] for k in ("delivered", "messages_per_s", "latency_ms")}}))
