"""``sora serve``: start the embedded PostgreSQL and migrations once, then run worker processes
that share the listening sockets (SO_REUSEPORT), restart any that dies, and stop them all on
SIGTERM/SIGINT. Metrics of all workers are aggregated (prometheus-client multiprocess mode)."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import structlog

log = structlog.get_logger("sora.serve")


def _listener_addrs(config: Any) -> list[tuple[str, str]]:
    found = []
    for name, section in config.sections.items():
        if name == "metrics":
            continue
        for setting in section.settings:
            if setting.kind == "addr" and setting.key.endswith("addr"):
                value = config.values[name][setting.key]
                if value and name in config.get("plugins", "enabled"):
                    found.append((f"{name}{'' if setting.key == 'addr' else ' (' + setting.key + ')'}", value))
    return found


def _wait_ready(ready_dir: str, workers: int, procs: dict[int, Any], timeout: float) -> bool:
    """Wait until every worker has reported its listeners bound (a marker file each)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len([n for n in os.listdir(ready_dir) if n.startswith("ready-")]) >= workers:
            return True
        if all(proc.poll() is not None for proc in procs.values()):
            return False
        time.sleep(0.05)
    return False


def _check_ports_free(addrs: list[tuple[str, str]]) -> None:
    """Workers bind with SO_REUSEPORT, which would let a second Sora share a port silently:
    bind each address once without it first, so a port in use is an error naming it."""
    from sora_kernel.config import parse_addr
    from sora_kernel.errors import SoraError

    for name, addr in addrs:
        host, port = parse_addr(addr)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            # SO_REUSEADDR ignores TIME_WAIT leftovers; on Linux it still fails on a live listener
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((host, port))
            except OSError as exc:
                raise SoraError(f"[{name.split()[0]}] cannot listen on {addr}: {exc.strerror or exc}") from None


async def _prepare(config: Any, plugins: Any) -> None:
    from sora_kernel.kernel import Kernel

    kernel = Kernel(config, plugins)
    await kernel.start(migrate=True)
    await kernel.stop()


def run(config: Any, plugins: Any, path: Path, workers: int) -> None:
    """The supervisor (parent) process."""
    from sora_kernel.embedded import EmbeddedPostgres, EmbeddedWatchdog
    from sora_kernel.kernel import workers_for

    embedded = None
    if not config.get("database", "dsn"):
        embedded = EmbeddedPostgres(config.data_dir / "pg")
        if embedded.is_running():
            embedded = None  # another process owns it
        else:
            config.data_dir.mkdir(parents=True, exist_ok=True)
            embedded.start()
    addrs = _listener_addrs(config)
    try:
        _check_ports_free(addrs)
    except Exception:
        if embedded is not None:
            embedded.stop()
        raise
    asyncio.run(_prepare(config, plugins))
    count = workers or workers_for(config)
    metrics_dir = tempfile.mkdtemp(prefix="sora-metrics-")
    env = dict(os.environ, PROMETHEUS_MULTIPROC_DIR=metrics_dir, SORA_CONFIG=str(path),
               SORA_READY_DIR=metrics_dir)
    # argon2id allocates ~19 MiB per verify in worker threads; a fixed mmap threshold hands that
    # memory back to the OS instead of letting every thread's malloc arena keep it (glibc)
    env.setdefault("MALLOC_MMAP_THRESHOLD_", "131072")
    command = [sys.executable, "-m", "sora_cli.main", "--config", str(path), "serve", "--worker"]
    procs: dict[int, subprocess.Popen[bytes]] = {}
    stopping = False
    watchdog = EmbeddedWatchdog(embedded) if embedded is not None else None
    watch_stop = threading.Event()

    def watch_embedded() -> None:
        assert watchdog is not None
        while not watch_stop.wait(1.0):
            watchdog.check()

    def spawn(slot: int) -> None:
        procs[slot] = subprocess.Popen(command, env=env)
        log.info("worker started", slot=slot, pid=procs[slot].pid)

    def on_signal(signum: int, _frame: Any) -> None:
        nonlocal stopping
        stopping = True
        for proc in procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)

    def on_hup(_signum: int, _frame: Any) -> None:
        for proc in procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGHUP)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGHUP, on_hup)
    metrics_addr = config.get("metrics", "addr")
    if metrics_addr:
        dsn = config.get("database", "dsn") or EmbeddedPostgres(config.data_dir / "pg").dsn()
        _serve_metrics(metrics_addr, metrics_dir, procs, dsn=dsn, expected=count, watchdog=watchdog)
    for slot in range(count):
        spawn(slot)
    if watchdog is not None:
        threading.Thread(target=watch_embedded, name="embedded-postgres-watchdog", daemon=True).start()
    if _wait_ready(metrics_dir, count, procs, 60):
        lines = [f"  {name:<16} {addr}" for name, addr in addrs]
        if metrics_addr:
            lines.append(f"  {'metrics':<16} http://{metrics_addr}/metrics (and /health)")
        sys.stdout.write(f"Sora is running with {count} worker(s). Listening:\n" + "\n".join(lines) + "\n")
        sys.stdout.flush()
    failures: dict[int, float] = {}
    try:
        while not stopping:
            time.sleep(0.2)
            for slot, proc in list(procs.items()):
                code = proc.poll()
                if code is not None and not stopping:
                    log.error("worker died; restarting", slot=slot, pid=proc.pid, exit_code=code)
                    backoff = 1.0 if time.monotonic() - failures.get(slot, 0) > 10 else 5.0
                    failures[slot] = time.monotonic()
                    time.sleep(backoff)
                    spawn(slot)
        deadline = time.monotonic() + config.get("server", "drain_timeout") + 5
        for proc in procs.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
        log.info("all workers stopped")
    finally:
        watch_stop.set()
        if embedded is not None:
            embedded.stop()
        shutil.rmtree(metrics_dir, ignore_errors=True)


class WorkerProcessCollector:
    """Process metrics of every worker, labelled by slot (multiprocess mode has no process_*
    metrics of its own): resident memory, CPU seconds, open file descriptors, start time."""

    def __init__(self, procs: dict[int, Any], watchdog: Any = None) -> None:
        self.procs = procs
        self.watchdog = watchdog
        self.ticks = os.sysconf("SC_CLK_TCK")
        self.page = os.sysconf("SC_PAGE_SIZE")

    def collect(self) -> Any:
        """Read /proc for each live worker."""
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        memory = GaugeMetricFamily("sora_worker_resident_memory_bytes", "Resident memory of a worker",
                                   labels=["worker", "pid"])
        cpu = CounterMetricFamily("sora_worker_cpu_seconds", "CPU time of a worker", labels=["worker", "pid"])
        fds = GaugeMetricFamily("sora_worker_open_fds", "Open file descriptors of a worker",
                                labels=["worker", "pid"])
        for slot, proc in list(self.procs.items()):
            pid = str(proc.pid)
            try:
                with open(f"/proc/{pid}/stat") as fh:
                    fields = fh.read().rsplit(")", 1)[1].split()
                open_fds = len(os.listdir(f"/proc/{pid}/fd"))
            except (OSError, IndexError):
                continue
            labels = [str(slot), pid]
            memory.add_metric(labels, int(fields[21]) * self.page)
            cpu.add_metric(labels, (int(fields[11]) + int(fields[12])) / self.ticks)
            fds.add_metric(labels, open_fds)
        yield memory
        yield cpu
        yield fds
        if self.watchdog is not None:
            yield GaugeMetricFamily("sora_embedded_postgres_up", "Whether the embedded PostgreSQL is running",
                                    value=1 if self.watchdog.up else 0)
            yield CounterMetricFamily("sora_embedded_postgres_restarts", "Restarts of the embedded PostgreSQL "
                                      "after it died", value=self.watchdog.restarts)
            yield GaugeMetricFamily("sora_embedded_postgres_last_down_seconds",
                                    "How long the embedded PostgreSQL was down before its last restart",
                                    value=self.watchdog.last_down_seconds)


def _serve_metrics(addr: str, metrics_dir: str, procs: dict[int, Any], *, dsn: str, expected: int,
                   watchdog: Any = None) -> None:
    from prometheus_client import CollectorRegistry, ProcessCollector, make_wsgi_app
    from prometheus_client.multiprocess import MultiProcessCollector

    from sora_kernel.config import parse_addr

    from . import health_http

    def ready() -> int:
        live = {str(proc.pid) for proc in list(procs.values()) if proc.poll() is None}
        return sum(1 for name in os.listdir(metrics_dir) if name.startswith("ready-") and name[6:] in live)

    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=metrics_dir)
    ProcessCollector(registry=registry)  # the supervisor itself
    registry.register(WorkerProcessCollector(procs, watchdog))  # type: ignore[arg-type]
    host, port = parse_addr(addr)
    health_http.serve(host, port, make_wsgi_app(registry), {
        "workers": health_http.workers_check(procs, expected, ready),
        "database": health_http.database_check(dsn)})


def run_worker(config: Any, plugins: Any) -> None:
    """One worker process: the kernel and every service in one event loop."""
    import anyio

    from sora_kernel.kernel import serve_kernel

    backend_options = {}
    try:
        import uvloop  # noqa: F401

        backend_options = {"use_uvloop": True}
    except ImportError:
        pass
    def ready(_listeners: Any) -> None:
        ready_dir = os.environ.get("SORA_READY_DIR")
        if ready_dir:
            with open(os.path.join(ready_dir, f"ready-{os.getpid()}"), "w") as marker:
                marker.write(" ".join(str(listener) for listener in _listeners))

    anyio.run(lambda: serve_kernel(config, plugins, reuse_port=True, on_ready=ready), backend="asyncio",
              backend_options=backend_options)
