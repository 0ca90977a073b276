"""Sora's POP3 server plugin: RFC 1939 with CAPA, SASL AUTH, STLS, implicit TLS and UTF8."""
