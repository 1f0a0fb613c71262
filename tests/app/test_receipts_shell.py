"""Receipts in the shell: printed after the sale is journaled, off the loop; a printer that is
unplugged never blocks or loses a sale, the screen says so, and the receipt prints later."""

from __future__ import annotations

import contextlib
import os
import select
from collections.abc import Iterator
from pathlib import Path

import pytest
from shell_kit import ShellRig

from pitill.core.state import Phase
from pitill.core.types import TxnStatus
from pitill.receipt import ReceiptHeader, SerialReceipts

HEADER = ReceiptHeader()


class PtyPrinter:
    """A serial receipt printer stand-in: a pty pair; the slave is the printer's port."""

    def __init__(self) -> None:
        self.master, self.slave = os.openpty()
        self.path = os.ttyname(self.slave)

    def received(self) -> bytes:
        data = b""
        for _ in range(100):  # bounded: at most 100 reads
            ready, _, _ = select.select([self.master], [], [], 0.05)
            if not ready:
                break
            data += os.read(self.master, 65536)
        return data

    def unplug(self) -> None:
        os.close(self.slave)
        os.close(self.master)


@pytest.fixture
def printer() -> Iterator[PtyPrinter]:
    pty = PtyPrinter()
    yield pty
    for fd in (pty.master, pty.slave):
        with contextlib.suppress(OSError):  # unplug() closed them already
            os.close(fd)


def test_receipt_after_the_sale_then_unplugged_the_sale_stands(
    tmp_path: Path, printer: PtyPrinter
) -> None:
    sink = SerialReceipts(printer.path, "PITILL01", HEADER, timeout_s=1.0)
    rig = ShellRig(tmp_path, receipts=sink)
    got = bytearray()

    def printed() -> bool:
        got.extend(printer.received())
        return b"CASH" in got and b"\x1dV" in got  # the words, then the cut

    def screen_text() -> str:
        return rig.terminal.screen.text() if rig.terminal.screen is not None else ""

    try:
        rig.keys("5", "0", "0", "FN", "OK")  # a cash sale, exact money
        assert rig.phase is Phase.CHANGE and rig.status_of(1) is TxnStatus.COMPLETED
        assert rig.settle_until(printed)
        assert b"Tendered 5.00" in got and b"PITILL01-000001-" in got
        rig.keys("OK")
        printer.unplug()
        rig.keys("7", "0", "0", "FN", "OK")
        assert rig.phase is Phase.CHANGE and rig.status_of(2) is TxnStatus.COMPLETED
        assert rig.settle_until(lambda: "Receipt NOT printed" in screen_text())
        assert rig.phase is Phase.CHANGE  # the sale goes on: change, drawer, next customer
        assert rig.terminal.drawer_opened == 2
        row = rig.journal.get(2)
    finally:
        rig.close()
    # Plugged back in (on a new port): the receipt of sale 2 prints from the journal.
    again = PtyPrinter()
    try:
        assert row is not None
        SerialReceipts(again.path, "PITILL01", HEADER).print_row(row)
        assert b"Tendered 7.00" in again.received()
    finally:
        again.unplug()
