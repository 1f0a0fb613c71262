"""keepalive.rtt_from_info: the round trip the monitor's keepalive grace is made of.

The kernel's TCP_INFO is built by hand for the rules (a smoothed round trip lifted by one slow
answer, no sample yet, an older kernel's shorter struct), and read once from a real loopback
connection to check the offsets against this kernel's layout.
"""

from __future__ import annotations

import socket
import struct

from pitill.upstream.keepalive import rtt_from_info

FULL = struct.Struct("8B24I4Q4I")  # up to tcpi_min_rtt
OLD = struct.Struct("8B17I")  # up to tcpi_rttvar: a kernel before 4.10


def info(srtt_us: int, min_rtt_us: int | None) -> bytes:
    if min_rtt_us is None:
        return OLD.pack(*[0] * 8, *[0] * 15, srtt_us, 0)
    counters = [0] * 24
    counters[15] = srtt_us
    return FULL.pack(*[0] * 8, *counters, 0, 0, 51, 5, 8, 7, 0, min_rtt_us)


def test_the_least_round_trip_wins_over_a_smoothed_one_a_slow_answer_lifted() -> None:
    """An echo acknowledged only after a heal lifted the smoothed figure to 0.4 s; the link's
    round trip is still a millisecond, and so is the grace the monitor builds on it."""
    assert rtt_from_info(info(srtt_us=400_000, min_rtt_us=1_000)) == 0.001


def test_a_slow_link_stays_slow() -> None:
    assert rtt_from_info(info(srtt_us=650_000, min_rtt_us=600_000)) == 0.6


def test_the_smoothed_round_trip_before_the_first_sample_and_on_older_kernels() -> None:
    assert rtt_from_info(info(srtt_us=20_000, min_rtt_us=0xFFFFFFFF)) == 0.02
    assert rtt_from_info(info(srtt_us=20_000, min_rtt_us=None)) == 0.02
    assert rtt_from_info(b"\0" * 10) is None


def test_the_offsets_match_this_kernel() -> None:
    """A real loopback connection: bytes and segments where the layout says they are."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    with server, socket.create_connection(server.getsockname()) as client:
        peer, _ = server.accept()
        with peer:
            for _ in range(5):
                client.sendall(b"x" * 10)
                assert peer.recv(10) == b"x" * 10
                peer.sendall(b"y")
                assert client.recv(1) == b"y"
            raw = client.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, FULL.size)
    fields = FULL.unpack_from(raw)
    assert fields[34:36] == (51, 5)  # bytes acked (50 and the SYN), bytes received
    least = rtt_from_info(raw)
    assert least is not None and 0 < least <= fields[8 + 15] / 1_000_000.0  # <= smoothed
