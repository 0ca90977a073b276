"""Sora ManageSieve server (RFC 5804) and the ``sora sieve`` commands."""
