"""LMTP ingest with the s3 backend vs the filesystem one, and IMAP FETCH of bodies cold vs warm.

Starts an embedded PostgreSQL and a moto S3 server on loopback, then for each backend a throw-away
Sora (lmtp + imap, ``[storage] fsync = true``), runs ``sora bench lmtp`` against it as a separate
process, waits for the uploads, and times FETCH BODY.PEEK[] of every message with the cache purged
(cold: from S3) and again (warm: from the cache). Prints JSON.

    .venv/bin/python plugins/s3/tools/bench_s3.py --messages 2000
"""

from __future__ import annotations

import imaplib
import json
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import typer

from sora_kernel.testing import TestDatabase
from sora_kernel.testing.server import start_test_server

USER, PASSWORD = "bench@example.com", "bench"


def _fetch_all(port: int) -> tuple[float, int]:
    with imaplib.IMAP4("127.0.0.1", port) as imap:
        imap.login(USER, PASSWORD)
        imap.select("INBOX", readonly=True)
        started = time.perf_counter()
        _, data = imap.uid("FETCH", "1:*", "(BODY.PEEK[])")
        elapsed = time.perf_counter() - started
    return elapsed, sum(len(p[1]) for p in data if isinstance(p, tuple))


def run(backend: str, database: TestDatabase, moto_endpoint: str, messages: int, concurrency: int) -> dict[str, Any]:
    """One backend's figures."""
    with ExitStack() as stack, tempfile.TemporaryDirectory(prefix=f"sora-bench-{backend}-") as tmp:
        config: dict[str, dict[str, Any]] = {"storage": {"backend": backend, "fsync": True}}
        if backend == "s3-unreachable":  # the acknowledged path alone: uploads fail fast, breaker open
            config["storage"]["backend"] = "s3"
            config["s3"] = {"endpoint": f"http://127.0.0.1:{_free_port()}", "bucket": "none", "access_key": "x",
                            "secret_key": "x", "retry_min": "30s", "retry_max": "60s"}
        if backend == "s3":
            config["s3"] = {"endpoint": moto_endpoint, "bucket": f"bench-{int(time.time())}", "access_key": "x",
                            "secret_key": "x", "create_bucket": True, "upload_interval": "0.2s"}
        server = start_test_server(stack, database, Path(tmp), plugins=["s3", "lmtp", "imap"], config=config)
        server.create_account(USER, PASSWORD)
        cpu = time.process_time()
        result = subprocess.run(
            [str(Path(sys.executable).parent / "sora"), "bench", "lmtp", "--port", str(server.port("lmtp")),
             "--recipients", USER, "--messages", str(messages), "--concurrency", str(concurrency)],
            capture_output=True, text=True, check=True)
        lmtp = json.loads(result.stdout[result.stdout.index("{"):])
        figures: dict[str, Any] = {"lmtp": lmtp}
        if backend == "s3":
            started = time.perf_counter()
            while server.call(server.kernel.store.uploads.status).pending:
                time.sleep(0.05)
        # CPU of this process (the server and, for s3, its upload worker), less sensitive to a busy machine
        figures["server_cpu_ms_per_delivery"] = round((time.process_time() - cpu) * 1000 / messages, 2)
        if backend == "s3":
            figures["upload_drain_seconds_after_bench"] = round(time.perf_counter() - started, 2)
            server.kernel.blobs.cache.purge()
            cold, octets = _fetch_all(server.port("imap"))
            figures["fetch_cold_s"] = round(cold, 3)
            figures["fetch_cold_mb_per_s"] = round(octets / cold / 1e6, 1)
        warm, octets = _fetch_all(server.port("imap"))
        figures["fetch_warm_s"] = round(warm, 3)
        figures["fetch_warm_mb_per_s"] = round(octets / warm / 1e6, 1)
        figures["fetch_octets"] = octets
        return figures


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_listening(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def main(messages: int = typer.Option(2000), concurrency: int = typer.Option(4),
         backends: str = typer.Option("fs,s3", help="Comma-separated backends, in order.")) -> None:
    """Print the figures of both backends as JSON."""
    database = TestDatabase()
    # moto in a process of its own: in one process its request handling would compete with the server
    # for the GIL, which a real S3 endpoint does not
    port = _free_port()
    moto = subprocess.Popen([str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_listening(port)
        out = {f"{n}-{backend}": run(backend, database, f"http://127.0.0.1:{port}", messages, concurrency)
               for n, backend in enumerate(backends.split(","), 1)}
    finally:
        moto.terminate()
        moto.wait(10)
        database.close()
    typer.echo(json.dumps(out, indent=2))


if __name__ == "__main__":
    typer.run(main)
