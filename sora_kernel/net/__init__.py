"""Shared socket plumbing: listeners, connections with line and literal framing, TLS, limits."""

from .connection import Connection, ConnectionClosed, LineTooLong
from .listener import ConnectionLimiter, Listener, serve_tcp
from .tls import load_tls_context

__all__ = [
    "Connection",
    "ConnectionClosed",
    "ConnectionLimiter",
    "LineTooLong",
    "Listener",
    "load_tls_context",
    "serve_tcp",
]
