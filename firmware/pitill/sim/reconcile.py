"""The one reconciliation of a host ledger against a terminal's journal.

The drill, the reliability suite, the scenario tests and any tool use this and only this. Every
ledger entry and every journal row are paired on the host's deduplication key (terminal id, STAN,
MMDDhhmmss). Per key, the host's net charge is its approved, first-seen sales and advices less
the reversals that reversed something (`net_charged_minor`), and it must agree with the row:

    APPROVED, FORWARDED                 net = amount          (told approved: charged once)
    DECLINED, REVERSED, DECLINED_AFTER, net = 0
    VOIDED, VOID (a void's own row),    (a charge kept after a refused reversal is phantom:
    REVERSAL_REFUSED, ADVICE_REFUSED    the customer was told it was taken back)
    COMPLETED (cash)                    no ledger entry at all
    a REFUND row                        the same, its net negative: -amount when given to the
                                        card; a cash refund (COMPLETED) no ledger entry at all
    PENDING, REVERSAL_PENDING,          net = 0 or amount while not settled (the host may or may
    AUTHORIZING                         not have it yet); once settled, none may be left

The words, used everywhere a reconciliation is reported:

- lost: a sale the customer was told succeeded that the host does not hold charged once for its
  amount (or that the journal does not hold as sold at all);
- duplicated: a key the host charged more than once, or for more than the sale;
- phantom: money the host holds that nobody was told about (a declined, reversed, voided or
  cash row charged; a key the journal does not know);
- unsettled: a row still in flight when the reconciliation says everything should have settled.
"""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from pitill.core.types import TxnKind, TxnStatus
from pitill.sim.acquirer import MESSAGE_CLASS, MessageClass, accepted, net_charged_minor

HostKey = tuple[str, int, str]  # terminal id, STAN, MMDDhhmmss

CHARGED = frozenset({TxnStatus.APPROVED, TxnStatus.FORWARDED})
NOT_CHARGED = frozenset(
    {
        TxnStatus.DECLINED,
        TxnStatus.REVERSED,
        TxnStatus.REVERSAL_REFUSED,  # the host refused to reverse: a charge it holds is phantom
        TxnStatus.DECLINED_AFTER,
        TxnStatus.ADVICE_REFUSED,  # held: the host did not process the advice, holds nothing
        TxnStatus.VOIDED,
        TxnStatus.VOID,
    }
)
IN_FLIGHT = frozenset({TxnStatus.PENDING, TxnStatus.REVERSAL_PENDING, TxnStatus.AUTHORIZING})
# What a row may say for a sale the customer was told succeeded (a later decline of an offline
# approval is the merchant's loss, not the customer's).
TOLD_PAID = {
    TxnKind.CARD: frozenset(
        {
            TxnStatus.APPROVED,
            TxnStatus.PENDING,
            TxnStatus.FORWARDED,
            TxnStatus.DECLINED_AFTER,
            TxnStatus.ADVICE_REFUSED,
        }
    ),
    TxnKind.CASH: frozenset({TxnStatus.COMPLETED}),
}


class JournalLine(Protocol):
    """The columns of a journal row the reconciliation reads (JournalRow and JournalEntry fit)."""

    @property
    def seq(self) -> int: ...
    @property
    def kind(self) -> str: ...
    @property
    def amount_minor(self) -> int: ...
    @property
    def status(self) -> str: ...
    @property
    def stan(self) -> int: ...
    @property
    def local_datetime(self) -> str: ...  # YYMMDDhhmmss


@dataclass(frozen=True)
class JournalEntry:
    """A journal row read straight from the file (for a journal the terminal is not running)."""

    seq: int
    kind: str
    amount_minor: int
    status: str
    stan: int
    local_datetime: str


@dataclass(frozen=True)
class Told:
    """A customer was told a sale succeeded (an approval, or change for cash) for this seq."""

    seq: int
    kind: TxnKind
    who: str  # e.g. "customer 12", for the problem line


@dataclass
class Reconciliation:
    rows: int = 0
    card_rows: int = 0
    cash_rows: int = 0
    charged_rows: int = 0  # card rows the host holds charged for exactly their amount
    ledger_entries: int = 0
    host_duplicates_absorbed: int = 0  # repeats the host answered without charging again
    keys_charged: int = 0
    host_net_minor: int = 0
    journal_charged_minor: int = 0  # what the journal says was sold by card
    refund_rows: int = 0  # refunds (FN 4), to a card or in cash
    journal_refunded_minor: int = 0  # what the journal says was given back to cards
    lost: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)
    phantom: list[str] = field(default_factory=list)
    unsettled: list[str] = field(default_factory=list)

    def problems(self) -> list[str]:
        return [*self.lost, *self.duplicated, *self.phantom, *self.unsettled]

    @property
    def ok(self) -> bool:
        return not self.problems()

    def counts(self) -> dict[str, int]:
        return {
            "lost": len(self.lost),
            "duplicated": len(self.duplicated),
            "phantom": len(self.phantom),
            "unsettled": len(self.unsettled),
        }


def host_key(terminal_id: str, row: JournalLine) -> HostKey:
    return terminal_id, int(row.stan), row.local_datetime[2:]


def entry_key(entry: dict[str, Any]) -> HostKey:
    return entry["terminal_id"], int(entry["stan"]), entry["local_datetime"]


def _charges(entries: Iterable[dict[str, Any]]) -> int:
    """Entries that moved money by themselves: first-seen approved sales and advices."""
    return sum(
        1
        for e in entries
        if not e["duplicate"]
        and accepted(e)
        and MESSAGE_CLASS[e["mti"]] is not MessageClass.REVERSAL
    )


def reconcile(
    rows: Sequence[JournalLine],
    ledger: Sequence[dict[str, Any]],
    terminal_id: str,
    *,
    settled: bool,
    told: Sequence[Told] = (),
) -> Reconciliation:
    """Compare the journal with the host ledger by the rules in the module docstring.

    `settled`: the backlog has drained with the host up, so nothing may still be in flight.
    `told`: what customers were told, checked against the rows (a drill knows this).
    """
    by_key: dict[HostKey, list[dict[str, Any]]] = defaultdict(list)
    for entry in ledger:
        by_key[entry_key(entry)].append(entry)
    result = Reconciliation(rows=len(rows), ledger_entries=len(ledger))
    result.host_duplicates_absorbed = sum(1 for e in ledger if e["duplicate"])
    nets = {key: net_charged_minor(entries) for key, entries in by_key.items()}
    result.host_net_minor = sum(nets.values())
    result.keys_charged = sum(1 for net in nets.values() if net > 0)
    known: set[HostKey] = set()
    for row in rows:
        key = host_key(terminal_id, row)
        known.add(key)
        mine = by_key.get(key, [])
        net = nets.get(key, 0)
        status = TxnStatus(row.status)
        where = f"seq {row.seq} {row.kind} {row.amount_minor} {status.value}: host net {net}"
        kind = TxnKind(row.kind)
        # A refund's money goes the other way: the host's net for it is negative.
        full = -row.amount_minor if kind is TxnKind.REFUND else row.amount_minor
        if _charges(mine) > 1 or abs(net) > row.amount_minor:
            result.duplicated.append(f"charged twice: {where}")
        if net * full < 0:
            result.phantom.append(f"money moved the wrong way: {where}")
        if kind is TxnKind.REFUND:
            result.refund_rows += 1
        if kind is TxnKind.CASH or (kind is TxnKind.REFUND and status is TxnStatus.COMPLETED):
            result.cash_rows += 1
            if mine:
                result.phantom.append(f"a cash sale reached the host: {where}")
            continue
        result.card_rows += 1
        result.charged_rows += net == full
        if status in CHARGED:
            if kind is TxnKind.REFUND:
                result.journal_refunded_minor += row.amount_minor
            else:
                result.journal_charged_minor += row.amount_minor
            if net != full:
                result.lost.append(f"told approved, not charged once: {where}")
        elif status in NOT_CHARGED:
            if net != 0:
                result.phantom.append(f"charged though not sold: {where}")
        elif status in IN_FLIGHT:
            if status is TxnStatus.PENDING and kind is TxnKind.REFUND:
                result.journal_refunded_minor += row.amount_minor
            elif status is TxnStatus.PENDING:
                result.journal_charged_minor += row.amount_minor
            if settled:
                result.unsettled.append(f"still {status.value} after the heal: {where}")
            elif net not in (0, full):
                result.phantom.append(f"odd charge while in flight: {where}")
    for key, net in nets.items():
        if key not in known and key[0] == terminal_id and net:
            result.phantom.append(
                f"STAN {key[1]} at {key[2]}: the host charged {net}, the journal has no row"
            )
    by_seq = {row.seq: row for row in rows}
    for sale in told:
        told_row = by_seq.get(sale.seq)
        if told_row is None or TxnStatus(told_row.status) not in TOLD_PAID[sale.kind]:
            found = TxnStatus(told_row.status).value if told_row is not None else "no row"
            result.lost.append(
                f"{sale.who} was told {sale.kind.value} paid for seq {sale.seq}; "
                f"the journal has {found}"
            )
    return result


def read_journal(path: Path) -> list[JournalEntry]:
    """The rows of a journal file, read-only (no recovery, no lock: the terminal may be dead)."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return [
            JournalEntry(*values)
            for values in conn.execute(
                "SELECT seq, kind, amount_minor, status, stan, local_datetime"
                " FROM txns ORDER BY seq"
            )
        ]
    finally:
        conn.close()
