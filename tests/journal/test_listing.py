"""`pitill journal list`: each row with its time and its response code, as a person reads it."""

from __future__ import annotations

import subprocess
from datetime import datetime
from pathlib import Path

from journal_helpers import OpenJournal, StepClock, cash_sale, offline_sale, online_sale

from pitill.core.types import TxnStatus
from pitill_cli import PITILL, journal_rows


def test_rows_show_their_time_and_response_code(open_journal: OpenJournal, tmp_path: Path) -> None:
    data = tmp_path / "data"
    journal = open_journal(data, StepClock(datetime(2026, 11, 30, 9, 15)))
    journal.record(online_sale(1).with_status(TxnStatus.APPROVED, response_code="00"))
    journal.record(online_sale(2).with_status(TxnStatus.DECLINED, response_code="05"))
    journal.record(offline_sale(3))
    journal.record(cash_sale(4))
    journal.close()

    out = subprocess.run(
        [*PITILL, "journal", "list", "--data-dir", str(data)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.splitlines()
    header, *rows, total = out
    assert header.split() == [
        *("seq", "time", "kind", "mode", "amount", "cur", "status", "pan", "tier", "response")
    ]
    assert rows[0].split()[:3] == ["1", "2026-11-30", "09:15:00"]
    assert rows[0].endswith("00 approved")
    assert rows[1].endswith("05 do not honour")
    assert rows[2].endswith("Y3 approved offline by the terminal")
    assert rows[3].split()[-1] == "COMPLETED"  # cash: no response code
    assert header.index("response") == rows[1].index("05 do not honour")  # one column
    assert total == "4 transaction(s)"
    as_json = journal_rows(data)
    assert [r["response_code"] for r in as_json] == ["00", "05", "Y3", ""]
    assert [r["card_tier"] for r in as_json] == ["stripe", "stripe", "stripe", ""]
    assert as_json[0]["created_at"] == "2026-11-30T09:15:00"
