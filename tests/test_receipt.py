"""Receipts say what happened, never a full PAN, and render as text, PNG and ESC/POS bytes."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from escpos.printer import Dummy
from PIL import Image

from pitill.card.model import Card
from pitill.core.txn import Txn
from pitill.core.types import TxnKind, TxnMode, TxnStatus
from pitill.errors import ConfigError
from pitill.journal.seal import KEY_FILE_NAME, Sealer
from pitill.journal.store import Journal
from pitill.receipt import (
    ReceiptHeader,
    print_receipt,
    receipt_lines,
    receipt_png,
    receipt_text,
    reference,
)
from pitill.records import JournalRow
from pitill_cli import PITILL

PAN = "4111111111111111"
CARD = Card(PAN, "3012")
HEADER = ReceiptHeader(shop="PITILL CAFE", address=("1 Pi Street",))


def journal_with_every_outcome(data_dir: Path) -> Journal:
    """A real journal: online approved, offline pending, cash, declined, a voided cash sale."""
    journal = Journal.open(data_dir, Sealer.load_or_create(data_dir / KEY_FILE_NAME))
    card = dict(kind=TxnKind.CARD, currency="EUR", card=CARD)
    journal.record(
        Txn(
            1, mode=TxnMode.ONLINE, amount_minor=1250, status=TxnStatus.APPROVED, **card
        ).with_status(TxnStatus.APPROVED, response_code="00", auth_code="A1B2C3")
    )
    journal.record(
        Txn(
            2, mode=TxnMode.OFFLINE, amount_minor=1800, status=TxnStatus.PENDING, **card
        ).with_status(TxnStatus.PENDING, response_code="Y3")
    )
    cash = Txn(3, TxnKind.CASH, TxnMode.ONLINE, 790, "EUR", TxnStatus.COMPLETED)
    journal.record(cash.with_status(TxnStatus.COMPLETED, tendered_minor=1000, change_minor=210))
    journal.record(
        Txn(
            4, mode=TxnMode.ONLINE, amount_minor=5000, status=TxnStatus.DECLINED, **card
        ).with_status(TxnStatus.DECLINED, response_code="51")
    )
    void = Txn(5, TxnKind.CASH, TxnMode.ONLINE, 790, "EUR", TxnStatus.VOID, reverses_seq=3)
    assert journal.record_void(3, TxnStatus.COMPLETED, TxnStatus.VOIDED, void)
    return journal


@pytest.fixture
def rows(tmp_path: Path) -> dict[int, JournalRow]:
    with journal_with_every_outcome(tmp_path) as journal:
        return {row.seq: row for row in journal.rows()}


def test_each_outcome_in_words(rows: dict[int, JournalRow]) -> None:
    def text(seq: int) -> str:
        return receipt_text(rows[seq], "PITILL01", HEADER)

    assert "APPROVED" in text(1) and "Auth code A1B2C3" in text(1)
    offline = text(2)
    assert "APPROVED OFFLINE" in offline and "Will be sent to the bank" in offline
    assert "when the line is back." in offline and "Offline approval Y3" in offline
    assert "VOIDED" in text(3) and "Cancelled by #5" in text(3)
    assert "DECLINED" in text(4) and "INSUFFICIENT" in text(4) and "NOT charged" in text(4)
    assert "VOID" in text(5) and "Sale #3 cancelled" in text(5) and "EUR -7.90" in text(5)


def test_what_every_receipt_carries_and_never_a_full_pan(rows: dict[int, JournalRow]) -> None:
    for row in rows.values():
        text = receipt_text(row, "PITILL01", HEADER, merchant=row.seq == 1)
        assert PAN not in text
        assert "PITILL CAFE" in text and "Terminal" in text and "PITILL01" in text
        assert f"Seq{row.seq:>{32 - 3}}" in text
        assert reference(row, "PITILL01") in text
        date = row.local_datetime
        assert f"20{date[:2]}-{date[2:4]}-{date[4:6]} {date[6:8]}:{date[8:10]}" in text
        if row.kind is TxnKind.CARD:
            assert "411111******1111" in text and f"{row.stan:06d}" in text
    assert "MERCHANT COPY" in receipt_text(rows[1], "PITILL01", HEADER, merchant=True)
    assert "CUSTOMER COPY" in receipt_text(rows[1], "PITILL01", HEADER)


def test_cash_says_tendered_and_change(tmp_path: Path) -> None:
    with Journal.open(tmp_path, Sealer.load_or_create(tmp_path / KEY_FILE_NAME)) as journal:
        sale = Txn(1, TxnKind.CASH, TxnMode.OFFLINE, 790, "EUR", TxnStatus.COMPLETED)
        row = journal.record(
            sale.with_status(TxnStatus.COMPLETED, tendered_minor=1000, change_minor=210)
        )
    text = receipt_text(row, "PITILL01", HEADER)
    assert "CASH" in text and "Tendered 10.00" in text and "Change 2.10" in text


@pytest.mark.parametrize("width", [32, 42, 48])
def test_lines_fit_the_paper(rows: dict[int, JournalRow], width: int) -> None:
    header = ReceiptHeader(shop="A SHOP WITH A VERY LONG NAME INDEED, REALLY", width=width)
    for row in rows.values():
        assert all(len(line) <= width for line in receipt_lines(row, "PITILL01", header))
    with pytest.raises(ConfigError, match="receipt width 50"):
        ReceiptHeader(width=50)


def test_escpos_bytes_from_the_dummy_printer(rows: dict[int, JournalRow]) -> None:
    printer = Dummy()
    print_receipt(printer, rows[2], "PITILL01", HEADER)
    out = printer.output
    assert b"APPROVED OFFLINE" in out and PAN.encode() not in out
    assert b"\x1dv0" in out  # the QR code, as a raster image (GS v 0)
    assert b"\x1dV" in out  # and the cut (GS V)


def test_png_has_the_qr_code_below_the_text(rows: dict[int, JournalRow]) -> None:
    image = receipt_png(rows[2], "PITILL01", HEADER)
    assert image.mode == "1" and image.width >= 32 * 9
    bottom = image.crop((0, image.height - 120, image.width, image.height))
    assert bottom.getbbox() is not None  # something black there: the QR code


def test_pitill_receipt_reads_the_journal(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    journal_with_every_outcome(data).close()
    png, escpos = tmp_path / "r.png", tmp_path / "r.bin"
    run = subprocess.run(
        [
            *PITILL,
            "receipt",
            "--data-dir",
            str(data),
            "--seq",
            "2",
            "--width",
            "42",
            "--png",
            str(png),
            "--escpos",
            str(escpos),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert "APPROVED OFFLINE" in run.stdout and PAN not in run.stdout
    assert max(len(line) for line in run.stdout.splitlines()) == 42
    with Image.open(png) as image:
        assert image.height > 300
    assert b"APPROVED OFFLINE" in escpos.read_bytes()
    newest = subprocess.run(
        [*PITILL, "receipt", "--data-dir", str(data)], capture_output=True, text=True, timeout=120
    )
    assert "VOID" in newest.stdout and "Sale #3 cancelled" in newest.stdout
    missing = subprocess.run(
        [*PITILL, "receipt", "--data-dir", str(data), "--seq", "99"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert missing.returncode == 2 and len(missing.stderr.strip().splitlines()) == 1
    assert "no transaction with seq 99" in missing.stderr


def test_pitill_receipt_png_to_a_directory_or_a_name_without_suffix(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    journal_with_every_outcome(data).close()

    def receipt_png_to(target: Path) -> subprocess.CompletedProcess[str]:
        argv = [*PITILL, "receipt", "--data-dir", str(data), "--png", str(target)]
        return subprocess.run(argv, capture_output=True, text=True, timeout=120)

    into_dir = receipt_png_to(tmp_path)
    assert into_dir.returncode == 1 and into_dir.stderr.count("\n") == 1, into_dir.stderr
    assert f"{tmp_path}: is a directory" in into_dir.stderr
    no_suffix = receipt_png_to(tmp_path / "receipt")
    assert no_suffix.returncode == 0, no_suffix.stderr
    with Image.open(tmp_path / "receipt") as image:
        assert image.format == "PNG"
