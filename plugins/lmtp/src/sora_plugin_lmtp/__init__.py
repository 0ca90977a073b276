"""Sora's LMTP plugin: mail from Postfix, Exim or any MTA over LMTP (RFC 2033).

Layers, bottom up: :mod:`.protocol` (sans-I/O grammar and replies), :mod:`.session` (the state
machine over a kernel :class:`~sora_kernel.net.Connection`), :mod:`.server` (listeners and
settings), :mod:`.bench` (``sora bench lmtp``). :mod:`.plugin` holds the hook implementations.
"""

__version__ = "0.1.0"
