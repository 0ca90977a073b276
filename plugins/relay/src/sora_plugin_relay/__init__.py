"""Sora relay queue: outbound mail through the site's MTA (SMTP) or an HTTP endpoint."""

__version__ = "0.1.0"
