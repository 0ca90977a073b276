"""Sora's Sieve interpreter (RFC 5228 and extensions), run at delivery."""
