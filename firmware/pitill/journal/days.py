"""Days (batches): end of day closes one, the Z report reads one, `pitill report --day` any.

Day N holds the seqs after day N-1's last up to the newest transaction's when N was closed; the
next sale is the first of day N+1. So a day is a seq range, and the sales need no column of their
own. Seqs and STANs are one counter: the seqs 0800s and 0500s took (no row) lie in the range too,
and the 0500's stan=A-B names them with the rest; a host totals its financial messages in it.
The host's verdict on a day (the 0500/0510 check) is kept beside it: owed, agreed or disagreed.
"""

from __future__ import annotations

import argparse
import json
import re
import sqlite3
from dataclasses import asdict, dataclass
from datetime import datetime
from enum import StrEnum

from pitill.core.settlement import (
    ADVICE_REFUSED_LINE,
    REFUSED_LINE,
    REFUSED_REFUND_LINE,
    DayLine,
    Reconciliation,
    Tally,
    ZTotals,
    owed_count,
    reconciliation,
    z_totals,
)
from pitill.core.txn import stan_for
from pitill.core.types import TxnMode, TxnStatus, format_amount
from pitill.errors import StorageError


class HostCheck(StrEnum):
    """Where the host's check of a closed day stands."""

    OWED = "owed"  # not done yet: offline at close, or the day's rows were still being sent
    AGREED = "agreed"  # 0510 field 39 = 00
    DISAGREED = "disagreed"  # 0510 said otherwise: shown, printed and kept, never hidden
    OPEN = "open"  # the day is not closed yet


@dataclass(frozen=True)
class DayRecord:
    day: int
    first_seq: int
    last_seq: int  # first_seq - 1 for a day without a transaction
    closed_at: str  # ISO 8601 from the trusted clock; "" while open
    host_status: HostCheck
    host_code: str = ""
    host_note: str = ""  # on a disagreement: what differs (ours/theirs)

    @property
    def first_stan(self) -> int:
        return stan_for(self.first_seq)

    @property
    def last_stan(self) -> int:
        return stan_for(max(self.last_seq, self.first_seq))


_COLUMNS = "day, first_seq, last_seq, closed_at, host_status, host_code, host_note"


def _record(values: tuple[object, ...]) -> DayRecord:
    day, first, last, closed, status, code, note = values
    return DayRecord(
        int(str(day)),
        int(str(first)),
        int(str(last)),
        str(closed),
        HostCheck(str(status)),
        str(code),
        str(note),
    )


def closed_days(conn: sqlite3.Connection) -> list[DayRecord]:
    return [_record(v) for v in conn.execute(f"SELECT {_COLUMNS} FROM days ORDER BY day")]


def last_closed_seq(conn: sqlite3.Connection) -> int:
    found = conn.execute("SELECT MAX(last_seq) FROM days").fetchone()
    return int(found[0]) if found and found[0] is not None else 0


def open_day(conn: sqlite3.Connection) -> DayRecord:
    """The day sales go into now (not closed)."""
    found = conn.execute("SELECT MAX(day), MAX(last_seq) FROM days").fetchone()
    day = int(found[0] or 0) + 1
    first = int(found[1] or 0) + 1
    (newest,) = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM txns").fetchone()
    return DayRecord(day, first, max(int(newest), first - 1), "", HostCheck.OPEN)


def insert_closed_day(
    conn: sqlite3.Connection, last_seq: int, closed_at: datetime, host: HostCheck
) -> DayRecord:
    """Close the open day at `last_seq` (inside the caller's transaction)."""
    day = open_day(conn)
    record = DayRecord(day.day, day.first_seq, last_seq, closed_at.isoformat("T", "seconds"), host)
    conn.execute(
        f"INSERT INTO days ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, '', '')",
        (record.day, record.first_seq, record.last_seq, record.closed_at, host.value),
    )
    return record


def set_host_check(
    conn: sqlite3.Connection, day: int, status: HostCheck, code: str, note: str, at: datetime
) -> None:
    conn.execute(
        "UPDATE days SET host_status = ?, host_code = ?, host_note = ?, host_checked_at = ?"
        " WHERE day = ?",
        (status.value, code, note, at.isoformat("T", "seconds"), day),
    )


def day_lines(conn: sqlite3.Connection, day: DayRecord) -> list[DayLine]:
    """The day's rows grouped for the Z report: one aggregate query over its seq range."""
    lines = []
    for kind, mode, status, voided, count, amount in conn.execute(
        "SELECT kind, mode, status, voided_by_seq > 0, COUNT(*), COALESCE(SUM(amount_minor), 0)"
        " FROM txns WHERE seq BETWEEN ? AND ? GROUP BY kind, mode, status, voided_by_seq > 0"
        " ORDER BY kind, mode, status",
        (day.first_seq, day.last_seq),
    ):
        lines.append(
            DayLine(str(kind), TxnMode(mode), TxnStatus(status), bool(voided), count, amount)
        )
    return lines


def day_currency(conn: sqlite3.Connection, day: DayRecord) -> str:
    found = conn.execute(
        "SELECT MIN(currency) FROM txns WHERE seq BETWEEN ? AND ? AND currency != ''",
        (day.first_seq, day.last_seq),
    ).fetchone()
    return str(found[0]) if found and found[0] else ""


# A reversal the host refused (REVERSAL_REFUSED): never shown as reversed, always with what to do.
REFUSED_NOTE = [
    "  NOT reversed by the host: the",
    "  customer may be charged. Call",
    "  the acquirer with the STANs",
    "  (`pitill doctor` lists them)",
]
# An advice the host refused unprocessed (ADVICE_REFUSED): one explanation for every report.
ADVICE_REFUSED_NOTE = (
    "refused = the host answered the offline sale's advice with a code that says it did not"
    " process it (e.g. 30, format error): the card was never judged, nothing is collected yet."
    " Its card is kept sealed; pitill does not send it again by itself. After a fix: pitill"
    " journal requeue --seq SEQ --note WHY; or record it lost: pitill journal decline --seq SEQ"
    " --note WHY (`pitill doctor` lists the seqs)"
)
ADVICE_REFUSED_Z_NOTE = [
    "  host did NOT process these",
    "  advices: not collected. See",
    "  pitill doctor (requeue or",
    "  decline by hand)",
]


# An offline refund the host refused after the fact (ZTotals.refunds_refused): what it means.
REFUSED_REFUND_NOTE = [
    "  by the host: the card was NOT",
    "  credited and no cash left the",
    "  drawer. The customer is still",
    "  owed it: settle by hand",
]


@dataclass(frozen=True)
class ZReport:
    """One day's Z report: its totals by kind, and what the host must hold (74-89)."""

    day: DayRecord
    currency: str
    totals: ZTotals
    host_totals: Reconciliation
    owed_to_host: int  # rows of the day not yet sent: the host check waits for them

    def host_line(self) -> str:
        status = self.day.host_status
        if status is HostCheck.AGREED:
            return "Host agrees"
        if status is HostCheck.DISAGREED:
            return f"HOST DISAGREES ({self.day.host_code})"
        if status is HostCheck.OPEN:
            return "Day still open"
        return "Host check owed"

    def screen_lines(self) -> tuple[str, ...]:
        """Short lines for the 128x64 screen, paged three at a time."""

        def money(t: Tally) -> str:
            return f"{t.count} {format_amount(t.amount_minor)}"

        # The host's verdict first (a disagreement with what differs, ours/host), then totals.
        lines = [f"Z day {self.day.day} #{self.day.first_seq}-{self.day.last_seq}"]
        lines.append(self.host_line())
        if self.day.host_status is HostCheck.DISAGREED and self.day.host_note:
            lines += [part.strip() for part in self.day.host_note.split(";")]  # ours/host
        elif self.day.host_status is HostCheck.OWED and self.owed_to_host:
            lines.append(f"{self.owed_to_host} still to send")
        if self.totals.reversals_refused.count:  # the host did NOT reverse: a person must act
            lines.append(f"{REFUSED_LINE} {money(self.totals.reversals_refused)}")
        if self.totals.advices_refused.count:  # held: nothing collected yet, a person decides
            lines.append(f"{ADVICE_REFUSED_LINE} {money(self.totals.advices_refused)}")
        if self.totals.refunds_refused.count:  # the customer is still owed it
            lines.append(f"{REFUSED_REFUND_LINE} {money(self.totals.refunds_refused)}")
        lines += [f"{label.title()} {money(t)}" for label, t in self.totals.by_kind.items()]
        lines += [f"Voids {money(self.totals.voids)}"]
        lines += [f"Waiting {money(self.totals.awaiting_host)}"]
        return tuple(lines)

    def text(self, width: int = 32) -> str:
        """The printed (and `pitill report --day`) Z report."""
        cur = self.currency

        def row(label: str, t: Tally) -> str:
            figures = f"{t.count:>4} {format_amount(t.amount_minor):>10}"
            return label[: width - len(figures) - 1].ljust(width - len(figures)) + figures

        day = self.day
        out = [f"Z REPORT day {day.day}".center(width)]
        out.append(f"closed {day.closed_at}" if day.closed_at else "open: not closed yet")
        out.append(f"seq {day.first_seq}-{day.last_seq} (0800s' too)")  # one counter
        out.append(f"STAN {day.first_stan:06d}-{day.last_stan:06d}")
        out.append(f"amounts in {cur or '-'}")
        out.append(f"{'kind':<{width - 16}}count {'amount':>10}")
        for label, tally in self.totals.by_kind.items():
            out.append(row(label, tally))
        out.append(row("voids", self.totals.voids))
        out.append(row("refunds", self.totals.refunds))
        out.append(row("declined", self.totals.declined))
        out.append(row("awaiting host", self.totals.awaiting_host))
        out.append(row("declined after", self.totals.declined_after))
        out.append(row("refunds refused", self.totals.refunds_refused))
        if self.totals.refunds_refused.count:
            out += REFUSED_REFUND_NOTE
        if self.totals.reversals_refused.count:
            out.append(row(REFUSED_LINE, self.totals.reversals_refused))
            out += REFUSED_NOTE
        if self.totals.advices_refused.count:
            out.append(row(ADVICE_REFUSED_LINE, self.totals.advices_refused))
            out += ADVICE_REFUSED_Z_NOTE
        out.append(f"net {format_amount(self.totals.net_minor)} {cur}".rjust(width))
        out.append("")
        out.append("host (ISO 8583 74-89)")
        h = self.host_totals
        out.append(row("debits", Tally(h.debits, h.debits_minor)))
        out.append(row("debit reversals", Tally(h.debit_reversals, h.debit_reversals_minor)))
        out.append(row("credits", Tally(h.credits, h.credits_minor)))
        out.append(row("credit reversals", Tally(h.credit_reversals, h.credit_reversals_minor)))
        out.append(self.host_line())
        if day.host_status is HostCheck.DISAGREED and day.host_note:
            out += ["ours/host:", *(part.strip() for part in day.host_note.split(";"))]
        if day.host_status is HostCheck.OWED and self.owed_to_host:
            out.append(f"{self.owed_to_host} transaction(s) still to send")
        return "\n".join(line[:width] for line in out) + "\n"

    def to_json(self) -> str:
        return json.dumps(
            {
                "day": asdict(self.day),
                "currency": self.currency,
                "totals": asdict(self.totals),
                "refunds": asdict(self.totals.refunds),
                "net_minor": self.totals.net_minor,
                "host_totals": asdict(self.host_totals),
                "owed_to_host": self.owed_to_host,
            },
            indent=2,
            sort_keys=True,
        )


def z_report(conn: sqlite3.Connection, day: DayRecord) -> ZReport:
    lines = day_lines(conn, day)
    return ZReport(
        day, day_currency(conn, day), z_totals(lines), reconciliation(lines), owed_count(lines)
    )


def find_days(conn: sqlite3.Connection, which: str) -> list[DayRecord]:
    """`--day`: a day number (the open day's too), or a date YYYY-MM-DD (the days closed then)."""
    if not conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'days'").fetchone():
        raise StorageError("this journal has no days yet: start the new pitill once first")
    today = open_day(conn)
    if which.isdigit():
        number = int(which)
        if number == today.day:
            return [today]
        found = conn.execute(f"SELECT {_COLUMNS} FROM days WHERE day = ?", (number,)).fetchone()
        if found is None:
            raise StorageError(
                f"--day {which}: no such day; days 1..{today.day} exist ({today.day} is open)"
            )
        return [_record(found)]
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", which):
        raise ValueError(
            f"--day {which!r}: give a day number (e.g. 3) or a date as YYYY-MM-DD (e.g. 2026-11-30)"
        )
    days = [
        _record(v)
        for v in conn.execute(
            f"SELECT {_COLUMNS} FROM days WHERE substr(closed_at, 1, 10) = ? ORDER BY day",
            (which,),
        )
    ]
    if not days:
        raise StorageError(f"--day {which}: no day was closed on that date (pitill report --days)")
    return days


def day_arg(text: str) -> str:
    """argparse type of --day: checked here so a typo is one line from argparse."""
    if text.isdigit() and int(text) > 0:
        return text
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        return text
    raise argparse.ArgumentTypeError(
        f"{text!r}: give a day number (e.g. 3) or a date as YYYY-MM-DD (e.g. 2026-11-30)"
    )
