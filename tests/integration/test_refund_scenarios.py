"""Refund and the void of an advised offline sale, as a person's CI runs them: `pitill sim --script`
with a real journal, the pty card reader and the sandbox host; then the ledger is reconciled
against the journal, and the report and the receipts are read."""

from __future__ import annotations

import sqlite3
import subprocess
from pathlib import Path

from integration.test_scenarios import ledger
from pitill.sim.reconcile import read_journal, reconcile
from pitill_cli import PITILL, run_scenario


def test_refunds_online_offline_and_cash_each_once_capped_by_the_sale(tmp_path: Path) -> None:
    data, receipts = tmp_path / "data", tmp_path / "receipts"
    result = run_scenario("refunds.pitill", data, "--receipts", str(receipts))
    assert result.returncode == 0, result.stdout + result.stderr
    with sqlite3.connect(data / "journal.sqlite3") as conn:
        rows = conn.execute(
            "SELECT seq, kind, mode, status, amount_minor, refunds_seq FROM txns ORDER BY seq"
        ).fetchall()
    # Seqs skip those the link's 0800s took (one counter of seqs and STANs): rows by rank.
    seq = [0, *(row[0] for row in rows)]  # seq[n]: the nth row's
    assert seq[1:] == sorted(set(seq[1:]))
    rank = {number: n for n, number in enumerate(seq)}
    assert [(rank[row[0]], *row[1:5], rank[row[5]]) for row in rows] == [
        (1, "card", "online", "APPROVED", 1200, 0),
        (2, "refund", "online", "APPROVED", 500, 1),
        (3, "refund", "online", "APPROVED", 700, 1),  # what was left: 12.00 in all, no more
        (4, "card", "offline", "FORWARDED", 1500, 0),
        (5, "refund", "offline", "FORWARDED", 600, 4),  # 12.00 offline was refused: no row
        (6, "cash", "offline", "COMPLETED", 500, 0),
        (7, "refund", "offline", "COMPLETED", 200, 6),
    ]
    entries = ledger(data)
    assert [(e["mti"], e["processing_code"], e["stan"]) for e in entries] == [
        ("0200", "000000", seq[1]),
        ("0200", "200000", seq[2]),
        ("0200", "200000", seq[3]),
        ("0220", "000000", seq[4]),
        ("0220", "200000", seq[5]),
    ]
    check = reconcile(read_journal(data / "journal.sqlite3"), entries, "PITILL01", settled=True)
    assert check.problems() == []
    assert check.host_net_minor == 1200 - 500 - 700 + 1500 - 600
    assert (check.refund_rows, check.journal_refunded_minor) == (4, 1800)
    report = subprocess.run(
        [*PITILL, "report", "--data-dir", str(data)], capture_output=True, text=True, check=True
    ).stdout
    refunds = report.split("refunds")[1].splitlines()
    assert "card online" in refunds[1] and "12.00" in refunds[1]
    assert "card offline" in refunds[2] and "6.00" in refunds[2]
    assert "cash" in refunds[3] and "2.00" in refunds[3]
    texts = {p.stem: p.read_text() for p in receipts.glob("*.txt")}
    refund = texts[f"{seq[2]:06d}-approved"]
    assert "REFUND" in refund and f"For sale #{seq[1]}" in refund and "EUR -5.00" in refund
    assert "REFUND OFFLINE" in texts[f"{seq[5]:06d}-pending"]
    assert "Cash given back" in texts[f"{seq[7]:06d}-completed"]


def test_void_of_an_offline_sale_already_sent_reverses_its_advice_once(tmp_path: Path) -> None:
    data = tmp_path / "data"
    result = run_scenario("void_forwarded.pitill", data)
    assert result.returncode == 0, result.stdout + result.stderr
    with sqlite3.connect(data / "journal.sqlite3") as conn:
        rows = conn.execute(
            "SELECT seq, mode, status, reverses_seq, voided_by_seq FROM txns ORDER BY seq"
        ).fetchall()
    sale, void = rows[0][0], rows[1][0]  # after the seqs the link's 0800s took
    assert rows == [(sale, "offline", "REVERSED", 0, void), (void, "offline", "VOID", sale, 0)]
    entries = ledger(data)
    assert [(e["mti"], e["stan"]) for e in entries] == [("0220", sale), ("0420", sale)]
    advice, reversal = entries
    assert reversal["original"] == f"0220:{sale:06d}:{advice['local_datetime']}"
    assert reversal["reversed"] is True
    check = reconcile(read_journal(data / "journal.sqlite3"), entries, "PITILL01", settled=True)
    assert check.problems() == [] and check.host_net_minor == 0
