"""Sora S3 blob storage: spool, upload worker, cache, cleaner, client-side encryption."""
