"""Shared socket plumbing: listeners, connections with line and literal framing, TLS, limits."""

from .connection import Connection, ConnectionClosed, LineTooLong
from .listener import AdmitPolicy, Listener, ProtocolListeners, serve_tcp
from .tls import load_tls_context

__all__ = [
    "AdmitPolicy",
    "Connection",
    "ConnectionClosed",
    "LineTooLong",
    "Listener",
    "ProtocolListeners",
    "load_tls_context",
    "serve_tcp",
]
