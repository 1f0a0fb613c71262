"""Receipts: what each journaled outcome says to the customer, in words, as text, PNG and ESC/POS.

One function (`receipt_lines`) decides the words; the text, the PNG (the simulator and the README
gallery) and the ESC/POS bytes for a thermal printer (python-escpos, the optional extra
`receipt`) all draw those lines, so paper, screen and docs never disagree. A receipt is built
from the journal row, after the sale is durable: printing never decides or delays a sale. The
card number is the journal's masked one (first 6 and last 4 at most); the QR code holds the
receipt's reference only, no URL.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
import threading
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

from PIL import Image, ImageDraw, ImageFont

from pitill.cliargs import number
from pitill.config import Bound, Config
from pitill.core.responses import screen_text
from pitill.core.types import TxnKind, TxnMode, TxnStatus, format_amount
from pitill.errors import ConfigError, PrinterError
from pitill.logs import log_event
from pitill.records import JournalRow

log = logging.getLogger(__name__)

WIDTHS = (32, 42, 48)  # characters per line of 58 mm and 80 mm thermal printers
OFFLINE_WORDS = ("APPROVED OFFLINE", "Will be sent to the bank", "when the line is back.")


@dataclass(frozen=True)
class ReceiptHeader:
    """The shop's lines at the top of every receipt, and the paper's width in characters."""

    shop: str = "pitill"
    address: tuple[str, ...] = ()
    width: int = 32

    def __post_init__(self) -> None:
        if not WIDTHS[0] <= self.width <= WIDTHS[-1]:
            raise ConfigError(
                f"receipt width {self.width}: must be {WIDTHS[0]}..{WIDTHS[-1]} characters"
            )


def reference(row: JournalRow, terminal_id: str) -> str:
    """What the QR code holds: terminal, sequence number and local date/time (unique)."""
    return f"{terminal_id.strip()}-{row.seq:06d}-{row.local_datetime}"


def _when(local_datetime: str) -> str:
    """YYMMDDhhmmss (the journal's stamp from the trusted clock) as 2026-11-30 12:04:05."""
    d = local_datetime
    return f"20{d[0:2]}-{d[2:4]}-{d[4:6]} {d[6:8]}:{d[8:10]}:{d[10:12]}"


def outcome_lines(row: JournalRow) -> list[str]:
    """What happened, in words a customer understands (first line: the outcome in capitals)."""
    money = format_amount(row.amount_minor)
    if row.status is TxnStatus.VOID:
        done = "Cash given back" if row.kind is TxnKind.CASH else "Charge taken back"
        return ["VOID", f"Sale #{row.reverses_seq} cancelled", done]
    if row.kind is TxnKind.REFUND:
        return refund_lines(row)
    if row.status is TxnStatus.VOIDED or row.voided_by_seq:
        return ["VOIDED", f"Cancelled by #{row.voided_by_seq}" if row.voided_by_seq else ""]
    if row.kind is TxnKind.TOPUP:
        return topup_lines(row)
    if row.kind is TxnKind.CASH:
        change = format_amount(row.change_minor)
        return ["CASH", f"Tendered {format_amount(row.tendered_minor)}", f"Change {change}"]
    if row.status is TxnStatus.APPROVED:
        return ["APPROVED", f"Auth code {row.auth_code}" if row.auth_code else ""]
    if row.mode is TxnMode.OFFLINE and row.status is TxnStatus.PENDING:
        return [*OFFLINE_WORDS, f"Offline approval {row.response_code}"]
    if row.status is TxnStatus.FORWARDED:
        return ["APPROVED OFFLINE", "Sent to the bank", f"Offline approval {row.response_code}"]
    if row.status is TxnStatus.DECLINED_AFTER:
        return ["APPROVED OFFLINE", "Refused by the bank later", f"Code {row.response_code}"]
    if row.status is TxnStatus.DECLINED:
        return ["DECLINED", screen_text(row.response_code), f"Amount {money} NOT charged"]
    if row.status in (TxnStatus.REVERSAL_PENDING, TxnStatus.REVERSED):
        return ["NOT CHARGED", "No answer in time:", "the charge is taken back"]
    if row.status is TxnStatus.REVERSAL_REFUSED:  # the host did not take the charge back
        return ["CHARGE NOT TAKEN BACK", "The bank refused it", "Shop: call acquirer"]
    return ["OUTCOME UNKNOWN", "Ask the shop to check"]  # AUTHORIZING: recovered at the next boot


def topup_lines(row: JournalRow) -> list[str]:
    """A top-up with cash (FN 7): the cash went in only when the host credited the card."""
    if row.status is TxnStatus.APPROVED:
        return ["TOP-UP", "Cash received", f"Auth code {row.auth_code}" if row.auth_code else ""]
    if row.status is TxnStatus.DECLINED:
        return ["TOP-UP DECLINED", screen_text(row.response_code), "No cash taken"]
    if row.status in (TxnStatus.REVERSAL_PENDING, TxnStatus.REVERSED):
        return ["TOP-UP NOT DONE", "No answer in time:", "no cash taken"]
    return ["OUTCOME UNKNOWN", "Ask the shop to check"]


def refund_lines(row: JournalRow) -> list[str]:
    """A refund (FN 4): money back for sale #refunds_seq, and how it comes back."""
    sale = f"For sale #{row.refunds_seq}"
    if row.status is TxnStatus.COMPLETED:
        return ["REFUND", sale, "Cash given back"]
    if row.status is TxnStatus.APPROVED:
        return ["REFUND", sale, f"Auth code {row.auth_code}" if row.auth_code else "Approved"]
    if row.status is TxnStatus.PENDING:
        return ["REFUND OFFLINE", sale, "Will be sent to the bank", "when the line is back."]
    if row.status in (TxnStatus.FORWARDED, TxnStatus.DECLINED_AFTER):
        return ["REFUND OFFLINE", sale, "Sent to the bank"]
    if row.status is TxnStatus.DECLINED:
        return ["REFUND DECLINED", sale, screen_text(row.response_code), "Nothing given back"]
    if row.status in (TxnStatus.REVERSAL_PENDING, TxnStatus.REVERSED):
        return ["REFUND NOT MADE", sale, "No answer in time:", "nothing given back"]
    return ["OUTCOME UNKNOWN", "Ask the shop to check"]


def receipt_lines(
    row: JournalRow,
    terminal_id: str,
    header: ReceiptHeader,
    *,
    merchant: bool = False,
    reprint: bool = False,
) -> list[str]:
    """The whole receipt as lines of at most header.width characters (without the QR code)."""
    width = header.width

    def pair(left: str, right: str) -> str:
        return left + right.rjust(width - len(left)) if len(left) + len(right) < width else right

    lines = [header.shop.center(width), *(a.center(width) for a in header.address), ""]
    lines.append(pair("Terminal", terminal_id.strip()))
    lines.append(pair("Date", _when(row.local_datetime)))
    lines.append(pair("Seq", str(row.seq)))
    if row.kind in (TxnKind.CARD, TxnKind.TOPUP, TxnKind.BALANCE) or row.masked_pan:
        lines.append(pair("STAN", f"{row.stan:06d}"))
        lines.append(pair("Card", row.masked_pan))
    lines.append("")
    sign = "-" if row.status is TxnStatus.VOID or row.kind is TxnKind.REFUND else ""
    lines.append(pair("TOTAL", f"{row.currency} {sign}{format_amount(row.amount_minor)}"))
    lines.append("")
    outcome = [line for line in outcome_lines(row) if line]
    lines.append(outcome[0].center(width))
    lines += outcome[1:]
    if row.balance_minor is not None:  # a closed-loop host's answer: the card's new balance
        lines.append(pair("Balance", f"{row.currency} {format_amount(row.balance_minor)}"))
    lines.append("")
    lines.append(("MERCHANT COPY" if merchant else "CUSTOMER COPY").center(width))
    if reprint:  # printed again (FN 6): not a second sale, not a second refund
        lines.append("REPRINT - DUPLICATE".center(width))
    lines.append(reference(row, terminal_id).center(width))
    return [line[:width] for line in lines]


def receipt_text(
    row: JournalRow,
    terminal_id: str,
    header: ReceiptHeader,
    *,
    merchant: bool = False,
    reprint: bool = False,
) -> str:
    lines = receipt_lines(row, terminal_id, header, merchant=merchant, reprint=reprint)
    return "\n".join(lines) + "\n"


def receipt_png(
    row: JournalRow,
    terminal_id: str,
    header: ReceiptHeader,
    *,
    merchant: bool = False,
    reprint: bool = False,
) -> Image.Image:
    """The receipt as the paper looks (the simulator's --receipts and the README gallery)."""
    import qrcode  # python-escpos depends on it: the `receipt` extra

    lines = receipt_lines(row, terminal_id, header, merchant=merchant, reprint=reprint)
    font = ImageFont.load_default(size=14)
    char_w = 9  # the font's capitals are at most this wide at 14 px
    line_h = 18
    qr = qrcode.make(reference(row, terminal_id), box_size=3, border=2).get_image().convert("1")
    width = max(char_w * header.width + 16, qr.width + 16)
    height = line_h * len(lines) + qr.height + 24
    image = Image.new("1", (width, height), 1)
    draw = ImageDraw.Draw(image)
    for i, line in enumerate(lines):  # one cell per character, as on the paper
        for j, char in enumerate(line):
            x = 8 + j * char_w + (char_w - int(font.getlength(char))) // 2
            draw.text((x, 8 + i * line_h), char, font=font, fill=0)
    image.paste(qr, ((width - qr.width) // 2, 16 + line_h * len(lines)))
    return image


class EscposPrinter(Protocol):
    """What pitill uses of a python-escpos printer (Usb, Serial, Dummy...)."""

    def text(self, txt: str) -> None: ...

    def qr(self, content: str, *args: Any, **kwargs: Any) -> None: ...

    def cut(self, *args: Any, **kwargs: Any) -> None: ...


def print_receipt(
    printer: EscposPrinter,
    row: JournalRow,
    terminal_id: str,
    header: ReceiptHeader,
    *,
    merchant: bool = False,
    reprint: bool = False,
) -> None:
    """Send the receipt to an ESC/POS printer: the lines, the QR code, a cut."""
    printer.text(receipt_text(row, terminal_id, header, merchant=merchant, reprint=reprint))
    # python-escpos prints a note to stdout when the printer profile has no paper width: keep
    # stdout for pitill's own output (`pitill receipt` writes the text there).
    with contextlib.redirect_stdout(sys.stderr):
        printer.qr(reference(row, terminal_id), size=4, native=False, center=False)
    printer.cut()


# --- `pitill receipt` ----------------------------------------------------------------------------


def add_parser(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    receipt = commands.add_parser(
        "receipt",
        help="render the receipt of a journaled sale (text, PNG or ESC/POS bytes)",
        description=(
            "Render the receipt of the newest sale (or --seq N) from the journal, read-only: "
            "text on standard output, a PNG with --png, the ESC/POS bytes a thermal printer "
            "takes with --escpos (python-escpos, the optional extra `receipt`)."
        ),
        epilog="examples:\n  pitill receipt --data-dir data\n"
        "  pitill receipt --data-dir data --seq 3 --merchant --png /tmp/r.png --width 42",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    receipt.add_argument("--data-dir", type=Path, default=Path("data"), help="the journal's dir")
    receipt.add_argument(
        "--seq",
        type=number(Bound(1, 2**63 - 1), integer=True),
        help="the sale's sequence number (default: newest)",
    )
    receipt.add_argument("--merchant", action="store_true", help="the merchant's copy")
    receipt.add_argument(
        "--width",
        type=number(Bound(min(WIDTHS), max(WIDTHS)), integer=True),
        default=32,
        choices=WIDTHS,
        help="characters",
    )
    receipt.add_argument("--shop", default="pitill", help="the first line of the receipt")
    receipt.add_argument("--terminal-id", default="PITILL01", help="as in [terminal]")
    receipt.add_argument("--png", type=Path, help="also write the receipt as a PNG")
    receipt.add_argument("--escpos", type=Path, help="also write its ESC/POS bytes to FILE")
    receipt.set_defaults(handler=_receipt_command)


def _receipt_command(args: argparse.Namespace) -> int:
    from pitill.journal.listing import read_row

    row = read_row(args.data_dir, args.seq)
    header = ReceiptHeader(shop=args.shop, width=args.width)
    sys.stdout.write(receipt_text(row, args.terminal_id, header, merchant=args.merchant))
    if args.png is not None:
        image = receipt_png(row, args.terminal_id, header, merchant=args.merchant)
        image.save(args.png, format="PNG")  # whatever the name ends in
    if args.escpos is not None:
        from escpos.printer import Dummy

        dummy = Dummy()
        print_receipt(dummy, row, args.terminal_id, header, merchant=args.merchant)
        args.escpos.write_bytes(dummy.output)
    return 0


# --- where receipts go: the shell's side ---------------------------------------------------------


class ReceiptSink(Protocol):
    """Takes a journaled row's receipt (or a report's text, the Z report at end of day);
    raises (any exception) when it could not print it."""

    def print_row(self, row: JournalRow, merchant: bool = False, reprint: bool = False) -> None: ...

    def print_text(self, name: str, text: str) -> None: ...


# --- printer status: DLE EOT, as python-escpos sends it ------------------------------------------


class PrinterStatus(StrEnum):
    """What an ESC/POS printer said about itself (DLE EOT 1 and 4). A printer that does not
    answer is UNKNOWN, never READY: python-escpos's paper_status() says "adequate" (2) and
    is_online() False when nothing comes back, so pitill reads the bytes of query_status()."""

    READY = "ready"
    PAPER_LOW = "paper low"
    NO_PAPER = "out of paper"
    OFFLINE = "offline"
    UNKNOWN = "unknown"  # no answer (many cheap printers, or a one-way cable): printed anyway


# DLE EOT 1 (printer status): bit 3 set = offline. DLE EOT 4 (paper sensor): bits 5-6 paper end,
# bits 2-3 near end, bits 1 and 4 always set (python-escpos's RT_MASK_* constants).
STATUS_ONLINE = b"\x10\x04\x01"
STATUS_PAPER = b"\x10\x04\x04"
_MASK_OFFLINE = 0x08
_MASK_NO_PAPER = 0x72
_MASK_LOW_PAPER = 0x1E
NOT_PRINTABLE = (PrinterStatus.NO_PAPER, PrinterStatus.OFFLINE)
# One job at a time on the printer: a receipt and the Z report printed at once would interleave
# their bytes, and one job would read the other's status answer.
PRINTER_LOCK = threading.Lock()


class StatusPrinter(EscposPrinter, Protocol):
    def query_status(self, mode: bytes) -> bytes: ...


def printer_status(printer: StatusPrinter) -> PrinterStatus:
    """Ask the printer (query_status); no answer, or a failed read, is UNKNOWN."""
    try:
        online = printer.query_status(STATUS_ONLINE)
        if not online:
            return PrinterStatus.UNKNOWN
        if online[0] & _MASK_OFFLINE:
            return PrinterStatus.OFFLINE
        paper = printer.query_status(STATUS_PAPER)
    except Exception as exc:  # a read the device does not support: nothing learned
        log_event(log, "printer_status_failed", level=logging.INFO, error=f"{exc}")
        return PrinterStatus.UNKNOWN
    if not paper:
        return PrinterStatus.UNKNOWN
    if paper[0] & _MASK_NO_PAPER == _MASK_NO_PAPER:
        return PrinterStatus.NO_PAPER
    if paper[0] & _MASK_LOW_PAPER == _MASK_LOW_PAPER:
        return PrinterStatus.PAPER_LOW
    return PrinterStatus.READY


def checked(printer: StatusPrinter, where: str) -> PrinterStatus:
    """The printer's status; raises PrinterError when it says it cannot print."""
    status = printer_status(printer)
    log_event(log, "printer_status", printer=where, status=status.value)
    if status in NOT_PRINTABLE:
        raise PrinterError(
            f"receipt printer {where} is {status.value}: receipt NOT printed; "
            "fix the printer, then FN 6 OK reprints the last receipt"
        )
    return status


@dataclass(frozen=True)
class FileReceipts:
    """The simulator's printer (`pitill sim --receipts DIR`): SEQ-STATUS.txt and .png each."""

    directory: Path
    terminal_id: str
    header: ReceiptHeader

    def print_row(self, row: JournalRow, merchant: bool = False, reprint: bool = False) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        copy = ("-merchant" if merchant else "") + ("-reprint" if reprint else "")
        stem = self.directory / f"{row.seq:06d}-{row.status.value.lower()}{copy}"
        how = {"merchant": merchant, "reprint": reprint}
        text = receipt_text(row, self.terminal_id, self.header, **how)
        stem.with_suffix(".txt").write_text(text, encoding="utf-8")
        image = receipt_png(row, self.terminal_id, self.header, **how)
        image.save(stem.with_suffix(".png"))

    def print_text(self, name: str, text: str) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        (self.directory / f"{name}.txt").write_text(text, encoding="utf-8")


@dataclass(frozen=True)
class SerialReceipts:
    """An ESC/POS printer on a serial port (python-escpos's Serial). The port is opened for
    each receipt, so a printer unplugged and plugged back in works again at the next one."""

    devfile: str
    terminal_id: str
    header: ReceiptHeader
    baudrate: int = 9600
    timeout_s: float = 2.0

    status_timeout_s: float = 0.3  # how long a status query waits for the printer's byte

    def print_row(self, row: JournalRow, merchant: bool = False, reprint: bool = False) -> None:
        how = {"merchant": merchant, "reprint": reprint}
        self._job(lambda p: print_receipt(p, row, self.terminal_id, self.header, **how))

    def print_text(self, name: str, text: str) -> None:
        self._job(lambda p: (p.text(text), p.cut()))

    def status(self) -> PrinterStatus:
        """What the printer says now (`pitill doctor`); raises when the port does not open."""
        from escpos.printer import Serial

        with PRINTER_LOCK:
            printer = Serial(devfile=self.devfile, baudrate=self.baudrate, timeout=self.timeout_s)
            printer.open(raise_not_found=True)
            try:
                printer.device.timeout = self.status_timeout_s
                return printer_status(printer)
            finally:
                printer.close()

    def _job(self, job: Any) -> None:
        from escpos.printer import Serial

        with PRINTER_LOCK:
            self._job_alone(Serial, job)

    def _job_alone(self, serial: Any, job: Any) -> None:
        printer = serial(devfile=self.devfile, baudrate=self.baudrate, timeout=self.timeout_s)
        printer.open(raise_not_found=True)
        try:
            printer.device.timeout = self.status_timeout_s  # read(16) waits this for the answer
            checked(printer, self.devfile)
            printer.device.timeout = self.timeout_s
            job(printer)
            printer.device.flush()
        finally:
            printer.close()


@dataclass(frozen=True)
class UsbReceipts:
    """An ESC/POS printer on USB (python-escpos's Usb, pyusb and libusb), found by its vendor and
    product ids, opened for each receipt (unplugged: that receipt is not printed, the next one
    is). The printer's status is asked on its IN endpoint before printing."""

    vendor_id: int
    product_id: int
    terminal_id: str
    header: ReceiptHeader
    timeout_ms: int = 2000

    @property
    def name(self) -> str:
        return f"usb {self.vendor_id:04x}:{self.product_id:04x}"

    def print_row(self, row: JournalRow, merchant: bool = False, reprint: bool = False) -> None:
        how = {"merchant": merchant, "reprint": reprint}
        self._job(lambda p: print_receipt(p, row, self.terminal_id, self.header, **how))

    def print_text(self, name: str, text: str) -> None:
        self._job(lambda p: (p.text(text), p.cut()))

    def status(self) -> PrinterStatus:
        """What the printer says now (`pitill doctor`); raises when it is not found."""
        from escpos.printer import Usb

        with PRINTER_LOCK:
            printer = Usb(self.vendor_id, self.product_id, timeout=self.timeout_ms)
            printer.open(raise_not_found=True)
            try:
                return printer_status(printer)
            finally:
                printer.close()

    def _job(self, job: Any) -> None:
        from escpos.printer import Usb

        with PRINTER_LOCK:
            printer = Usb(self.vendor_id, self.product_id, timeout=self.timeout_ms)
            printer.open(raise_not_found=True)
            try:
                checked(printer, self.name)
                job(printer)
            finally:
                printer.close()


class StatusSink(Protocol):
    def status(self) -> PrinterStatus: ...


def check_printer(sink: StatusSink) -> tuple[bool, str]:
    """`pitill doctor`'s look at the receipt printer: (fine to sell with, what it said)."""
    try:
        status = sink.status()
    except Exception as exc:  # not found, no permission, no pyusb...
        return False, f"cannot open it: {type(exc).__name__}: {exc}"
    if status is PrinterStatus.UNKNOWN:
        return True, "opens, but does not answer status queries (DLE EOT): state unknown"
    return status not in NOT_PRINTABLE, f"says: {status.value}"


def receipt_sink(config: Config) -> ReceiptSink | None:
    """The printer `[receipt]` describes: kind "usb" (vendor_id, product_id) or "serial" (port);
    None when no printer is configured."""
    receipt = config.receipt
    header = ReceiptHeader(shop=receipt.shop, address=receipt.address, width=receipt.width)
    if receipt.kind == "usb":
        return UsbReceipts(
            receipt.vendor_id, receipt.product_id, config.terminal.terminal_id, header
        )
    if not receipt.port:
        return None
    return SerialReceipts(
        receipt.port, config.terminal.terminal_id, header, baudrate=receipt.baudrate
    )
