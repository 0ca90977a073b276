"""The ``[s3]`` configuration section, declared once (the kernel's SectionSettings)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from sora_kernel.api import Config, SectionSettings, setting


def _key(value: str) -> bytes:
    if not value:
        return b""
    try:
        key = bytes.fromhex(value)
    except ValueError:
        raise ValueError("expected 64 hexadecimal digits (a 32-byte AES-256 key)") from None
    if len(key) != 32:
        raise ValueError("expected 64 hexadecimal digits (a 32-byte AES-256 key)")
    return key


@dataclass(frozen=True, slots=True)
class S3Settings(SectionSettings):
    """The ``[s3]`` values, read once when the backend is built."""

    SECTION: ClassVar[str] = "s3"
    HELP: ClassVar[str] = ("S3-compatible blob storage ([storage] backend = \"s3\"): bodies spooled locally, "
                           "uploaded in the background, read through a local cache.")

    endpoint: str = setting("str", "", "Endpoint URL (MinIO, Ceph, Garage, moto); empty = AWS for the region.")
    region: str = setting("str", "us-east-1", "Region name.")
    bucket: str = setting("str", "sora", "Bucket holding the bodies.")
    access_key: str = setting("str", "", "Access key id; empty = the AWS environment/profile chain.", secret=True)
    secret_key: str = setting("str", "", "Secret access key (with access_key).", secret=True)
    path_style: bool = setting("bool", True, "Path-style addressing (MinIO, Ceph); false = virtual-host style.")
    tls_verify: bool = setting("bool", True, "Verify the endpoint's TLS certificate.")
    create_bucket: bool = setting("bool", False, "Create the bucket at start-up when missing.")
    connect_timeout: float = setting("duration", "5s", "Time allowed to connect to S3.", minimum=0.1)
    read_timeout: float = setting("duration", "30s", "Time allowed for one S3 response.", minimum=0.1)
    encrypt: bool = setting("bool", False, "Client-side AES-256-GCM encryption (nonce||ciphertext||tag).")
    encryption_key: bytes = setting("str", "", "The 32-byte key as 64 hex digits (with encrypt = true).",
                                    secret=True, convert=_key)
    spool_dir: str = setting("str", "", "Local spool of bodies not yet uploaded; empty = <data_dir>/s3/spool.")
    cache_dir: str = setting("str", "", "Local body cache; empty = <data_dir>/s3/cache.")
    cache_size: int = setting("size", "1GiB", "Bytes the local cache may hold (least recently used evicted).")
    cache_max_object: int = setting("size", "5MiB", "Bodies larger than this are never cached.")
    warmup: bool = setting("bool", False, "After an IMAP login, read the newest messages into the cache.")
    warmup_mailboxes: tuple[str, ...] = setting("list", ["INBOX"], "Mailboxes the warm-up reads.")
    warmup_messages: int = setting("int", 50, "Newest messages per mailbox the warm-up reads.", minimum=1)
    warmup_every: float = setting("duration", "24h", "At most one warm-up per account this often.")
    max_staging: int = setting("size", "10GiB",
                               "Spooled bytes not yet uploaded above which deliveries fail temporarily (4xx).")
    node_id: str = setting("str", "", "Name of this node's spool for the upload worker; empty = [server] hostname.")
    upload_batch: int = setting("int", 20, "Uploads leased per round.", minimum=1)
    upload_concurrency: int = setting("int", 8, "Uploads in flight per worker process.", minimum=1)
    upload_interval: float = setting("duration", "10s", "Worker wake-up when no delivery woke it earlier.",
                                     minimum=0.05)
    upload_delay: float = setting("duration", "50ms", "Pause after a wake-up so deliveries arriving together "
                                  "are uploaded as one batch.", minimum=0.0)
    upload_lease: float = setting("duration", "5m", "How long a leased upload stays with its worker.", minimum=1.0)
    retry_min: float = setting("duration", "1s", "First retry delay of a failed upload (doubling).", minimum=0.01)
    retry_max: float = setting("duration", "5m", "Longest retry delay.", minimum=0.01)
    max_attempts: int = setting("int", 20, "Failed attempts (not counting S3 outages) before an upload is "
                                "marked failed.", minimum=1)
    heartbeat_interval: float = setting("duration", "30s", "How often the worker says its node is alive.",
                                        minimum=0.05)
    node_liveness: float = setting("duration", "10m",
                                   "A node silent this long is presumed gone: others may take over its uploads.")
    breaker_min_requests: int = setting("int", 5, "Requests in the window before the circuit breaker may open.",
                                        minimum=1)
    breaker_failure_ratio: float = setting("float", 0.6, "Failure ratio that opens the circuit breaker.")
    breaker_window: float = setting("duration", "10s", "Window over which failures are counted.", minimum=0.1)
    breaker_open_timeout: float = setting("duration", "30s", "How long the breaker stays open before trying again.",
                                          minimum=0.01)
    cleaner_interval: float = setting("duration", "1h", "How often the S3 cleaner deletes unreferenced blobs.",
                                      minimum=0.05)
    delete_fence: float = setting(
        "duration", "1h", "A blob stored again within this long is never deleted: the time a delivery may take "
        "between staging its body and committing its message row.", minimum=0.0)

    hostname: str = ""
    data_dir: str = ""

    @classmethod
    def derived(cls, config: Config) -> dict[str, Any]:
        """The node name and data directory default from the kernel's sections."""
        return {"hostname": config.get("server", "hostname"), "data_dir": str(config.data_dir)}

    @property
    def node(self) -> str:
        """This node's name in ``s3_blobs.node`` and ``s3_nodes``."""
        return self.node_id or self.hostname or "localhost"
