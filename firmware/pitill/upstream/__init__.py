"""Upstream: ISO 8583 messages, framing, name resolution, the TCP client and the link monitor."""
