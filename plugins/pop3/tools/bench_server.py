"""Run a throw-away Sora with the pop3 plugin and a populated account, for ``sora bench pop3``.

Starts an embedded PostgreSQL in a temporary directory, stores ``--messages`` synthetic messages
in ``bench@example.com``'s INBOX (password ``bench``) and serves POP3 on ``--port`` until
interrupted. ``--maildir`` also writes the same messages as a Maildir, so Dovecot can be
measured on identical content (see the README).

    .venv/bin/python plugins/pop3/tools/bench_server.py --messages 10000 --port 11110
"""

from __future__ import annotations

import json
import random
import signal
import tempfile
import threading
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import anyio
import anyio.from_thread
import typer

from sora_kernel.kernel import Kernel
from sora_kernel.observability import configure_logging
from sora_kernel.testing import SoraTestServer, TestDatabase
from sora_kernel.testing.server import test_config

USER, PASSWORD = "bench@example.com", "bench"


def synthetic_message(rng: random.Random, number: int) -> bytes:
    """A plausible message: a dozen header fields and a text body of a realistic size mix."""
    roll = rng.random()
    if roll < 0.70:
        size = rng.randint(2_000, 8_000)
    elif roll < 0.95:
        size = rng.randint(10_000, 60_000)
    else:
        size = rng.randint(100_000, 500_000)
    header = (
        f"Return-Path: <sender{number % 97}@example.org>\r\n"
        f"Received: from mx.example.org by sora.test; Mon, 3 Mar 2025 10:{number % 60:02d}:00 +0000\r\n"
        f"From: Sender {number % 97} <sender{number % 97}@example.org>\r\n"
        f"To: {USER}\r\nSubject: Benchmark message {number}\r\n"
        f"Date: Mon, 3 Mar 2025 10:{number % 60:02d}:00 +0000\r\n"
        f"Message-ID: <bench.{number}@example.org>\r\nMIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n\r\n")
    words = ("lorem", "ipsum", "dolor", "sit", "amet", "consectetur", "adipiscing", "elit")
    lines: list[str] = []
    length = len(header)
    while length < size:
        line = " ".join(rng.choice(words) for _ in range(12))
        if rng.random() < 0.01:  # now and then a line that needs dot-stuffing
            line = "." + line
        lines.append(line)
        length += len(line) + 2
    return header.encode() + ("\r\n".join(lines) + "\r\n").encode()


def start_server(stack: ExitStack, database: TestDatabase, data_dir: Path, port: int,
                 use_uvloop: bool = True, tls: dict[str, str] | None = None) -> SoraTestServer:
    """Like the test fixture's server, but on uvloop as ``sora serve`` runs (when installed)."""
    dsn = database.create()
    stack.callback(database.drop, dsn)
    config, host = test_config(data_dir, dsn, ["pop3"], {
        "pop3": {"addr": f"127.0.0.1:{port}"}, "database": {"pool_max": 20}, "tls": tls or {}})
    options = {}
    if use_uvloop:
        try:
            import uvloop  # noqa: F401

            options = {"use_uvloop": True}
        except ImportError:
            pass
    portal = stack.enter_context(anyio.from_thread.start_blocking_portal("asyncio", options))
    kernel = Kernel(config, host)
    portal.call(kernel.start)
    stack.callback(portal.call, kernel.stop)

    async def run(*, task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
        await kernel.run(task_status=task_status)

    future, listeners = portal.start_task(run)
    stack.callback(lambda: (portal.call(kernel.shutdown), future.result(timeout=15)))
    return SoraTestServer(kernel, portal, listeners)


def main(
    messages: int = typer.Option(10_000, help="Messages to store."),
    port: int = typer.Option(11110, help="POP3 port on 127.0.0.1."),
    maildir: Path | None = typer.Option(None, help="Also write the messages as a Maildir here."),
    seed: int = typer.Option(1939, help="Random seed of the message mix."),
    uvloop: bool = typer.Option(True, help="Run the event loop on uvloop, as `sora serve` does."),
    cert: Path | None = typer.Option(None, help="PEM certificate: offer STLS."),
    key: Path | None = typer.Option(None, help="PEM key of --cert."),
) -> None:
    """Start, populate, serve until SIGINT/SIGTERM."""
    configure_logging(fmt="console", level="warning")
    rng = random.Random(seed)
    raws = [synthetic_message(rng, i) for i in range(messages)]
    if maildir is not None:
        for folder in ("cur", "new", "tmp"):
            (maildir / folder).mkdir(parents=True, exist_ok=True)
        for i, raw in enumerate(raws):
            (maildir / "cur" / f"{1_700_000_000 + i}.M{i}P1.bench,S={len(raw)}:2,").write_bytes(raw)
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with tempfile.TemporaryDirectory(prefix="sora-pop3-bench-") as tmp, ExitStack() as stack:
        database = TestDatabase()
        stack.callback(database.close)
        srv = start_server(stack, database, Path(tmp) / "data", port, uvloop,
                           {"cert_file": str(cert), "key_file": str(key)} if cert and key else None)
        account = srv.create_account(USER, PASSWORD)
        srv.call(srv.store.ensure_default_mailboxes, account.id)
        inbox = srv.call(srv.store.get_mailbox, account.id, "INBOX")

        async def populate() -> None:
            limit = anyio.Semaphore(16)

            async def one(raw: bytes) -> None:
                async with limit:
                    await srv.store.append(account.id, inbox.id, raw)

            async with anyio.create_task_group() as tg:
                for raw in raws:
                    tg.start_soon(one, raw)

        started = time.perf_counter()
        srv.call(populate)
        typer.echo(json.dumps({
            "ready": True, "port": srv.port("pop3"), "user": USER, "password": PASSWORD,
            "messages": messages, "octets": sum(len(r) for r in raws),
            "populate_seconds": round(time.perf_counter() - started, 2)}))
        raws.clear()  # the server process should not hold the corpus while measured
        while not stop.wait(0.5):
            pass


if __name__ == "__main__":
    typer.run(main)
