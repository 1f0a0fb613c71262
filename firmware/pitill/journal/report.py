"""The reconciliation report after an outage: what was sold, how, and what the host still owes.

`pitill report --data-dir DIR` prints it; the FN menu shows the same figures on the OLED.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from pitill.core.types import TxnKind, TxnMode, TxnStatus, format_amount
from pitill.journal.datadir import moved_aside_files
from pitill.journal.listing import moved_aside_line, read_rows, read_settings
from pitill.journal.model import JournalRow
from pitill.journal.store import MODE_SETTING

CARD_ONLINE = "card online"
CARD_OFFLINE = "card offline"
CASH = "cash"


@dataclass
class Tally:
    count: int = 0
    amount_minor: int = 0

    def add(self, amount_minor: int) -> None:
        self.count += 1
        self.amount_minor += amount_minor


@dataclass
class Report:
    currency: str = ""
    sold: dict[str, Tally] = field(default_factory=dict)  # approved sales by kind
    by_status: dict[str, int] = field(default_factory=dict)
    declined_online: Tally = field(default_factory=Tally)
    declined_after: Tally = field(default_factory=Tally)  # offline approvals the host refused
    awaiting_host: Tally = field(default_factory=Tally)  # offline approvals not yet forwarded
    reversals_pending: int = 0
    mode: str = ""  # the offline mode chosen from the FN menu; "" = the config's mode applies

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    def screen_lines(self) -> tuple[str, ...]:
        """Short lines for the 128x64 screen, paged three at a time."""

        def money(tally: Tally) -> str:
            return f"{tally.count} {format_amount(tally.amount_minor)}"

        lines = [f"{kind.title()} {money(t)}" for kind, t in self.sold.items()]
        lines += [
            f"Waiting {money(self.awaiting_host)}",
            f"Declined after {money(self.declined_after)}",
            f"Reversals due {self.reversals_pending}",
        ]
        return tuple(lines)

    def text(self) -> str:
        cur = self.currency
        out = ["Reconciliation report", ""]
        out.append(f"{'sold':16} {'count':>6} {'amount':>12}")
        for kind, tally in self.sold.items():
            out.append(f"{kind:16} {tally.count:>6} {format_amount(tally.amount_minor):>12} {cur}")
        out.append("")
        for label, tally in (
            ("declined online", self.declined_online),
            ("awaiting host", self.awaiting_host),
            ("declined after", self.declined_after),
        ):
            out.append(f"{label:16} {tally.count:>6} {format_amount(tally.amount_minor):>12} {cur}")
        if self.declined_after.count:
            out.append("  declined after = approved offline, refused by the host: the shop's loss")
        out.append(f"{'reversals due':16} {self.reversals_pending:>6}")
        out.append("")
        if self.mode:
            label = self.mode.replace("_", " ")
            out.append(f"offline mode: {label} (chosen from the FN menu, overrides the config)")
        else:
            out.append("offline mode: the config's (none chosen from the FN menu)")
        out.append("by status: " + ", ".join(f"{k} {v}" for k, v in sorted(self.by_status.items())))
        return "\n".join(out)


def build_report(rows: Iterable[JournalRow]) -> Report:
    report = Report(sold={CARD_ONLINE: Tally(), CARD_OFFLINE: Tally(), CASH: Tally()})
    statuses: Counter[str] = Counter()
    for row in rows:
        report.currency = report.currency or row.currency
        statuses[row.status.value] += 1
        if row.kind is TxnKind.CASH:
            if row.status is TxnStatus.COMPLETED:
                report.sold[CASH].add(row.amount_minor)
        elif row.status is TxnStatus.APPROVED:
            report.sold[CARD_ONLINE].add(row.amount_minor)
        elif row.mode is TxnMode.OFFLINE and row.status in (
            TxnStatus.PENDING,
            TxnStatus.FORWARDED,
            TxnStatus.DECLINED_AFTER,
        ):
            report.sold[CARD_OFFLINE].add(row.amount_minor)
            if row.status is TxnStatus.PENDING:
                report.awaiting_host.add(row.amount_minor)
            if row.status is TxnStatus.DECLINED_AFTER:
                report.declined_after.add(row.amount_minor)
        elif row.status is TxnStatus.DECLINED:
            report.declined_online.add(row.amount_minor)
        elif row.status is TxnStatus.REVERSAL_PENDING:
            report.reversals_pending += 1
    report.by_status = dict(statuses)
    return report


def print_report(data_dir: Path, as_json: bool = False) -> int:
    rows = [_row_from_listing(r) for r in read_rows(data_dir)]
    report = build_report(rows)
    report.mode = read_settings(data_dir).get(MODE_SETTING, "")
    moved = [str(p) for p in moved_aside_files(data_dir)]
    if as_json:
        print(json.dumps(asdict(report) | {"moved_aside": moved}, indent=2, sort_keys=True))
    else:
        notice = moved_aside_line(data_dir)
        print(report.text() + (f"\n\n{notice}" if notice else ""))
    return 0


def _row_from_listing(row: dict[str, object]) -> JournalRow:
    """Enough of a JournalRow for the report, from the read-only listing (no key needed)."""
    return JournalRow(
        seq=int(str(row["seq"])),
        kind=TxnKind(str(row["kind"])),
        mode=TxnMode(str(row["mode"])),
        amount_minor=int(str(row["amount_minor"])),
        currency=str(row["currency"]),
        status=TxnStatus(str(row["status"])),
        masked_pan=str(row["masked_pan"] or ""),
        stan=0,
        local_datetime="",
        response_code="",
        auth_code="",
        tendered_minor=0,
        change_minor=0,
        reverses_seq=0,
        attempts=0,
    )
