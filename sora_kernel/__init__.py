"""Sora's kernel. Plugins import :mod:`sora_kernel.api` only; every other module is internal."""

__version__ = "0.2.0"
