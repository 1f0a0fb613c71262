"""ISO 8583 requests as a pitill terminal sends them, for the host's tests."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager

from pitill.upstream.messages import Message
from pitill_cli import PITILL

PAN = "4111111111111111"
OTHER = "5555555555554444"


def request(mti: str, stan: int, amount_minor: int, pan: str = PAN, **extra: str) -> Message:
    when = f"1130{stan % 10000:06d}"  # MMDDhhmmss, distinct per STAN
    message: Message = {
        "t": mti,
        "2": pan,
        "3": "000000",
        "4": f"{amount_minor:012d}",
        "7": when,
        "11": f"{stan:06d}",
        "12": when[4:],
        "13": when[:4],
        "14": "3012",
        "22": "902",
        "41": extra.pop("terminal_id", "PITILL01"),
        "42": "PITILLSHOP00001",
        "49": "978",
    }
    message.update(extra)
    return message


def reversal_of(sale: Message, stan: int, mti: str = "0420") -> Message:
    message = request(mti, stan, int(sale["4"]), pan=sale["2"], terminal_id=sale["41"])
    message["90"] = "0200" + sale["11"] + sale["7"] + "0" * 22
    return message


@contextmanager
def serving_hosts(*args: str, count: int = 1) -> Iterator[list[int]]:
    """`count` real `pitill host serve` processes with these arguments (the store's, --tls…) on
    ephemeral loopback ports; their ports, each read from the line it prints when listening."""
    processes = [
        subprocess.Popen(
            [*PITILL, "host", "serve", *args, "--listen", "127.0.0.1:0"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        for _ in range(count)
    ]
    try:
        ports = []
        for process in processes:
            assert process.stdout is not None
            line = process.stdout.readline()
            assert "listening on" in line, line
            ports.append(int(line.rsplit(":", 1)[1]))
        yield ports
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=10)
