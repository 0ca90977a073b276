"""Helpers for the S3 plugin tests: a moto S3 server on loopback that can be stopped and restarted."""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Callable
from typing import Any

import boto3
from moto.server import ThreadedMotoServer

from sora_kernel.testing import SoraTestServer

ADDRESS = "alice@example.com"
PASSWORD = "secret"


def free_port() -> int:
    """An unused loopback port (moto's server needs a fixed one to come back on after a stop)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class MotoS3:
    """moto's standalone S3 server on 127.0.0.1; :meth:`stop` closes the socket (clients get refused)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.server: ThreadedMotoServer | None = None
        self.start()

    def start(self) -> None:
        """Listen (again) on the same port."""
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self.server.start()

    def stop(self) -> None:
        """Stop serving and close the listening socket."""
        if self.server is not None:
            self.server.stop()
            inner = self.server._server
            if inner is not None:
                inner.server_close()
            self.server = None

    def client(self) -> Any:
        """A boto3 client for checking what the server holds."""
        return boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1",
                            aws_access_key_id="testing", aws_secret_access_key="testing")

    def keys(self, bucket: str) -> list[str]:
        """Every object key of a bucket."""
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket)
        return sorted(item["Key"] for page in pages for item in page.get("Contents", []))

    def object(self, bucket: str, key: str) -> bytes:
        """An object's stored bytes."""
        return bytes(self.client().get_object(Bucket=bucket, Key=key)["Body"].read())


def s3_config(moto: MotoS3, bucket: str | None = None, **s3: Any) -> dict[str, dict[str, Any]]:
    """A test server's config with ``[storage] backend = "s3"`` against ``moto`` and quick timings."""
    values: dict[str, Any] = {
        "endpoint": moto.endpoint, "bucket": bucket or f"sora-{uuid.uuid4().hex[:12]}",
        "access_key": "testing", "secret_key": "testing", "create_bucket": True,
        "upload_interval": "0.1s", "retry_min": "0.05s", "retry_max": "0.3s", "heartbeat_interval": "0.5s",
        "breaker_open_timeout": "0.2s", "breaker_min_requests": 2, "connect_timeout": "1s", "read_timeout": "5s",
        "cleaner_interval": "1h",
    }
    values.update(s3)
    return {"storage": {"backend": "s3"}, "s3": values}


def wait_for(predicate: Callable[[], Any], timeout: float = 20.0, what: str = "condition") -> Any:
    """Poll until ``predicate()`` is truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what} (last: {value!r})")
        time.sleep(0.02)


def status(server: SoraTestServer) -> Any:
    """The upload status of a server's database."""
    return server.call(server.kernel.store.uploads.status)


def uploaded_all(server: SoraTestServer, timeout: float = 20.0) -> Any:
    """Wait until nothing is pending or failed."""
    return wait_for(lambda: (s := status(server)).pending == 0 and s.failed == 0 and s, timeout,
                    "uploads to finish")


def message(subject: str, body: str = "Hello.\r\n", size: int = 0) -> bytes:
    """A small RFC 5322 message (``size`` pads the body)."""
    text = body + ("x" * 76 + "\r\n") * (size // 78)
    return (f"From: bob@example.org\r\nTo: {ADDRESS}\r\nSubject: {subject}\r\n"
            f"Message-ID: <{uuid.uuid4().hex}@example.org>\r\n\r\n{text}").encode()


def counter(server: SoraTestServer, name: str, **labels: str) -> float:
    """A sample of the server's registry (0 when absent)."""
    value = server.kernel.registry.get_sample_value(name, labels)
    return float(value or 0.0)
