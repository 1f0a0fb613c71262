"""The offline exposure (count, amount, age with no RTC) and the reconciliation report."""

from __future__ import annotations

import json
import subprocess
from datetime import datetime, timedelta
from pathlib import Path

from journal_helpers import cash_sale, offline_sale, online_sale

from pitill.core.types import TxnStatus
from pitill.journal.report import CARD_OFFLINE, CARD_ONLINE, CASH, report_from_totals
from pitill.journal.seal import KEY_FILE_NAME, Sealer
from pitill.journal.store import Journal
from pitill_cli import PITILL


class Clocks:
    """A wall clock and a monotonic clock that tests move by hand."""

    def __init__(self) -> None:
        self.wall = datetime(2026, 11, 28, 12, 0, 0)
        self.mono_s = 1000.0

    def open(self, data_dir: Path) -> Journal:
        sealer = Sealer.load_or_create(data_dir / KEY_FILE_NAME)
        return Journal.open(
            data_dir, sealer, clock=lambda: self.wall, monotonic=lambda: self.mono_s
        )


def test_exposure_counts_pending_offline_sales_only(tmp_path: Path) -> None:
    clocks = Clocks()
    journal = clocks.open(tmp_path)
    journal.record(offline_sale(1, 1000))
    journal.record(offline_sale(2, 500))
    journal.record(online_sale(3, TxnStatus.APPROVED))
    journal.record(cash_sale(4))
    exposure = journal.offline_exposure()
    assert (exposure.count, exposure.amount_minor) == (2, 1500)
    journal.mark_attempt(1)
    journal.mark_forwarded(1, "00")
    assert journal.offline_exposure().count == 1
    journal.close()


def test_age_runs_on_the_persisted_running_time_across_restarts(tmp_path: Path) -> None:
    clocks = Clocks()
    journal = clocks.open(tmp_path)
    journal.record(offline_sale(1))
    clocks.mono_s += 3600
    assert journal.offline_exposure().oldest_age_s == 3600
    journal.close()  # saves the running time
    clocks.mono_s = 5.0  # a reboot: the monotonic clock starts again
    clocks.wall -= timedelta(days=30)  # and the wall clock is wrong (no RTC yet)
    journal = clocks.open(tmp_path)
    clocks.mono_s += 600
    assert journal.offline_exposure().oldest_age_s == 3600 + 600
    journal.close()


def test_age_takes_the_wall_clock_when_it_is_ahead_of_the_running_time(tmp_path: Path) -> None:
    clocks = Clocks()
    journal = clocks.open(tmp_path)
    journal.record(offline_sale(1))
    clocks.wall += timedelta(hours=10)  # powered off for ten hours, clock set by NTP since
    clocks.mono_s += 60
    assert journal.offline_exposure().oldest_age_s == 10 * 3600
    journal.close()


def test_report_tallies_by_kind_and_flags_declines_after_the_fact(tmp_path: Path) -> None:
    clocks = Clocks()
    journal = clocks.open(tmp_path)
    journal.record(online_sale(1, TxnStatus.APPROVED))
    journal.record(offline_sale(2, 1000))
    journal.record(offline_sale(3, 700))
    journal.record(cash_sale(4))
    journal.mark_attempt(3)
    journal.mark_forwarded(3, "05")
    report = report_from_totals(journal.report_totals())
    assert report.sold[CARD_OFFLINE].count == 2 and report.sold[CARD_OFFLINE].amount_minor == 1700
    assert report.sold[CARD_ONLINE].count == 1 and report.sold[CASH].count == 1
    assert (report.declined_after.count, report.declined_after.amount_minor) == (1, 700)
    assert report.awaiting_host.count == 1
    assert "the shop's loss" in report.text()
    assert any(line.startswith("Declined after 1") for line in report.screen_lines())
    journal.close()


def test_pitill_report_counts_a_sale_left_authorizing_as_a_reversal_due(tmp_path: Path) -> None:
    """Its outcome is unknown (the write of the host's answer failed, or the terminal died):
    the next boot queues its reversal, so the report owes one now, while the terminal runs."""
    clocks = Clocks()
    journal = clocks.open(tmp_path)
    journal.record(online_sale(1, TxnStatus.AUTHORIZING))
    journal.record(online_sale(2, TxnStatus.REVERSAL_PENDING))
    journal.record(online_sale(3, TxnStatus.APPROVED))
    out = subprocess.run(
        [*PITILL, "report", "--json", "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout  # a reader of its own, while the writer's connection is open
    journal.close()
    report = json.loads(out)
    assert report["reversals_pending"] == 2
    assert report["by_status"] == {"APPROVED": 1, "AUTHORIZING": 1, "REVERSAL_PENDING": 1}
    assert report["sold"]["card online"] == {"count": 1, "amount_minor": 4200}
