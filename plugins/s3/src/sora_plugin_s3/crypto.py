"""Client-side encryption of stored bodies: AES-256-GCM, stored as ``nonce (12) || ciphertext || tag (16)``.

The content hash is taken over the plaintext, so deduplication works whether or not a body is
encrypted. Decryption streams: ciphertext goes in chunk by chunk and the tag, the last 16 bytes, is
checked at the end (:meth:`StreamDecryptor.finish` raises on a tampered or truncated object), which
is why the read path writes the plaintext to a temporary file and serves it only after ``finish``.
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

NONCE = 12
TAG = 16


class DecryptError(Exception):
    """The object is not a valid ciphertext under the configured key."""


def encrypt(key: bytes, data: bytes) -> bytes:
    """``nonce || ciphertext || tag`` of ``data``."""
    nonce = os.urandom(NONCE)
    return nonce + AESGCM(key).encrypt(nonce, data, None)


def decrypt(key: bytes, blob: bytes) -> bytes:
    """The plaintext of a whole stored object."""
    if len(blob) < NONCE + TAG:
        raise DecryptError("object shorter than nonce and tag")
    try:
        return AESGCM(key).decrypt(blob[:NONCE], blob[NONCE:], None)
    except InvalidTag:
        raise DecryptError("authentication tag mismatch (wrong key or corrupted object)") from None


class StreamDecryptor:
    """Decrypt an object fed in arbitrary chunks; holds back the last 16 bytes as the tag."""

    def __init__(self, key: bytes) -> None:
        self._key = key
        self._head = b""
        self._tail = b""
        self._decryptor: object | None = None

    def update(self, chunk: bytes) -> bytes:
        """Plaintext for the ciphertext seen so far (not yet authenticated)."""
        if self._decryptor is None:
            self._head += chunk
            if len(self._head) < NONCE:
                return b""
            nonce, chunk = self._head[:NONCE], self._head[NONCE:]
            self._decryptor = Cipher(algorithms.AES(self._key), modes.GCM(nonce)).decryptor()
        data = self._tail + chunk
        self._tail = data[-TAG:]
        body = data[:-TAG]
        return self._decryptor.update(body) if body else b""  # type: ignore[attr-defined]

    def finish(self) -> bytes:
        """Check the tag; raises DecryptError when it does not match."""
        if self._decryptor is None or len(self._tail) < TAG:
            raise DecryptError("object shorter than nonce and tag")
        try:
            return self._decryptor.finalize_with_tag(self._tail)  # type: ignore[attr-defined,no-any-return]
        except InvalidTag:
            raise DecryptError("authentication tag mismatch (wrong key or corrupted object)") from None
