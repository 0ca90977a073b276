"""Sora's ACME plugin: certificates from an ACME CA (RFC 8555), shared by every node through PostgreSQL."""
