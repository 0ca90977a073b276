"""``sora bench imap``: login rate, APPEND rate, metadata and body FETCH throughput, SEARCH latency.

A small raw-socket client (asyncio streams) so the client's parsing cost stays out of the figures;
works against any IMAP server (Sora or Dovecot, for comparison). Prints JSON.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import ssl
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Annotated

import typer

_LITERAL = re.compile(rb"\{(\d+)\+?\}\r\n$")
_EXISTS = re.compile(rb"^\* (\d+) EXISTS", re.MULTILINE)
_WORDS = (
    "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india",
    "juliet", "kilo", "lima", "mike", "november", "oscar", "papa", "quebec", "romeo", "sierra",
    "tango", "uniform", "victor", "whiskey", "xray", "yankee", "zulu", "mail", "server",
    "storage", "meeting", "report", "invoice", "schedule", "project", "review", "budget",
    "quarterly", "update", "release", "notes",
)  # fmt: skip


@dataclass
class Response:
    """A tagged status with the untagged data that preceded it."""

    status: bytes
    data: bytes
    untagged: int = 0
    elapsed: float = 0.0
    size: int = 0


@dataclass
class Client:
    """One IMAP connection speaking just enough of the protocol for the benchmark."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    counter: int = 0
    literal_plus: bool = field(default=False)

    @classmethod
    async def connect(cls, host: str, port: int, use_tls: bool) -> Client:
        """Open the connection and read the greeting."""
        context = None
        if use_tls:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        reader, writer = await asyncio.open_connection(host, port, ssl=context, limit=2**24)
        client = cls(reader, writer)
        greeting = await reader.readline()
        client.literal_plus = b"LITERAL+" in greeting
        return client

    async def command(self, text: bytes, literal: bytes | None = None) -> Response:
        """Send one command (with an optional trailing literal) and read until its tagged reply."""
        self.counter += 1
        tag = b"b%d" % self.counter
        started = time.perf_counter()
        if literal is None:
            self.writer.write(tag + b" " + text + b"\r\n")
        elif self.literal_plus:
            self.writer.write(tag + b" " + text + b" {%d+}\r\n" % len(literal) + literal + b"\r\n")
        else:
            self.writer.write(tag + b" " + text + b" {%d}\r\n" % len(literal))
            await self.writer.drain()
            line = await self.reader.readline()
            if not line.startswith(b"+"):
                return Response(line.split(b" ", 2)[1], line)
            self.writer.write(literal + b"\r\n")
        await self.writer.drain()
        kept: list[bytes] = []
        kept_size = size = untagged = 0
        while True:
            line = await self.reader.readline()
            if not line:
                raise ConnectionError("server closed the connection")
            if line.startswith(tag + b" "):
                kept.append(line)
                return Response(line.split(b" ", 2)[1], b"".join(kept), untagged,
                                time.perf_counter() - started, size)
            untagged += line.startswith(b"* ")
            parts = [line]
            match = _LITERAL.search(line)
            while match:
                parts.append(await self.reader.readexactly(int(match.group(1))))
                line = await self.reader.readline()
                parts.append(line)
                match = _LITERAL.search(line)
            for part in parts:
                size += len(part)
                if kept_size < 1 << 20:
                    kept.append(part)
                    kept_size += len(part)

    async def close(self) -> None:
        """LOGOUT and close."""
        try:
            await asyncio.wait_for(self.command(b"LOGOUT"), 5)
        except (TimeoutError, OSError):
            pass
        self.writer.close()


def _quote(value: str) -> bytes:
    return b'"' + value.replace("\\", "\\\\").replace('"', '\\"').encode() + b'"'


def _message(rng: random.Random, index: int) -> bytes:
    words = [rng.choice(_WORDS) for _ in range(rng.randint(200, 1500))]
    lines = [" ".join(words[i : i + 12]) for i in range(0, len(words), 12)]
    body = "\r\n".join(lines)
    subject = " ".join(rng.choice(_WORDS) for _ in range(5))
    # threads of five for SORT/THREAD: a first message, then four replies referring to it
    thread, position = divmod(index, 5)
    topic = " ".join(random.Random(thread).choice(_WORDS) for _ in range(3))
    message_id = f"<bench.{index}.{rng.getrandbits(32)}@example.org>"
    root_id = f"<bench.thread.{thread}@example.org>"
    threading = f"References: {root_id}\r\n" if position else ""
    return (
        f"From: Bench Sender <sender{index % 50}@example.org>\r\n"
        f"To: Bench User <user@example.com>\r\n"
        f"Subject: {'Re: ' if position else ''}{topic} #{thread} {subject}\r\n"
        f"Date: Mon, 06 Jan 2025 10:{index % 60:02d}:00 +0000\r\n"
        f"Message-ID: {message_id if position else root_id}\r\n{threading}"
        f"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
        f"{body}\r\nneedle{index % 100}\r\n"
    ).encode()


async def _login(host: str, port: int, tls: bool, user: str, password: str, mailbox: str) -> tuple[Client, int]:
    client = await Client.connect(host, port, tls)
    response = await client.command(b"LOGIN " + _quote(user) + b" " + _quote(password))
    if response.status != b"OK":
        raise RuntimeError(f"login failed: {response.data!r}")
    selected = await client.command(b"SELECT " + _quote(mailbox))
    if selected.status != b"OK":
        raise RuntimeError(f"select failed: {selected.data!r}")
    match = _EXISTS.search(selected.data)
    return client, int(match.group(1)) if match else 0


def _tree_pss_kib(root_pid: int) -> int:
    """Proportional set size of a process and all its descendants (Linux), in KiB."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                parent = int(fh.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(parent, []).append(int(entry))
    total, pending = 0, [root_pid]
    while pending:
        pid = pending.pop()
        pending.extend(children.get(pid, []))
        try:
            with open(f"/proc/{pid}/smaps_rollup") as fh:
                for line in fh:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1])
                        break
        except OSError:
            continue
    return total


async def idle_memory(host: str, port: int, tls: bool, user: str, password: str, mailbox: str,
                      connections: int, server_pid: int) -> dict[str, object]:
    """Open ``connections`` sessions idling in IDLE and report the server's PSS growth per session."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < connections + 100:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, connections + 1000), hard))
    await asyncio.sleep(1)
    before = _tree_pss_kib(server_pid)
    clients: list[Client] = []
    gate = asyncio.Semaphore(16)

    async def open_one() -> None:
        async with gate:
            client, _ = await _login(host, port, tls, user, password, mailbox)
            client.counter += 1
            client.writer.write(b"i%d IDLE\r\n" % client.counter)
            await client.writer.drain()
            await client.reader.readline()  # "+ idling"
            clients.append(client)

    await asyncio.gather(*(open_one() for _ in range(connections)))
    await asyncio.sleep(2)
    after = _tree_pss_kib(server_pid)
    for client in clients:
        client.writer.write(b"DONE\r\n")
        client.writer.close()
    return {"connections": connections, "server_pss_before_kib": before, "server_pss_after_kib": after,
            "kib_per_connection": round((after - before) / connections, 1)}


async def run_bench(host: str, port: int, user: str, password: str, *, messages: int, mailbox: str,
                    logins: int, concurrency: int, tls: bool, body_messages: int,
                    idle: int = 0, server_pid: int = 0, sort_thread: bool = False,
                    append_users: Sequence[str] = ()) -> dict[str, object]:
    """Run every phase and return the figures."""
    result: dict[str, object] = {"server": f"{host}:{port}", "mailbox": mailbox}

    latencies: list[float] = []
    started = time.perf_counter()
    exists = 0
    for _ in range(logins):
        t0 = time.perf_counter()
        client, exists = await _login(host, port, tls, user, password, mailbox)
        latencies.append(time.perf_counter() - t0)
        await client.close()
    elapsed = time.perf_counter() - started
    result["login_select"] = {
        "count": logins, "per_second": round(logins / elapsed, 1),
        "p50_ms": round(statistics.median(latencies) * 1000, 2),
        "max_ms": round(max(latencies) * 1000, 2),
    }

    # with append_users, the APPEND phase is a many-user load: `messages` messages, connection i
    # logged in as append_users[i % n]; otherwise it fills --user's mailbox up to `messages`
    missing = messages if append_users else max(0, messages - exists)
    if missing:
        rng = random.Random(42)
        payloads = [_message(rng, exists + i) for i in range(missing)]
        logins_for = [append_users[i % len(append_users)] if append_users else user for i in range(concurrency)]
        clients = [(await _login(host, port, tls, name, password, mailbox))[0] for name in logins_for]
        started = time.perf_counter()
        total_bytes = 0

        async def worker(client: Client, items: list[bytes]) -> None:
            nonlocal total_bytes
            for payload in items:
                response = await client.command(b"APPEND " + _quote(mailbox) + b" ()", payload)
                if response.status != b"OK":
                    raise RuntimeError(f"APPEND failed: {response.data[:200]!r}")
                total_bytes += len(payload)

        await asyncio.gather(*(worker(clients[i], payloads[i::concurrency]) for i in range(concurrency)))
        elapsed = time.perf_counter() - started
        for client in clients:
            await client.close()
        result["append"] = {
            "messages": missing, "connections": concurrency, "users": len(set(logins_for)),
            "per_second": round(missing / elapsed, 1),
            "mb_per_second": round(total_bytes / elapsed / 1e6, 2),
        }

    client, exists = await _login(host, port, tls, user, password, mailbox)
    result["messages"] = exists
    runs = []
    for _ in range(3):
        response = await client.command(b"FETCH 1:* (FLAGS ENVELOPE BODYSTRUCTURE RFC822.SIZE)")
        runs.append((response.elapsed, response.size, response.untagged))
    best = min(runs)
    result["fetch_metadata"] = {
        "messages": exists, "seconds": round(best[0], 3),
        "per_second": round(exists / best[0], 1) if best[0] else None,
        "bytes": best[1],
    }

    runs = []
    for _ in range(3):  # what a client's message list asks for (Roundcube, mutt, Thunderbird)
        response = await client.command(_LIST_FETCH)
        runs.append((response.elapsed, response.size, response.untagged))
    best = min(runs)
    result["fetch_headers"] = {
        "messages": exists, "seconds": round(best[0], 3),
        "per_second": round(exists / best[0], 1) if best[0] else None,
        "bytes": best[1],
    }

    count = min(exists, body_messages)
    if count:
        response = await client.command(b"FETCH 1:%d BODY.PEEK[]" % count)
        result["fetch_body"] = {
            "messages": count, "seconds": round(response.elapsed, 3),
            "mb_per_second": round(response.size / response.elapsed / 1e6, 2),
            "per_second": round(count / response.elapsed, 1),
        }

    timings = []
    hits = 0
    for word in (b"needle7", b"needle42", b"quarterly"):
        response = await client.command(b"SEARCH TEXT " + word)
        timings.append(response.elapsed)
        hits = max(hits, len(response.data.split(b"\r\n", 1)[0].split()) - 2)
    result["search_text"] = {
        "queries": len(timings), "p50_ms": round(statistics.median(timings) * 1000, 2),
        "max_ms": round(max(timings) * 1000, 2), "max_hits": hits,
    }
    if sort_thread:
        for name, command in _SORT_THREAD:
            times: list[float] = []
            for _ in range(3):
                response = await client.command(command)
                if response.status != b"OK":
                    raise RuntimeError(f"{command!r} failed: {response.data[-200:]!r}")
                times.append(response.elapsed)
            result[name] = {"messages": exists, "best_ms": round(min(times) * 1000, 1),
                            "bytes": response.size}
    await client.close()
    if idle and server_pid:
        result["idle_memory"] = await idle_memory(host, port, tls, user, password, mailbox, idle, server_pid)
    return result


_LIST_FETCH = (b"FETCH 1:* (UID FLAGS INTERNALDATE RFC822.SIZE BODY.PEEK[HEADER.FIELDS (DATE FROM SUBJECT TO CC"
               b" MESSAGE-ID REFERENCES CONTENT-TYPE IN-REPLY-TO REPLY-TO X-PRIORITY)])")

_SORT_THREAD = (
    ("sort_subject", b"UID SORT (SUBJECT) UTF-8 ALL"),
    ("sort_reverse_date", b"UID SORT (REVERSE DATE) UTF-8 ALL"),
    ("sort_from_size", b"UID SORT (FROM SIZE) UTF-8 ALL"),
    ("thread_references", b"UID THREAD REFERENCES UTF-8 ALL"),
    ("thread_refs", b"UID THREAD REFS UTF-8 ALL"),
    ("thread_orderedsubject", b"UID THREAD ORDEREDSUBJECT UTF-8 ALL"),
)


def bench_imap(
    host: Annotated[str, typer.Option(help="Server address.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="IMAP port.")] = 1143,
    user: Annotated[str, typer.Option(help="Login name.")] = "bench@example.com",
    password: Annotated[str, typer.Option(help="Password.")] = "bench",
    messages: Annotated[int, typer.Option(help="Fill the mailbox up to this many messages.")] = 10000,
    mailbox: Annotated[str, typer.Option(help="Mailbox to use.")] = "INBOX",
    logins: Annotated[int, typer.Option(help="LOGIN+SELECT rounds to time.")] = 50,
    concurrency: Annotated[int, typer.Option(help="Connections used to APPEND.")] = 4,
    body_messages: Annotated[int, typer.Option(help="Messages in the full-body FETCH.")] = 2000,
    tls: Annotated[bool, typer.Option(help="Implicit TLS.")] = False,
    idle: Annotated[int, typer.Option(help="Sessions to park in IDLE for the memory figure (needs --server-pid).")] = 0,
    server_pid: Annotated[int, typer.Option(help="Root PID of the server's process tree (same machine).")] = 0,
    sort_thread: Annotated[bool, typer.Option(help="Also time SORT and THREAD over the whole mailbox.")] = False,
    append_users: Annotated[str, typer.Option(
        help="Comma-separated logins: APPEND --messages messages over these accounts round-robin "
             "(one per connection) instead of filling --user's mailbox.")] = "",
) -> None:
    """Benchmark an IMAP server (Sora or any other) and print JSON figures."""
    figures = asyncio.run(run_bench(
        host, port, user, password, messages=messages, mailbox=mailbox, logins=logins,
        concurrency=concurrency, tls=tls, body_messages=body_messages, idle=idle, server_pid=server_pid,
        sort_thread=sort_thread, append_users=[u for u in append_users.split(",") if u]))
    typer.echo(json.dumps(figures, indent=2))
