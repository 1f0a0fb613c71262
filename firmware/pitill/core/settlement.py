"""End of day: what each journaled row counts as, for the Z report and for the host's check.

One home for the rule, used by the journal (the Z report, `pitill report --day`), the 0500 the
terminal sends and the sandbox acquirer's own count. Totals are generic over TxnKind: a kind this
module has never heard of still gets its own line in the Z report.

Two views of one day:
- The Z report (what the shop did): sold by kind (card online, card offline, cash, then any other
  kind by name), refunds (to the card, in cash), voids, offline sales still awaiting the host,
  declines. The host's refusals after the fact come in two lines: "declined after" (offline
  sales it would not pay: the shop's loss) and refunds refused by host (offline refunds it
  would not credit: the customer was told refunded and is still owed it; no cash left the
  drawer). Both stay in their kind's line, as the customer was told; neither is in 74-89.
- The reconciliation (what the host must hold, ISO 8583:1987 fields 74-89): debits are card sales
  the host approved (online, or an offline sale whose advice it accepted), credits are refunds it
  accepted; a reversal counts when the supervisor voided the sale (reason 17). A sale reversed
  because its answer never came (reason 68) counts on neither side: the terminal never learned
  whether the host had approved it. Rows still owed to the host (PENDING, REVERSAL_PENDING) make
  the check premature: it waits until they are sent (`ready_for_host`).
- A reversal the host refused (REVERSAL_REFUSED: a 30 format error, or another final refusal)
  does not hold the check back (nothing the terminal sends will change it) and counts as the
  reversal the terminal asked for: a host that still holds the charge then disagrees, and its
  0510 names the difference. The Z report lists it apart, never as reversed.
- An advice the host refused without processing it (ADVICE_REFUSED: 30 format error...) stands
  like an offline sale (the goods went) but counts like a declined-after one: the host holds
  nothing of it, its 0510 counts none (the sandbox's and host's rule: only an accepted advice is
  held). It does not hold the check back either (only a person moves it); the Z report lists it
  apart. Re-queued and sent after its day was checked, it makes that day disagree if checked again.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from pitill.core.types import TxnKind, TxnMode, TxnStatus

# Rows that are money the shop took (or gave back) and that stand.
STANDING = (
    TxnStatus.APPROVED,
    TxnStatus.COMPLETED,
    TxnStatus.PENDING,
    TxnStatus.FORWARDED,
    # approved offline, refused by the host after the fact: a sale's goods were handed over (the
    # shop's loss), a refund was promised to the card (the customer is still owed it)
    TxnStatus.DECLINED_AFTER,
    TxnStatus.ADVICE_REFUSED,  # approved offline, its advice held for a person: the goods went
)
OWED_TO_HOST = (TxnStatus.PENDING, TxnStatus.REVERSAL_PENDING, TxnStatus.AUTHORIZING)
# Kinds that credit the card's account at the host (ISO 8583 "credits", 74/86): a refund (the
# refund helper's TxnKind.REFUND, by value, so this module needs no change when it lands) and a
# top-up (a deposit, processing code 21). Every other money kind debits it (a sale).
CREDIT_KINDS = frozenset({"refund", "topup"})
# Money that goes back to the customer (the Z report's net).
PAID_OUT_KINDS = frozenset({"refund"})
# The Z report's refund lines: to the card (online, or offline and forwarded like a sale) or in
# cash out of the drawer (a cash sale's refund, COMPLETED like a cash sale: never at the host).
REFUND_CARD = "refund card"
REFUND_CASH = "refund cash"
PAID_OUT_LABELS = (REFUND_CARD, REFUND_CASH)  # in the Z report's order, after every sale
# Kinds that move no money: counted apart (the host's field 80, inquiries).
INQUIRY_KINDS = frozenset({"balance"})
# Kinds the host holds (cash never reaches it).
HOST_KINDS = frozenset({"card", "refund", "topup", "balance"})

CARD_ONLINE = "card online"
# The Z report's line for reversals the host refused (end of day beeps an alert for it).
REFUSED_LINE = "REVERSAL REFUSED"
# ...and for advices the host refused without processing them (held for a person; alert too).
ADVICE_REFUSED_LINE = "ADVICE REFUSED"
# The Z report's line (screen, `pitill report`) for offline refunds the host refused after the fact.
REFUSED_REFUND_LINE = "Refunds refused by host"
CARD_OFFLINE = "card offline"
CASH = "cash"


@dataclass(frozen=True)
class DayLine:
    """One group of a day's rows (the journal's aggregate query)."""

    kind: str  # TxnKind value (a str, so kinds added later need no change here)
    mode: TxnMode
    status: TxnStatus
    voided: bool  # the row was voided from FN 3 (voided_by_seq set)
    count: int
    amount_minor: int


@dataclass
class Tally:
    count: int = 0
    amount_minor: int = 0

    def add(self, count: int, amount_minor: int) -> None:
        self.count += count
        self.amount_minor += amount_minor


def kind_label(kind: str, mode: TxnMode, status: TxnStatus) -> str:
    """The Z report's line for a kind: card splits into online and offline, a refund into to
    the card and in cash (a COMPLETED row never goes to the host: cash, out of the drawer)."""
    if kind == TxnKind.CARD.value:
        return CARD_ONLINE if mode is TxnMode.ONLINE else CARD_OFFLINE
    if kind in PAID_OUT_KINDS:
        return REFUND_CASH if status is TxnStatus.COMPLETED else REFUND_CARD
    return kind


@dataclass
class ZTotals:
    """The Z report's figures for one day."""

    by_kind: dict[str, Tally] = field(default_factory=dict)  # standing rows, credits included
    inquiries: Tally = field(default_factory=Tally)  # balance inquiries answered (no money)
    voids: Tally = field(default_factory=Tally)
    awaiting_host: Tally = field(default_factory=Tally)  # offline sales not yet at the host
    reversals_due: int = 0
    reversals_refused: Tally = field(default_factory=Tally)  # NOT reversed: a person settles them
    advices_refused: Tally = field(default_factory=Tally)  # held, not through: a person decides
    declined: Tally = field(default_factory=Tally)
    declined_after: Tally = field(default_factory=Tally)  # offline sales: the shop's loss
    # Offline card refunds the host refused after the fact (in by_kind's REFUND_CARD too: the
    # customer was told refunded). The card was NOT credited and no cash left the drawer: the
    # customer is still owed it. Not the shop's loss, and not in 74-89 (the host holds none).
    refunds_refused: Tally = field(default_factory=Tally)

    @property
    def refunds(self) -> Tally:
        """Every refund given, to the card and in cash."""
        total = Tally()
        for label, tally in self.by_kind.items():
            if label in PAID_OUT_LABELS:
                total.add(tally.count, tally.amount_minor)
        return total

    @property
    def net_minor(self) -> int:
        """Money taken less money given back (voided sales are not in by_kind)."""
        return sum(
            -t.amount_minor if label in PAID_OUT_LABELS else t.amount_minor
            for label, t in self.by_kind.items()
        )


# The ZTotals tallies a row counts in beside (or instead of) its by_kind line: z_line's second half.
VOIDS = "voids"
INQUIRIES = "inquiries"
AWAITING_HOST = "awaiting_host"
REFUNDS_REFUSED = "refunds_refused"
DECLINED_AFTER = "declined_after"
DECLINED = "declined"
REVERSALS_DUE = "reversals_due"  # a count only (ZTotals.reversals_due)
REVERSALS_REFUSED = "reversals_refused"
ADVICES_REFUSED = "advices_refused"


def z_line(kind: str, mode: TxnMode, status: TxnStatus) -> tuple[str | None, str | None]:
    """Where rows of (kind, mode, status) count in the Z report: the by_kind line (None: not
    money that stands) and the ZTotals tally named above they count in too (None: none).
    The one classification: z_totals, `pitill report` and the drill's report all ask it."""
    if status is TxnStatus.VOID:
        return None, VOIDS
    if kind in INQUIRY_KINDS:
        return None, INQUIRIES if status is TxnStatus.APPROVED else None
    label = kind_label(kind, mode, status) if status in STANDING else None
    if status is TxnStatus.PENDING:
        return label, AWAITING_HOST
    if status is TxnStatus.DECLINED_AFTER:
        return label, REFUNDS_REFUSED if kind in PAID_OUT_KINDS else DECLINED_AFTER
    if status is TxnStatus.DECLINED:
        return label, DECLINED
    if status in (TxnStatus.REVERSAL_PENDING, TxnStatus.AUTHORIZING):
        return label, REVERSALS_DUE
    if status is TxnStatus.REVERSAL_REFUSED:
        return label, REVERSALS_REFUSED
    if status is TxnStatus.ADVICE_REFUSED:
        return label, ADVICES_REFUSED
    return label, None


def z_totals(lines: Iterable[DayLine]) -> ZTotals:
    z = ZTotals(by_kind={CARD_ONLINE: Tally(), CARD_OFFLINE: Tally(), CASH: Tally()})
    for line in lines:
        label, tally = z_line(line.kind, line.mode, line.status)
        if label is not None:
            z.by_kind.setdefault(label, Tally()).add(line.count, line.amount_minor)
        if tally == REVERSALS_DUE:
            z.reversals_due += line.count
        elif tally == INQUIRIES:
            z.inquiries.add(line.count, 0)
        elif tally is not None:
            into: Tally = getattr(z, tally)
            into.add(line.count, line.amount_minor)
    # Refunds after every sale, card then cash, whatever order the rows came in.
    refunds = {label: z.by_kind.pop(label) for label in PAID_OUT_LABELS if label in z.by_kind}
    z.by_kind.update(refunds)
    return z


@dataclass(frozen=True)
class Reconciliation:
    """ISO 8583:1987 fields 74-77 and 86-89 of one day (the others pitill sends as zeros)."""

    credits: int = 0  # 74
    credit_reversals: int = 0  # 75
    debits: int = 0  # 76
    debit_reversals: int = 0  # 77
    inquiries: int = 0  # 80
    credits_minor: int = 0  # 86
    credit_reversals_minor: int = 0  # 87
    debits_minor: int = 0  # 88
    debit_reversals_minor: int = 0  # 89

    def differences(self, other: Reconciliation) -> list[str]:
        """What differs, as short lines ("debits 3/2"): ours first, then the other's."""
        found = []
        for name in (
            "debits",
            "debit_reversals",
            "credits",
            "credit_reversals",
            "inquiries",
            "debits_minor",
            "debit_reversals_minor",
            "credits_minor",
            "credit_reversals_minor",
        ):
            mine, theirs = getattr(self, name), getattr(other, name)
            if mine != theirs:
                found.append(f"{name.replace('_', ' ')} {mine}/{theirs}")
        return found


def add_to_reconciliation(
    totals: dict[str, int], kind: str, *, reversal: bool, count: int, amount_minor: int
) -> None:
    """Count `count` rows of `kind` into the field totals (debit or credit, reversal or not)."""
    if kind in INQUIRY_KINDS:
        totals["inquiries"] = totals.get("inquiries", 0) + count
        return
    side = "credit" if kind in CREDIT_KINDS else "debit"
    name = f"{side}_reversals" if reversal else f"{side}s"
    totals[name] = totals.get(name, 0) + count
    totals[f"{name}_minor"] = totals.get(f"{name}_minor", 0) + amount_minor


def reconciliation(lines: Iterable[DayLine]) -> Reconciliation:
    """What the host must hold for a day whose rows are all sent (see ready_for_host)."""
    totals: dict[str, int] = {}
    for line in lines:
        if line.kind not in HOST_KINDS:
            continue
        held = line.status in (TxnStatus.APPROVED, TxnStatus.FORWARDED)
        # A refused reversal counts as the one asked for: the host's 0510 shows what it holds.
        asked_reversed = line.status in (TxnStatus.REVERSED, TxnStatus.REVERSAL_REFUSED)
        voided_reversed = asked_reversed and line.voided
        if held or voided_reversed:
            add_to_reconciliation(
                totals, line.kind, reversal=False, count=line.count, amount_minor=line.amount_minor
            )
        if voided_reversed:
            add_to_reconciliation(
                totals, line.kind, reversal=True, count=line.count, amount_minor=line.amount_minor
            )
    return Reconciliation(**totals)


def owed_count(lines: Iterable[DayLine]) -> int:
    """Rows of the day the host has not been told about yet (the check waits for them)."""
    return sum(
        line.count for line in lines if line.kind in HOST_KINDS and line.status in OWED_TO_HOST
    )
