"""Sora IMAP plugin: IMAP4rev1/IMAP4rev2 server on the Sora kernel."""
