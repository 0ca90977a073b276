"""JA4 TLS client fingerprints (FoxIO's definition) from the raw ClientHello, and the rules using them.

Sans-I/O: :func:`client_hello_length` says how many bytes of TLS records hold the whole ClientHello,
:func:`parse_client_hello` reads it, :func:`ja4` builds ``t13d1516h2_8daaf6152771_e5627efa2ab1``:
transport (``t``), highest version (supported_versions, else the hello's), SNI (``d``/``i``), cipher
and extension counts (GREASE ignored, capped at 99), first and last character of the first ALPN value;
then the truncated SHA-256 of the sorted cipher list, and of the sorted extension list (SNI and ALPN
left out) followed by the signature algorithms in their order. :func:`ja4_raw` gives the unhashed
``JA4_r`` (or ``JA4_ro`` with ``original=True``).

:class:`ClientHelloPolicy` holds the ``[[tls.client_filters]]`` rules (regexes over the fingerprint,
``action`` ``refuse`` or ``tag``) and counts fingerprints in ``sora_tls_client_hellos_total``; the
label is the fingerprint itself (only ``[a-z0-9_]``), capped at ``MAX_LABELS`` distinct values per
process so that crafted hellos cannot grow the registry (the rest count as ``other``).
"""

from __future__ import annotations

import hashlib
import re
import weakref
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter

from ..errors import ConfigError

HANDSHAKE = 22
CLIENT_HELLO = 1
MAX_HELLO = 65536  # a ClientHello spread over more record bytes than this is not waited for
MAX_LABELS = 200

_VERSIONS = {0x0304: "13", 0x0303: "12", 0x0302: "11", 0x0301: "10", 0x0300: "s3", 0x0200: "s2", 0x0100: "s1"}
EXT_SNI, EXT_ALPN, EXT_SIGNATURE_ALGORITHMS, EXT_SUPPORTED_VERSIONS = 0x0000, 0x0010, 0x000D, 0x002B


class HelloError(ValueError):
    """The bytes are not a well-formed ClientHello."""


def is_grease(value: int) -> bool:
    """RFC 8701 GREASE values: 0x0a0a, 0x1a1a ... 0xfafa."""
    return (value & 0x0F0F) == 0x0A0A and (value >> 8) == (value & 0xFF)


@dataclass(frozen=True)
class ClientHello:
    """What JA4 reads from a ClientHello (GREASE already removed)."""

    version: int
    ciphers: tuple[int, ...]
    extensions: tuple[int, ...]
    server_name: str | None = None
    alpn: tuple[bytes, ...] = ()
    signature_algorithms: tuple[int, ...] = ()
    supported_versions: tuple[int, ...] = field(default=())


def client_hello_length(records: bytes) -> int | None:
    """How many bytes of ``records`` (TLS records from the start of the stream) hold the whole
    ClientHello message; None while more are needed. HelloError when it is not a handshake."""
    offset, message = 0, bytearray()
    while True:
        if len(records) < offset + 5:
            return None
        if records[offset] != HANDSHAKE:
            raise HelloError("not a TLS handshake record")
        length = int.from_bytes(records[offset + 3:offset + 5], "big")
        if len(records) < offset + 5 + length:
            return None
        message += records[offset + 5:offset + 5 + length]
        offset += 5 + length
        if len(message) >= 4:
            if message[0] != CLIENT_HELLO:
                raise HelloError("the first handshake message is not a ClientHello")
            if len(message) >= 4 + int.from_bytes(message[1:4], "big"):
                return offset


def hello_message(records: bytes) -> bytes:
    """The ClientHello handshake message (type, length, body) from complete records."""
    offset, message = 0, bytearray()
    while offset + 5 <= len(records):
        length = int.from_bytes(records[offset + 3:offset + 5], "big")
        message += records[offset + 5:offset + 5 + length]
        offset += 5 + length
    return bytes(message)


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def take(self, size: int) -> bytes:
        if self.pos + size > len(self.data):
            raise HelloError("truncated ClientHello")
        chunk = self.data[self.pos:self.pos + size]
        self.pos += size
        return chunk

    def number(self, size: int) -> int:
        return int.from_bytes(self.take(size), "big")

    def vector(self, length_size: int) -> bytes:
        return self.take(self.number(length_size))

    @property
    def left(self) -> int:
        return len(self.data) - self.pos


def _u16_list(data: bytes) -> list[int]:
    if len(data) % 2:
        raise HelloError("odd length in a list of 16-bit values")
    return [int.from_bytes(data[i:i + 2], "big") for i in range(0, len(data), 2)]


def parse_client_hello(message: bytes) -> ClientHello:
    """Read a ClientHello handshake message (type 1, 24-bit length, body)."""
    reader = _Reader(message)
    if reader.number(1) != CLIENT_HELLO:
        raise HelloError("not a ClientHello")
    body = _Reader(reader.take(reader.number(3)))
    version = body.number(2)
    body.take(32)  # random
    body.vector(1)  # session id
    ciphers = [c for c in _u16_list(body.vector(2)) if not is_grease(c)]
    body.vector(1)  # compression methods
    extensions: list[int] = []
    server_name: str | None = None
    alpn: list[bytes] = []
    signatures: list[int] = []
    versions: list[int] = []
    if body.left:
        block = _Reader(body.vector(2))
        while block.left:
            kind, data = block.number(2), block.vector(2)
            if is_grease(kind):
                continue
            extensions.append(kind)
            item = _Reader(data)
            if kind == EXT_SNI and data:
                names = _Reader(item.vector(2))
                while names.left:
                    name_type, name = names.number(1), names.vector(2)
                    if name_type == 0:
                        server_name = name.decode("ascii", "replace")
            elif kind == EXT_ALPN and data:
                protocols = _Reader(item.vector(2))
                while protocols.left:
                    alpn.append(protocols.vector(1))
            elif kind == EXT_SIGNATURE_ALGORITHMS and data:
                signatures = [s for s in _u16_list(item.vector(2)) if not is_grease(s)]
            elif kind == EXT_SUPPORTED_VERSIONS and data:
                versions = [v for v in _u16_list(item.vector(1)) if not is_grease(v)]
    return ClientHello(version, tuple(ciphers), tuple(extensions), server_name, tuple(alpn), tuple(signatures),
                       tuple(versions))


def _alpn_chars(alpn: Sequence[bytes]) -> str:
    if not alpn or not alpn[0]:
        return "00"
    first = alpn[0]
    head, tail = chr(first[0]), chr(first[-1])
    if head.isascii() and head.isalnum() and tail.isascii() and tail.isalnum():
        return head + tail
    return f"{first[0]:02x}"[0] + f"{first[-1]:02x}"[1]  # non-alphanumeric: hex of the two bytes


def _prefix(hello: ClientHello, transport: str) -> str:
    version = max(hello.supported_versions) if hello.supported_versions else hello.version
    sni = "d" if EXT_SNI in hello.extensions else "i"
    return (f"{transport}{_VERSIONS.get(version, '00')}{sni}{min(len(hello.ciphers), 99):02d}"
            f"{min(len(hello.extensions), 99):02d}{_alpn_chars(hello.alpn)}")


def _lists(hello: ClientHello, original: bool) -> tuple[str, str]:
    ciphers = hello.ciphers if original else sorted(hello.ciphers)
    extensions = (hello.extensions if original
                  else sorted(e for e in hello.extensions if e not in (EXT_SNI, EXT_ALPN)))
    cipher_text = ",".join(f"{c:04x}" for c in ciphers)
    extension_text = ",".join(f"{e:04x}" for e in extensions)
    if hello.signature_algorithms:
        extension_text += "_" + ",".join(f"{s:04x}" for s in hello.signature_algorithms)
    return cipher_text, extension_text


def _hash12(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:12] if text else "000000000000"


def ja4(hello: ClientHello, *, transport: str = "t", original: bool = False) -> str:
    """The JA4 fingerprint (``JA4_o`` with ``original=True``)."""
    ciphers, extensions = _lists(hello, original)
    return f"{_prefix(hello, transport)}_{_hash12(ciphers)}_{_hash12(extensions)}"


def ja4_raw(hello: ClientHello, *, transport: str = "t", original: bool = False) -> str:
    """The unhashed ``JA4_r`` (``JA4_ro`` with ``original=True``)."""
    ciphers, extensions = _lists(hello, original)
    return f"{_prefix(hello, transport)}_{ciphers}_{extensions}"


# ---------------------------------------------------------------------------------- rules


@dataclass(frozen=True)
class ClientFilter:
    """One ``[[tls.client_filters]]`` rule: any ``ja4`` regex matching (search) applies ``action``."""

    ja4: tuple[re.Pattern[str], ...]
    action: str
    tag: str
    reason: str

    def matches(self, fingerprint: str) -> bool:
        """Whether a fingerprint is one of this rule's."""
        return any(p.search(fingerprint) for p in self.ja4)


def parse_client_filters(tables: Iterable[Mapping[str, Any]]) -> list[ClientFilter]:
    """Rules from config tables; ConfigError naming the rule when one is malformed."""
    rules = []
    for index, table in enumerate(tables):
        where = f"[[tls.client_filters]] #{index + 1}"
        unknown = set(table) - {"ja4", "action", "tag", "reason"}
        if unknown:
            raise ConfigError(f"{where}: unknown key {sorted(unknown)[0]!r} (known: action, ja4, reason, tag)")
        patterns = table.get("ja4", [])
        if isinstance(patterns, str):
            patterns = [patterns]
        if not patterns or not isinstance(patterns, list) or not all(isinstance(p, str) for p in patterns):
            raise ConfigError(f"{where}: ja4 must be a non-empty list of regular expressions")
        action = table.get("action", "tag")
        if action not in ("refuse", "tag"):
            raise ConfigError(f"{where}: action must be refuse or tag")
        tag = table.get("tag", "")
        if action == "tag" and (not isinstance(tag, str) or not tag):
            raise ConfigError(f"{where}: action = tag needs a tag name")
        try:
            compiled = tuple(re.compile(p) for p in patterns)
        except re.error as exc:
            raise ConfigError(f"{where}: bad regular expression: {exc}") from None
        rules.append(ClientFilter(compiled, action, str(tag), str(table.get("reason", ""))))
    return rules


class _HelloMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.hellos = Counter("sora_tls_client_hellos", "TLS ClientHellos by protocol and JA4 fingerprint "
                              f"(at most {MAX_LABELS} distinct fingerprints, then 'other').",
                              ["protocol", "ja4"], registry=registry)
        self.filtered = Counter("sora_tls_client_filtered", "Connections a [[tls.client_filters]] rule "
                                "refused or tagged.", ["protocol", "action"], registry=registry)
        self.seen: set[str] = set()


_METRICS: weakref.WeakKeyDictionary[CollectorRegistry, _HelloMetrics] = weakref.WeakKeyDictionary()


@dataclass
class HelloVerdict:
    """What the rules decided: ``refuse`` (with the reason) and the tags to add."""

    refuse: str | None = None
    tags: list[str] = field(default_factory=list)


class ClientHelloPolicy:
    """The fingerprint rules of a kernel and their metrics (one per registry)."""

    def __init__(self, rules: Sequence[ClientFilter], registry: CollectorRegistry) -> None:
        self.rules = list(rules)
        metrics = _METRICS.get(registry)
        if metrics is None:
            metrics = _METRICS[registry] = _HelloMetrics(registry)
        self.metrics = metrics

    def check(self, protocol: str, fingerprint: str) -> HelloVerdict:
        """Count the fingerprint and apply the rules (first refusing rule wins; every tag applies)."""
        label = fingerprint or "unparsed"
        if label not in self.metrics.seen:
            if len(self.metrics.seen) < MAX_LABELS:
                self.metrics.seen.add(label)
            else:
                label = "other"
        self.metrics.hellos.labels(protocol, label).inc()
        verdict = HelloVerdict()
        if not fingerprint:
            return verdict
        for rule in self.rules:
            if not rule.matches(fingerprint):
                continue
            if rule.action == "refuse":
                verdict.refuse = rule.reason or "refused by a client filter"
                self.metrics.filtered.labels(protocol, "refuse").inc()
                return verdict
            verdict.tags.append(rule.tag)
            self.metrics.filtered.labels(protocol, "tag").inc()
        return verdict
