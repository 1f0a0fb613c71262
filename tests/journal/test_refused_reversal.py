"""A reversal the host refuses is never counted as reversed (DECISIONS.md, "A refused reversal is
never counted as reversed").

The case that found it: a journal written by a pitill from before schema 11 (no reversal_card)
holds a REVERSAL_PENDING online sale with no card anywhere. Its 0420 goes without fields 2, 14,
22; the sandbox host answers 30 (format error) and still holds the charge. The row must end
REVERSAL_REFUSED (not REVERSED), not be sent again, and show in `pitill report`, the Z report
and `pitill doctor`. Real parts: the old file made with the shipped migrations, the real
UpstreamClient and Forwarder, the sandbox host on 127.0.0.1, `pitill` run as a process.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import sqlite3
import subprocess
from pathlib import Path

import pytest
from journal_helpers import OpenJournal, card, client_for, drain, online_sale, row_of

from pitill.card.sealed_track import SealedTrack
from pitill.config import TerminalConfig, UpstreamConfig
from pitill.core.settlement import REFUSED_LINE, DayLine, reconciliation
from pitill.core.types import TxnMode, TxnStatus
from pitill.dayend import check_with_host
from pitill.journal import dbfile
from pitill.journal.days import HostCheck, day_lines, find_days
from pitill.journal.forwarder import Forwarder
from pitill.journal.report import read_report, read_reversal_trouble
from pitill.journal.store import JOURNAL_FILE_NAME, Journal
from pitill.receipt import outcome_lines
from pitill.sim.acquirer import AcquirerHost, net_charged_minor
from pitill.sim.reconcile import reconcile
from pitill_cli import PITILL

TERMINAL = TerminalConfig()
UPSTREAM = UpstreamConfig(forward_retry_s=0.01, forward_retry_max_s=0.05, forward_jitter_s=0.0)
STAMP = "251020093000"  # the old row's local date/time (the 0200 went with it)
AMOUNT_MINOR = 4200
SCHEMA_BEFORE_REVERSAL_CARD = 10  # migration 11 added reversal_card


def write_old_journal(data: Path) -> None:
    """A journal file as pitill wrote it at schema 10: an online sale whose 0200 got no answer
    (REVERSAL_PENDING, reason 68), its card kept nowhere."""
    data.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(data / JOURNAL_FILE_NAME, isolation_level=None)
    for migration in dbfile.MIGRATIONS[:SCHEMA_BEFORE_REVERSAL_CARD]:
        for statement in migration:
            conn.execute(statement)
    conn.execute(f"PRAGMA user_version = {SCHEMA_BEFORE_REVERSAL_CARD}")
    conn.execute(
        "INSERT INTO txns (seq, kind, mode, amount_minor, currency, status, masked_pan, stan,"
        " local_datetime, created_at, card_read_by, card_tier) VALUES (1, 'card', 'online', ?,"
        " 'EUR', 'REVERSAL_PENDING', '400000******0001', 1, ?, '2025-10-20T09:30:00',"
        " 'serial', 'stripe')",
        (AMOUNT_MINOR, STAMP),
    )
    conn.close()


def test_an_old_cardless_reversal_answered_30_is_refused_not_reversed_and_not_resent(
    open_journal: OpenJournal, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    write_old_journal(data)
    journal = open_journal(data)  # migrated to the newest schema
    assert read_reversal_trouble(data).without_card == (1,)  # doctor names it before it goes

    async def scenario() -> tuple[dict[str, int], list[dict[str, object]]]:
        async with AcquirerHost(tmp_path / "host") as host:
            client = client_for(host.port)
            # The 0200 the old pitill sent: the host approved it, the answer never came back.
            swiped = dataclasses.replace(card(1), track=SealedTrack(2, f"{card(1).pan}=2812101"))
            sale = dataclasses.replace(online_sale(1), amount_minor=AMOUNT_MINOR, card=swiped)
            assert (await client.authorize(sale, STAMP)).response_code == "00"
            forwarder = Forwarder(journal, client, UPSTREAM, rng=random.Random(1))
            await drain(journal, forwarder)
            answered = dict(host.counts)
            forwarder.kick()  # a new item recorded: the refused one must not go again
            for _ in range(20):
                await asyncio.sleep(0.005)
            assert host.counts["format_errors"] == answered["format_errors"], "sent again"
            await forwarder.stop()
            # FN 5: the refused row holds nothing back, and the 0500 asks for it reversed (68:
            # counted nowhere); the host, which kept the charge, disagrees and names it.
            journal.close_day()
            assert await check_with_host(journal, client, 1, "EUR")
            await client.close()
            return answered, host.ledger()

    counts, ledger = asyncio.run(scenario())
    assert counts["format_errors"] == 1  # the card-less 0420 broke the host's rule: 30
    row = row_of(journal, 1)
    assert row.status is TxnStatus.REVERSAL_REFUSED, row.status
    assert row.response_code == "30"
    assert net_charged_minor(ledger) == AMOUNT_MINOR  # the host still holds the charge
    check = reconcile(journal.rows(), ledger, TERMINAL.terminal_id, settled=True)
    assert len(check.phantom) == 1 and "REVERSAL_REFUSED" in check.phantom[0]  # shown, not hidden
    assert "NOT reversed" in journal.history(1)[-1].note
    assert journal.pending_count() == 0 and journal.next_forward_items(8) == []

    report = read_report(data)  # what `pitill report` and the FN report show
    assert (report.reversals_refused.count, report.reversals_refused.amount_minor) == (1, 4200)
    assert report.screen_lines()[0] == f"{REFUSED_LINE} 1 42.00"
    assert "REVERSAL REFUSED" in report.text() and "did NOT reverse" in report.text()
    trouble = read_reversal_trouble(data)
    assert trouble.refused == ((1, 1, AMOUNT_MINOR, "EUR", "30"),) and trouble.without_card == ()

    z = journal.z_report(1)  # the Z report lists it apart, never as reversed
    assert (z.day.host_status, z.day.host_code) == (HostCheck.DISAGREED, "95")
    assert "debits 0/1" in z.day.host_note  # ours/host: the host still holds the sale
    assert z.owed_to_host == 0  # nothing the terminal sends changes it: the check is not held
    assert (z.totals.reversals_refused.count, z.totals.reversals_due) == (1, 0)
    assert f"{REFUSED_LINE} 1 42.00" in z.screen_lines() and REFUSED_LINE in z.text()
    with sqlite3.connect(data / JOURNAL_FILE_NAME) as raw:
        (day,) = find_days(raw, "1")
        assert reconciliation(day_lines(raw, day)).debits == 0  # 68: counted nowhere, as asked
    journal.close()

    doctor = pitill("doctor", "--data-dir", str(data))
    line = next(x for x in doctor.stdout.splitlines() if " reversals:" in x)
    assert line.startswith("FAIL") and "STAN 000001 42.00 EUR (code 30)" in line, line
    assert doctor.returncode == 1

    # The acquirer reversed it by hand: a person records it, and nothing flags it any more.
    wrong = pitill(
        "journal", "settle", "--data-dir", str(data), "--seq", "2", "--note", "ticket 4711"
    )
    assert wrong.returncode != 0 and "not a reversal the host refused" in wrong.stderr
    assert len(wrong.stderr.strip().splitlines()) == 1  # one line, no traceback
    for note, said in (("  \t ", "--note is blank"), ("x" * 201, "201 characters, at most 200")):
        refused = pitill("journal", "settle", "--data-dir", str(data), "--seq", "1", "--note", note)
        assert refused.returncode != 0 and said in refused.stderr, refused.stderr
        assert len(refused.stderr.strip().splitlines()) == 1  # one line, no traceback
    assert read_report(data).reversals_refused.count == 1  # refused notes changed nothing
    done = pitill(  # control characters (a terminal escape, a bell, a newline) taken out
        "journal",
        "settle",
        "--data-dir",
        str(data),
        "--seq",
        "1",
        "--note",
        "\tticket\x1b 4711\x07\n",
    )
    assert done.returncode == 0, done.stderr
    assert "STAN 000001, 42.00 EUR) is REVERSED" in done.stdout
    doctor_line = next(
        x
        for x in pitill("doctor", "--data-dir", str(data)).stdout.splitlines()
        if " reversals:" in x
    )
    assert doctor_line.startswith("ok"), doctor_line
    assert read_report(data).reversals_refused.count == 0
    with sqlite3.connect(data / JOURNAL_FILE_NAME) as raw:
        notes = [n for (n,) in raw.execute("SELECT note FROM txn_history WHERE seq = 1")]
    assert notes[-1] == "settled by hand: ticket 4711" and "NOT reversed" in notes[-2]


@pytest.mark.parametrize("command", ["settle", "requeue", "decline"])
def test_a_blank_note_is_refused_by_every_hand_command(tmp_path: Path, command: str) -> None:
    """The note is the only record of who cleared a row: blank is refused before anything."""
    refused = pitill("journal", command, "--data-dir", str(tmp_path), "--seq", "1", "--note", " ")
    assert refused.returncode != 0 and "--note is blank" in refused.stderr, refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1  # one line, no traceback
    assert list(tmp_path.iterdir()) == []  # no journal, lock or key made


def pitill(*arguments: str) -> subprocess.CompletedProcess[str]:
    """`pitill` run as a process, as a user would."""
    return subprocess.run([*PITILL, *arguments], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(
    ("code", "final"),
    [
        ("00", TxnStatus.REVERSED),
        ("94", TxnStatus.REVERSED),  # a duplicate: the host holds the reversal already
        ("30", TxnStatus.REVERSAL_REFUSED),
        ("12", TxnStatus.REVERSAL_REFUSED),
        ("Q7", TxnStatus.REVERSAL_REFUSED),  # a code not in the table: final, not taken
    ],
)
def test_only_an_answer_that_takes_the_reversal_marks_it_reversed(
    journal: Journal, code: str, final: TxnStatus
) -> None:
    journal.record(online_sale(1))  # AUTHORIZING, its card sealed for the reversal
    journal.record(online_sale(1).with_status(TxnStatus.REVERSAL_PENDING))
    journal.mark_attempt(1)
    (row,) = journal.mark_forwarded_many([(1, code)])
    assert row.status is final and row.response_code == code
    assert journal.pending_count() == 0  # answered either way: never retried in a loop
    with pytest.raises(Exception, match="already acknowledged"):
        journal.record(online_sale(1).with_status(TxnStatus.REVERSAL_PENDING))


def test_a_voided_sale_whose_reversal_was_refused_is_asked_reversed_in_the_0500() -> None:
    """Reason 17: the host approved the sale; the 0500 counts the debit and its reversal, as for
    REVERSED, so a host that refused (and kept the charge) disagrees on debit reversals."""
    for status in (TxnStatus.REVERSED, TxnStatus.REVERSAL_REFUSED):
        line = DayLine("card", TxnMode.ONLINE, status, voided=True, count=1, amount_minor=4200)
        totals = reconciliation([line])
        assert (totals.debits, totals.debit_reversals, totals.debit_reversals_minor) == (1, 1, 4200)


def test_a_receipt_of_a_refused_reversal_never_says_taken_back(journal: Journal) -> None:
    journal.record(online_sale(1))
    journal.record(online_sale(1).with_status(TxnStatus.REVERSAL_PENDING))
    journal.mark_attempt(1)
    (row,) = journal.mark_forwarded_many([(1, "30")])
    lines = outcome_lines(row)
    assert lines[0] == "CHARGE NOT TAKEN BACK" and "the charge is taken back" not in lines
