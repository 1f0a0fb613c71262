"""TCP keepalive on the persistent upstream connection: the kernel probes, we read the answer.

The host's kernel answers a keepalive probe (an empty segment) with an ACK: it costs the host's
application nothing, so the link can be watched every second without one ISO 8583 message.
- `tune` turns keepalive on with whole seconds (the kernel's unit) and sets TCP_USER_TIMEOUT, so
  data or probes left unacknowledged that long make the kernel drop the connection: a request
  sent into a dead link fails fast instead of waiting for its own timeout.
- `ack_age_s` reads how long ago the host's TCP last acknowledged anything (TCP_INFO's
  tcpi_last_ack_recv). On a healthy idle link it stays below idle_s plus a round trip: the kernel
  probes idle_s after the last thing it heard, and the host answers.
- `kick` asks for one more probe now: setting TCP_KEEPIDLE re-arms the keepalive timer, which fires
  at once when the link has been silent for longer than idle_s (Linux: tcp_sock_set_keepidle). A
  single lost probe is so re-sent within the monitor's grace period, not a second later.

Linux only (the Pi's kernel); elsewhere `tune` does what the platform allows and `ack_age_s`
returns None, and the monitor falls back to echoes and connection errors.
"""

from __future__ import annotations

import socket
import struct
from contextlib import suppress
from dataclasses import dataclass
from typing import Protocol

# struct tcp_info starts with 8 one-byte fields, then 32-bit counters; tcpi_last_ack_recv (ms) is
# the 13th of those (linux/tcp.h, unchanged since 2.6).
_TCP_INFO = struct.Struct("8B13I")
_LAST_ACK_RECV = 8 + 12
_TCP_INFO_RTT = struct.Struct("8B17I")  # ...then pmtu, rcv_ssthresh, rtt (us), rttvar
_RTT = 8 + 15
# ...and after rcv_rtt, rcv_space, total_retrans, four 64-bit rates and byte counts, segs_out,
# segs_in and notsent_bytes: tcpi_min_rtt (us; Linux 4.10+), the least round trip of the last
# five minutes, ~0 before the first sample.
_TCP_INFO_MIN_RTT = struct.Struct("8B24I4Q4I")
_MIN_RTT = 8 + 24 + 4 + 3
_NO_SAMPLE = 0xFFFFFFFF


@dataclass(frozen=True)
class KeepAlive:
    """Keepalive settings for one socket (whole seconds for the kernel's probe timers)."""

    idle_s: int = 1  # silence before the first probe (the kernel's minimum)
    interval_s: int = 1  # between unanswered probes
    count: int = 3  # unanswered probes before the kernel gives up (TCP_USER_TIMEOUT wins if set)
    user_timeout_s: float = 2.0  # unacknowledged data or probes this long: the kernel drops it


def tune(sock: socket.socket, keepalive: KeepAlive) -> bool:
    """Turn keepalive on with `keepalive`'s timers; False when the platform has no such options."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    except OSError:
        return False
    tuned = True
    for name, value in (
        ("TCP_KEEPIDLE", keepalive.idle_s),
        ("TCP_KEEPINTVL", keepalive.interval_s),
        ("TCP_KEEPCNT", keepalive.count),
        ("TCP_USER_TIMEOUT", round(keepalive.user_timeout_s * 1000)),
    ):
        option = getattr(socket, name, None)
        if option is None:
            tuned = False
            continue
        try:
            sock.setsockopt(socket.IPPROTO_TCP, option, value)
        except OSError:
            tuned = False
    return tuned


def ack_age_s(sock: socket.socket) -> float | None:
    """Seconds since the host's TCP last acknowledged anything; None when it cannot be read."""
    option = getattr(socket, "TCP_INFO", None)
    if option is None:
        return None
    try:
        raw = sock.getsockopt(socket.IPPROTO_TCP, option, _TCP_INFO.size)
    except OSError:
        return None
    if len(raw) < _TCP_INFO.size:
        return None
    milliseconds: int = _TCP_INFO.unpack_from(raw)[_LAST_ACK_RECV]
    return milliseconds / 1000.0


def kick(sock: socket.socket, keepalive: KeepAlive) -> None:
    """One keepalive probe now if the link has been silent past idle_s (see the module doc)."""
    option = getattr(socket, "TCP_KEEPIDLE", None)
    if option is not None:
        with suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, option, keepalive.idle_s)


def round_trip_s(sock: socket.socket) -> float | None:
    """The connection's round trip as the kernel knows it (see rtt_from_info); None if unknown."""
    option = getattr(socket, "TCP_INFO", None)
    if option is None:
        return None
    try:
        raw = sock.getsockopt(socket.IPPROTO_TCP, option, _TCP_INFO_MIN_RTT.size)
    except OSError:
        return None
    return rtt_from_info(raw)


def rtt_from_info(raw: bytes) -> float | None:
    """The least round trip of the last five minutes (tcpi_min_rtt), else the smoothed one
    (tcpi_rtt: older kernels, no sample yet); None when `raw` holds neither.

    The least, not the smoothed: one answer that spanned a heal (an echo sent into a dead link,
    acknowledged once it came back) can lift the smoothed figure to half a second for minutes
    of an idle link, and the monitor's keepalive grace (three round trips) with it: the next
    outage would show seconds late. A slow link's least round trip is still slow."""
    if len(raw) >= _TCP_INFO_MIN_RTT.size:
        least: int = _TCP_INFO_MIN_RTT.unpack_from(raw)[_MIN_RTT]
        if least != _NO_SAMPLE:
            return least / 1_000_000.0
    if len(raw) < _TCP_INFO_RTT.size:
        return None
    microseconds: int = _TCP_INFO_RTT.unpack_from(raw)[_RTT]
    return microseconds / 1_000_000.0


class AckWatch(Protocol):
    """How the monitor reads a connection's keepalive (the kernel's; a fake in tests)."""

    def ack_age_s(self, sock: socket.socket) -> float | None: ...

    def round_trip_s(self, sock: socket.socket) -> float | None: ...

    def kick(self, sock: socket.socket, keepalive: KeepAlive) -> None: ...


class KernelAckWatch:
    """The kernel's own figures (TCP_INFO) and its keepalive timer."""

    def ack_age_s(self, sock: socket.socket) -> float | None:
        return ack_age_s(sock)

    def round_trip_s(self, sock: socket.socket) -> float | None:
        return round_trip_s(sock)

    def kick(self, sock: socket.socket, keepalive: KeepAlive) -> None:
        kick(sock, keepalive)
