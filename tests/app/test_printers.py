"""Receipt printers: status asked with DLE EOT before printing (a pty pair stands in for a serial
printer that answers, or does not), out of paper or offline never loses a sale and the receipt
is reprinted later from the keypad (FN 6 OK without a PIN; older ones and the merchant's copy
with it), a USB printer that is not plugged in, and the [receipt] config."""

from __future__ import annotations

import contextlib
import os
import select
import threading
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
from escpos.printer import Serial
from shell_kit import ShellRig

from pitill.config import Config, ReceiptConfig, TerminalConfig, config_from_dict
from pitill.core.settlement import Reconciliation
from pitill.core.state import Phase
from pitill.core.types import LinkStatus, TxnStatus
from pitill.errors import ConfigError, PrinterError
from pitill.receipt import (
    STATUS_ONLINE,
    STATUS_PAPER,
    PrinterStatus,
    ReceiptHeader,
    SerialReceipts,
    UsbReceipts,
    printer_status,
    receipt_sink,
)
from pitill.upstream.messages import Batch

HEADER = ReceiptHeader()
STATUS_S = 0.6  # how long a status query waits: room for a loaded machine, not a timed assert
ONLINE, OFFLINE = 0x12, 0x1A  # DLE EOT 1: bit 3 = offline (bits 1 and 4 always set)
PAPER_OK, PAPER_LOW, NO_PAPER = 0x12, 0x1E, 0x72  # DLE EOT 4


class AnsweringPrinter:
    """A serial ESC/POS printer stand-in on a pty pair: it answers DLE EOT 1 and 4 with the
    status bytes set here (None: it does not answer), and keeps everything else it receives."""

    def __init__(self) -> None:
        self.master, self.slave = os.openpty()
        self.path = os.ttyname(self.slave)
        self.online: int | None = ONLINE
        self.paper: int | None = PAPER_OK
        self.got = bytearray()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        pending = b""
        while not self._stop.is_set():
            ready, _, _ = select.select([self.master], [], [], 0.02)
            if not ready:
                continue
            try:
                pending += os.read(self.master, 65536)
            except OSError:
                return
            for query, answer in ((STATUS_ONLINE, self.online), (STATUS_PAPER, self.paper)):
                while query in pending:
                    pending = pending.replace(query, b"", 1)
                    if answer is not None:
                        os.write(self.master, bytes([answer]))
            with self._lock:
                self.got += pending
            pending = b""

    def received(self) -> bytes:
        with self._lock:
            data, self.got = bytes(self.got), bytearray()
        return data

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        for fd in (self.master, self.slave):
            with contextlib.suppress(OSError):
                os.close(fd)


@pytest.fixture
def printer() -> Iterator[AnsweringPrinter]:
    pty = AnsweringPrinter()
    yield pty
    pty.close()


def status_of(printer: AnsweringPrinter) -> PrinterStatus:
    device = Serial(devfile=printer.path, timeout=STATUS_S)
    device.open(raise_not_found=True)
    try:
        return printer_status(device)
    finally:
        device.close()


@pytest.mark.parametrize(
    ("online", "paper", "expected"),
    [
        (ONLINE, PAPER_OK, PrinterStatus.READY),
        (ONLINE, PAPER_LOW, PrinterStatus.PAPER_LOW),
        (ONLINE, NO_PAPER, PrinterStatus.NO_PAPER),
        (OFFLINE, PAPER_OK, PrinterStatus.OFFLINE),
        (None, None, PrinterStatus.UNKNOWN),
        (ONLINE, None, PrinterStatus.UNKNOWN),
    ],
)
def test_status_from_dle_eot(
    printer: AnsweringPrinter, online: int | None, paper: int | None, expected: PrinterStatus
) -> None:
    printer.online, printer.paper = online, paper
    assert status_of(printer) is expected


def test_a_silent_printer_is_unknown_where_python_escpos_says_paper_is_fine(
    printer: AnsweringPrinter,
) -> None:
    printer.online = printer.paper = None
    device = Serial(devfile=printer.path, timeout=STATUS_S)
    device.open(raise_not_found=True)
    try:
        assert device.paper_status() == 2  # "adequate": what pitill must not believe
        assert printer_status(device) is PrinterStatus.UNKNOWN
    finally:
        device.close()


def test_out_of_paper_is_refused_before_a_byte_of_the_receipt(printer: AnsweringPrinter) -> None:
    rig_row = _row()
    printer.paper = NO_PAPER
    sink = SerialReceipts(
        printer.path, "PITILL01", HEADER, timeout_s=1.0, status_timeout_s=STATUS_S
    )
    with pytest.raises(PrinterError, match="out of paper: receipt NOT printed"):
        sink.print_row(rig_row)
    assert b"TOTAL" not in printer.received()
    printer.paper = PAPER_OK
    sink.print_row(rig_row)
    assert b"TOTAL" in _wait_for(printer, b"\x1dV")


def test_a_printer_that_does_not_answer_still_prints(printer: AnsweringPrinter) -> None:
    printer.online = printer.paper = None
    SerialReceipts(
        printer.path, "PITILL01", HEADER, timeout_s=1.0, status_timeout_s=STATUS_S
    ).print_row(_row())
    assert b"TOTAL" in _wait_for(printer, b"\x1dV")


def test_out_of_paper_mid_sale_then_reprinted_from_the_keypad(
    tmp_path: Path, printer: AnsweringPrinter
) -> None:
    sink = SerialReceipts(
        printer.path, "PITILL01", HEADER, timeout_s=1.0, status_timeout_s=STATUS_S
    )
    rig = ShellRig(tmp_path, receipts=sink)

    def screen_text() -> str:
        return rig.terminal.screen.text() if rig.terminal.screen is not None else ""

    got = bytearray()

    def printed(*words: bytes) -> bool:
        got.extend(printer.received())
        return all(word in got for word in words)

    try:
        rig.keys("5", "0", "0", "FN", "OK")  # seq 1, printed
        assert rig.settle_until(lambda: printed(b"CASH", b"\x1dV"))
        assert b"REPRINT" not in got
        rig.keys("OK")
        printer.paper = NO_PAPER
        rig.keys("7", "0", "0", "FN", "OK")  # seq 2: no paper
        assert rig.phase is Phase.CHANGE and rig.status_of(2) is TxnStatus.COMPLETED
        assert rig.settle_until(lambda: "Receipt NOT printed" in screen_text())
        assert rig.terminal.drawer_opened == 2  # the sale went on
        rig.keys("OK")
        printer.paper = PAPER_OK
        got.clear()
        rig.keys("FN", "6", "OK")  # any cashier: the last receipt, no PIN
        assert rig.settle_until(lambda: printed(b"Tendered 7.00", b"CUSTOMER COPY", b"\x1dV"))
        assert b"REPRINT - DUPLICATE" in got
        assert rig.phase is Phase.IDLE
        # An older receipt, the merchant's copy: with the PIN.
        assert rig.open_menu()
        rig.keys("6")
        assert rig.settle_until(lambda: "REPRINT #2" in screen_text())
        rig.keys("CLEAR")
        assert rig.settle_until(lambda: "REPRINT #1" in screen_text())
        got.clear()
        rig.keys("FN")
        assert rig.settle_until(lambda: printed(b"Tendered 5.00", b"MERCHANT COPY", b"\x1dV"))
    finally:
        rig.close()


def test_a_usb_printer_not_plugged_in_loses_no_sale(tmp_path: Path) -> None:
    sink = UsbReceipts(0x04B8, 0x0E15, "PITILL01", HEADER)  # no such device on this machine
    with pytest.raises(Exception, match=r"04b8|Unable to open USB printer"):
        sink.print_row(_row())
    rig = ShellRig(tmp_path, receipts=sink)
    try:
        rig.keys("5", "0", "0", "FN", "OK")
        assert rig.status_of(1) is TxnStatus.COMPLETED
        assert rig.settle_until(
            lambda: (
                rig.terminal.screen is not None
                and "Receipt NOT printed" in rig.terminal.screen.text()
            )
        )
    finally:
        rig.close()


def load_config_text(text: str) -> Config:
    return config_from_dict(tomllib.loads(text))


def test_receipt_config_usb_and_serial() -> None:
    usb = load_config_text('[receipt]\nkind = "usb"\nvendor_id = 0x04b8\nproduct_id = 0x0202\n')
    sink = receipt_sink(usb)
    assert isinstance(sink, UsbReceipts) and sink.name == "usb 04b8:0202"
    with pytest.raises(ConfigError, match="needs vendor_id and product_id"):
        load_config_text('[receipt]\nkind = "usb"\n')
    with pytest.raises(ConfigError, match="kind: must be one of 'serial', 'usb'"):
        load_config_text('[receipt]\nkind = "parallel"\n')
    serial = Config(receipt=ReceiptConfig(port="/dev/ttyUSB1"), terminal=TerminalConfig())
    assert isinstance(receipt_sink(serial), SerialReceipts)
    assert receipt_sink(Config()) is None


def _row():  # type: ignore[no-untyped-def]
    from pitill.core.types import TxnKind, TxnMode
    from pitill.records import JournalRow

    return JournalRow(
        seq=3,
        kind=TxnKind.CASH,
        mode=TxnMode.ONLINE,
        amount_minor=500,
        currency="EUR",
        status=TxnStatus.COMPLETED,
        masked_pan="",
        stan=3,
        local_datetime="261130120405",
        response_code="",
        auth_code="",
        tendered_minor=500,
        change_minor=0,
        reverses_seq=0,
        attempts=0,
    )


def _wait_for(printer: AnsweringPrinter, end: bytes) -> bytes:
    data = b""
    for _ in range(200):  # bounded: at most 200 reads of up to 20 ms
        data += printer.received()
        if end in data:
            break
        select.select([], [], [], 0.02)
    return data


def test_end_of_day_with_no_paper_closes_the_day_and_says_the_z_was_not_printed(
    tmp_path: Path, printer: AnsweringPrinter
) -> None:
    sink = SerialReceipts(
        printer.path, "PITILL01", HEADER, timeout_s=1.0, status_timeout_s=STATUS_S
    )
    rig = ShellRig(tmp_path, receipts=sink)
    try:
        rig.link(LinkStatus.ONLINE)
        rig.keys("5", "0", "0", "FN", "OK", "OK")  # a cash sale, its receipt printed
        assert rig.settle_until(lambda: b"\x1dV" in printer.received())
        printer.paper = NO_PAPER
        assert rig.open_menu()
        rig.keys("5", "OK")
        assert rig.settle_until(lambda: rig.phase is Phase.REPORT)
        lines = rig.terminal.state.report_lines
        assert lines[:2] == ("Z day 1 #1-1", "Host agrees") and "Z report NOT printed" in lines
        assert rig.upstream.reconciled == [(Batch(1, 1, 1), Reconciliation())]  # cash: none
        assert rig.journal.z_report(1).totals.by_kind["cash"].count == 1
    finally:
        rig.close()


def test_the_doctor_asks_the_printer(printer: AnsweringPrinter, tmp_path: Path) -> None:
    from pitill.doctor import check_receipt_printer

    sink = SerialReceipts(printer.path, "PITILL01", HEADER, status_timeout_s=STATUS_S)
    ready = check_receipt_printer(sink)
    assert ready.ok and ready.detail == "says: ready"
    printer.paper = NO_PAPER
    empty = check_receipt_printer(sink)
    assert empty.failed and empty.detail == "says: out of paper" and "load paper" in empty.fix
    printer.online = printer.paper = None
    silent = check_receipt_printer(sink)
    assert silent.ok and "does not answer status queries" in silent.detail
    gone = SerialReceipts(str(tmp_path / "ttyUSB9"), "PITILL01", HEADER)
    missing = check_receipt_printer(gone)
    assert missing.failed and missing.detail.startswith("cannot open it")
