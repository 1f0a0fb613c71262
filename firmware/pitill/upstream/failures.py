"""Why the upstream host could not be used: reasons the monitor shows, and errors that carry them.

Two kinds of failure matter to a payment terminal:
- UnreachableError: the request was never sent (name did not resolve, connect refused or timed
  out). The outcome is known: nothing was authorized.
- OutcomeUnknown: the request was sent but no usable answer came (timeout, reset, garbage). The
  host may have approved it; the sale must be reversed before anything else is sent.
"""

from __future__ import annotations

import errno
import socket
import ssl
from enum import StrEnum

from pitill.errors import UpstreamError, UpstreamTimeout


class LinkReason(StrEnum):
    """A short word for the screen and the log: why the link is bad."""

    DNS = "DNS"  # the host name did not resolve
    REFUSED = "REFUSED"  # nothing listens on the port
    TIMEOUT = "TIMEOUT"  # connect or answer took too long
    RESET = "RESET"  # the connection broke under us
    UNREACHABLE = "UNREACHABLE"  # no route to the host / network down
    PROTOCOL = "PROTOCOL"  # the host answered something we cannot read
    TLS = "TLS"  # the TLS handshake failed: a certificate not valid for the name, or no TLS
    SLOW = "SLOW"  # answers come, but slower than the slow threshold
    RETRY = "RETRY"  # the host answers with a transient code (91, 96...)


class UnreachableError(UpstreamError):
    """The request was not sent: its outcome is known (not authorized)."""

    def __init__(self, reason: LinkReason, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class ResolveError(UnreachableError):
    """The upstream host name did not resolve (NXDOMAIN, no DNS server, resolver timeout).

    `conclusive`: the resolver already asked again and every query failed or went unanswered
    (SystemResolver), so the link monitor takes it as an outage at once."""

    def __init__(self, host: str, detail: str, *, conclusive: bool = False) -> None:
        super().__init__(
            LinkReason.DNS,
            f"upstream host name {host!r} did not resolve ({detail}); "
            "check upstream.host and the network's DNS",
        )
        self.host = host
        self.conclusive = conclusive


class OutcomeUnknown(UpstreamTimeout):
    """The request was sent but no answer could be matched to it: it must be reversed."""

    def __init__(self, reason: LinkReason, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def reason_for_os_error(exc: OSError) -> LinkReason:
    """The link reason for a socket error raised while connecting, sending or receiving."""
    if isinstance(exc, socket.gaierror):
        return LinkReason.DNS
    if isinstance(exc, ssl.SSLError):  # an OSError too: check it before the errno cases
        return LinkReason.TLS
    if isinstance(exc, ConnectionRefusedError):
        return LinkReason.REFUSED
    if isinstance(exc, ConnectionResetError | ConnectionAbortedError | BrokenPipeError):
        return LinkReason.RESET
    if isinstance(exc, TimeoutError):
        return LinkReason.TIMEOUT
    if exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH, errno.ENETDOWN, errno.EHOSTDOWN):
        return LinkReason.UNREACHABLE
    return LinkReason.RESET
