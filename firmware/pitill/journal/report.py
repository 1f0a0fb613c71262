"""The reconciliation report after an outage: what was sold, how, and what the host still owes.

`pitill report --data-dir DIR` prints it; the FN menu shows the same figures on the OLED. Both
run one aggregate query (store.REPORT_TOTALS_SQL): a few rows, however long the journal is.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from pitill.core.settlement import (
    ADVICE_REFUSED_LINE,
    AWAITING_HOST,
    CARD_OFFLINE,
    CARD_ONLINE,
    CASH,
    DECLINED_AFTER,
    PAID_OUT_LABELS,
    REFUND_CARD,
    REFUND_CASH,
    REFUSED_LINE,
    REFUSED_REFUND_LINE,
    DayLine,
    z_line,
    z_totals,
)
from pitill.core.settlement import Tally as SettledTally
from pitill.core.types import TxnKind, TxnMode, TxnStatus, format_amount
from pitill.journal.datadir import moved_aside_files
from pitill.journal.days import (
    ADVICE_REFUSED_NOTE,
    DayRecord,
    HostCheck,
    ZReport,
    closed_days,
    find_days,
    z_report,
)
from pitill.journal.dbfile import check_rows
from pitill.journal.listing import moved_aside_line, read_only, read_settings
from pitill.journal.model import StatusTotal
from pitill.journal.store import MODE_SETTING, report_totals_of


@dataclass
class Tally:
    count: int = 0
    amount_minor: int = 0

    def add(self, count: int, amount_minor: int) -> None:
        self.count += count
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
    # reversals the host answered with a refusal (30 format error...): NOT reversed, the
    # customer may be charged; they wait for a person (DECISIONS.md), never for the forwarder
    reversals_refused: Tally = field(default_factory=Tally)
    # advices the host refused without processing them (30 format error...): held, the card
    # kept sealed, until a person re-queues them after a fix or records them declined
    advices_refused: Tally = field(default_factory=Tally)
    voids: Tally = field(default_factory=Tally)  # sales voided from FN 3 (not in `sold`)
    topups: Tally = field(default_factory=Tally)  # cash put on cards (FN 7): in the drawer
    # money given back (FN 4), by how: card online, card offline (given; the host may still be
    # waiting for it), cash out of the drawer; `sold` is not reduced by them
    refunds: dict[str, Tally] = field(default_factory=dict)
    refunds_awaiting_host: Tally = field(default_factory=Tally)  # offline refunds not yet sent
    # offline refunds the host refused after the fact (in refunds' card offline too): the card
    # was NOT credited, no cash left the drawer; the customer is still owed it (no shop's loss)
    refunds_refused: Tally = field(default_factory=Tally)
    # card sales by security tier (docs/cards.md): approved (online or offline), and of those
    # approved offline, the ones the host refused after the fact
    by_tier: dict[str, Tally] = field(default_factory=dict)
    declined_after_by_tier: dict[str, Tally] = field(default_factory=dict)
    mode: str = ""  # the offline mode chosen from the FN menu; "" = the config's mode applies

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    def screen_lines(self) -> tuple[str, ...]:
        """Short lines for the 128x64 screen, paged three at a time."""

        def money(tally: Tally) -> str:
            return f"{tally.count} {format_amount(tally.amount_minor)}"

        lines = []
        if self.reversals_refused.count:  # first: what a person must act on
            lines.append(f"{REFUSED_LINE} {money(self.reversals_refused)}")
        if self.advices_refused.count:
            lines.append(f"{ADVICE_REFUSED_LINE} {money(self.advices_refused)}")
        lines += [f"{kind.title()} {money(t)}" for kind, t in self.sold.items()]
        lines += [
            f"Waiting {money(self.awaiting_host)}",
            f"Declined after {money(self.declined_after)}",
            f"Reversals due {self.reversals_pending}",
        ]
        if self.voids.count:
            lines.append(f"Voids {money(self.voids)}")
        if self.topups.count:
            lines.append(f"Top-ups {money(self.topups)}")
        lines += [f"Refund {kind} {money(t)}" for kind, t in self.refunds.items() if t.count]
        if self.refunds_refused.count:
            lines.append(f"{REFUSED_REFUND_LINE} {money(self.refunds_refused)}")
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
            *((("voids", self.voids),) if self.voids.count else ()),
            *((("top-ups (cash)", self.topups),) if self.topups.count else ()),
        ):
            out.append(f"{label:16} {tally.count:>6} {format_amount(tally.amount_minor):>12} {cur}")
        if self.declined_after.count:
            out.append("  declined after = approved offline, refused by the host: the shop's loss")
        if any(t.count for t in self.refunds.values()):
            out.append("")
            out.append(f"{'refunds':16} {'count':>6} {'amount':>12}")
            for kind, tally in self.refunds.items():
                amount = format_amount(tally.amount_minor)
                out.append(f"{kind:16} {tally.count:>6} {amount:>12} {cur}")
            waiting = self.refunds_awaiting_host
            amount = format_amount(waiting.amount_minor)
            out.append(f"{'  awaiting host':16} {waiting.count:>6} {amount:>12} {cur}")
            refused = self.refunds_refused
            amount = format_amount(refused.amount_minor)
            out.append(f"{'  host refused':16} {refused.count:>6} {amount:>12} {cur}")
            if refused.count:
                out.append(
                    "  host refused = refunded offline, the host did not credit the card"
                    " (no cash left the drawer): the customer is still owed it, not the shop's"
                    " loss; settle it by hand"
                )
        out.append(f"{'reversals due':16} {self.reversals_pending:>6}")
        if self.reversals_refused.count:
            refused = self.reversals_refused
            amount = format_amount(refused.amount_minor)
            out.append(f"{'REVERSAL REFUSED':16} {refused.count:>6} {amount:>12} {cur}")
            out.append(
                "  refused = the host answered the reversal with a refusal (e.g. 30, format"
                " error): it did NOT reverse the sale and the customer may be charged. Call the"
                " acquirer with their STANs (`pitill doctor` lists them); pitill does not send"
                " them again. Once settled: pitill journal settle --seq SEQ --note REFERENCE"
            )
        if self.advices_refused.count:
            held = self.advices_refused
            amount = format_amount(held.amount_minor)
            out.append(f"{'ADVICE REFUSED':16} {held.count:>6} {amount:>12} {cur}")
            out.append(f"  {ADVICE_REFUSED_NOTE}")
        if self.by_tier:
            out.append("")
            out.append(f"{'cards by tier':16} {'count':>6} {'amount':>12}   declined after")
            for tier, tally in sorted(self.by_tier.items()):
                after = self.declined_after_by_tier.get(tier, Tally())
                out.append(
                    f"{tier:16} {tally.count:>6} {format_amount(tally.amount_minor):>12} {cur}"
                    f" {after.count:>4}"
                )
        out.append("")
        if self.mode:
            label = self.mode.replace("_", " ")
            out.append(f"offline mode: {label} (chosen from the FN menu, overrides the config)")
        else:
            out.append("offline mode: the config's (none chosen from the FN menu)")
        out.append("by status: " + ", ".join(f"{k} {v}" for k, v in sorted(self.by_status.items())))
        return "\n".join(out)


def report_from_totals(totals: Iterable[StatusTotal]) -> Report:
    """The report from the journal's aggregate (Journal.report_totals / read_totals).

    Every figure is core/settlement's (z_totals, z_line: what the Z report counts), so `pitill
    report` and the Z report cannot disagree on the same rows; this only splits finer (refunds
    to the card online or offline, waiting sales apart from waiting refunds, card tiers)."""
    totals = list(totals)
    z = z_totals(
        DayLine(t.kind.value, t.mode, t.status, False, t.count, t.amount_minor) for t in totals
    )
    report = Report(
        sold={CARD_ONLINE: Tally(), CARD_OFFLINE: Tally(), CASH: Tally()},
        refunds={CARD_ONLINE: Tally(), CARD_OFFLINE: Tally(), CASH: Tally()},
    )
    for label, tally in z.by_kind.items():
        if label == TxnKind.TOPUP.value:  # not a sale: cash taken for the card's balance
            report.topups = _copy(tally)
        elif label not in PAID_OUT_LABELS:  # card online/offline, cash, a later kind by name
            report.sold[label] = _copy(tally)
    report.declined_online = _copy(z.declined)
    report.declined_after = _copy(z.declined_after)
    report.refunds_refused = _copy(z.refunds_refused)
    report.reversals_pending = z.reversals_due
    report.reversals_refused = _copy(z.reversals_refused)
    report.advices_refused = _copy(z.advices_refused)
    report.voids = _copy(z.voids)
    statuses: Counter[str] = Counter()
    for t in totals:
        report.currency = report.currency or t.currency
        statuses[t.status.value] += t.count
        line, also = z_line(t.kind.value, t.mode, t.status)
        if line == REFUND_CASH:
            report.refunds[CASH].add(t.count, t.amount_minor)
        elif line == REFUND_CARD:  # given: the host may still be waiting for it
            how = CARD_ONLINE if t.mode is TxnMode.ONLINE else CARD_OFFLINE
            report.refunds[how].add(t.count, t.amount_minor)
        elif line in (CARD_ONLINE, CARD_OFFLINE):
            _tally(report.by_tier, t)
            if also == DECLINED_AFTER:
                _tally(report.declined_after_by_tier, t)
        if also == AWAITING_HOST:
            if line in PAID_OUT_LABELS:
                report.refunds_awaiting_host.add(t.count, t.amount_minor)
            else:
                report.awaiting_host.add(t.count, t.amount_minor)
    report.by_status = dict(statuses)
    return report


def _copy(tally: SettledTally) -> Tally:
    return Tally(tally.count, tally.amount_minor)


def _tally(tallies: dict[str, Tally], total: StatusTotal) -> None:
    tallies.setdefault(total.card_tier or "unknown", Tally()).add(total.count, total.amount_minor)


def read_totals(data_dir: Path) -> list[StatusTotal]:
    """The report's aggregate over a read-only connection of its own: no key, no lock, and a
    WAL reader never blocks the terminal's writer (the app runs this in an executor)."""
    with read_only(data_dir) as (conn, path):
        check_rows(conn, path)  # an edited row is one line naming it, as for `journal list`
        return report_totals_of(conn)


def read_report(data_dir: Path) -> Report:
    """The reconciliation report of a data directory (what the FN menu and `pitill report` show)."""
    return report_from_totals(read_totals(data_dir))


def read_z_report(data_dir: Path, day: int) -> ZReport:
    """One day's Z report on a read-only connection of its own (the app runs it in a thread:
    an aggregate over a busy day must not hold the loop, nor the journal's lock)."""
    with read_only(data_dir) as (conn, _path):
        (record,) = find_days(conn, str(day))
        return z_report(conn, record)


def print_day_reports(data_dir: Path, which: str, as_json: bool = False) -> int:
    """`pitill report --day N|DATE`: the Z report of a day, from the journal, read-only."""
    with read_only(data_dir) as (conn, path):
        check_rows(conn, path)
        reports = [z_report(conn, day) for day in find_days(conn, which)]
    if as_json:
        print("[" + ",\n".join(z.to_json() for z in reports) + "]")
    else:
        print("\n".join(z.text(width=42) for z in reports), end="")
    return 0


def print_report(data_dir: Path, as_json: bool = False) -> int:
    report = read_report(data_dir)
    report.mode = read_settings(data_dir).get(MODE_SETTING, "")
    moved = [str(p) for p in moved_aside_files(data_dir)]
    days = read_days(data_dir)
    if as_json:
        extra = {"moved_aside": moved, "days": [asdict(day) for day in days]}
        print(json.dumps(asdict(report) | extra, indent=2, sort_keys=True))
    else:
        notice = moved_aside_line(data_dir)
        day_line = days_line(days)
        print(report.text() + "".join(f"\n\n{line}" for line in (day_line, notice) if line))
    return 0


def read_days(data_dir: Path) -> list[DayRecord]:
    """The closed days (end of day), read-only; none in a journal from before them."""
    with read_only(data_dir) as (conn, _path):
        if not conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'days'").fetchone():
            return []
        return closed_days(conn)


def days_line(days: list[DayRecord]) -> str:
    """The days' host checks in one paragraph: a disagreement is never left out."""
    if not days:
        return "end of day: no day closed yet (FN 5)"
    parts = [f"end of day: {len(days)} day(s) closed, the last day {days[-1].day}"]
    for status, words in (
        (HostCheck.DISAGREED, "HOST DISAGREED"),
        (HostCheck.OWED, "host check owed"),
    ):
        numbers = [str(day.day) for day in days if day.host_status is status]
        if numbers:
            parts.append(f"{words} on day {', '.join(numbers)} (pitill report --day N)")
    return "; ".join(parts)


@dataclass(frozen=True)
class ReversalTrouble:
    """Reversals a person must know about (`pitill doctor`): the refused ones, as
    (seq, STAN, amount, currency, the host's code), and the seqs of reversals still owed that
    carry no card although their 0420 needs one (reason 68, the sale's time known): rows
    journaled by a pitill from before the sale's card was kept sealed for its reversal."""

    refused: tuple[tuple[int, int, int, str, str], ...]
    without_card: tuple[int, ...]
    # advices the host refused unprocessed (ADVICE_REFUSED), held: as `refused`
    advices_refused: tuple[tuple[int, int, int, str, str], ...] = ()


def read_reversal_trouble(data_dir: Path) -> ReversalTrouble:
    """ReversalTrouble of a data directory, read-only (a journal not migrated yet too)."""
    with read_only(data_dir) as (conn, _path):
        columns = {str(row[1]) for row in conn.execute("PRAGMA table_info(txns)")}
        waiting: dict[str, list[tuple[int, int, int, str, str]]] = {}
        for status, seq, stan, amount, currency, code in conn.execute(
            "SELECT status, seq, stan, amount_minor, currency, response_code FROM txns"
            " WHERE status IN (?, ?) ORDER BY seq",
            (TxnStatus.REVERSAL_REFUSED.value, TxnStatus.ADVICE_REFUSED.value),
        ):
            row = (int(seq), int(stan), int(amount), str(currency), str(code))
            waiting.setdefault(str(status), []).append(row)
        refused = tuple(waiting.get(TxnStatus.REVERSAL_REFUSED.value, ()))
        # A void's reversal (17) and one by STAN alone carry no card by design (docs/iso8583.md).
        where = ["status = ?"]
        where += [f"{name} = 0" for name in ("voided_by_seq", "stan_only") if name in columns]
        if "reversal_card" in columns:
            where.append("reversal_card IS NULL")
        without_card = tuple(
            int(seq)
            for (seq,) in conn.execute(
                f"SELECT seq FROM txns WHERE {' AND '.join(where)} ORDER BY seq",
                (TxnStatus.REVERSAL_PENDING.value,),
            )
        )
    held = tuple(waiting.get(TxnStatus.ADVICE_REFUSED.value, ()))
    return ReversalTrouble(refused, without_card, held)
