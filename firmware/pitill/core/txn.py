"""A transaction as the core knows it: the row the journal stores, minus what the shell stamps."""

from __future__ import annotations

from dataclasses import dataclass, replace

from pitill.card.model import Card
from pitill.core.types import TxnKind, TxnMode, TxnStatus


@dataclass(frozen=True)
class Txn:
    """seq is terminal-unique and persisted; the STAN is derived from it (1..999999)."""

    seq: int
    kind: TxnKind
    mode: TxnMode
    amount_minor: int
    currency: str
    status: TxnStatus
    card: Card | None = None
    tendered_minor: int = 0
    change_minor: int = 0
    response_code: str = ""
    auth_code: str = ""
    reverses_seq: int = 0  # for a sale re-done offline after a timed-out 0200: the seq reversed
    balance_minor: int | None = None  # the card's balance after it, as the host answered
    refunds_seq: int = 0  # a REFUND: the sale it gives money back for

    @property
    def stan(self) -> int:
        return stan_for(self.seq)

    @property
    def masked_pan(self) -> str:
        return self.card.masked_pan if self.card else ""

    def with_status(self, status: TxnStatus, **changes: object) -> Txn:
        return replace(self, status=status, **changes)  # type: ignore[arg-type]


@dataclass(frozen=True)
class SaleOnRecord:
    """A sale in the journal as the void (LastSaleFound) and refund (RecentSalesFound) decisions
    need it."""

    seq: int
    kind: TxnKind
    mode: TxnMode
    status: TxnStatus
    amount_minor: int
    currency: str
    masked_pan: str
    age_s: float  # running time since it was recorded (never jumps with the wall clock)
    sent: bool  # the forwarder has sent it at least once (an advice may be at the host)
    day_closed: bool = False  # its day was closed (end of day, FN 5): no void any more
    refunded_minor: int = 0  # what refunds of it have given back so far (core/refund.py)


def stan_for(seq: int) -> int:
    """System trace audit number: 6 digits, never 0, cycling with the sequence number."""
    return (seq - 1) % 999_999 + 1
