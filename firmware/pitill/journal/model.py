"""What the journal hands out: stored rows, and the work items the forwarder sends upstream."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from pitill.card.model import Card
from pitill.core.types import TxnKind, TxnMode, TxnStatus


@dataclass(frozen=True)
class JournalRow:
    """One transaction as stored. Never holds a full PAN: card data stays sealed in the database."""

    seq: int
    kind: TxnKind
    mode: TxnMode
    amount_minor: int
    currency: str
    status: TxnStatus
    masked_pan: str
    stan: int
    local_datetime: str  # YYMMDDhhmmss stamped by the shell's clock when first recorded
    response_code: str
    auth_code: str
    tendered_minor: int
    change_minor: int
    reverses_seq: int
    attempts: int  # how many times the forwarder has sent it (0 = never; >0 means a repeat MTI)
    card_read_by: str = ""  # ReadBy of the card ("" for cash)
    card_tier: str = ""  # CardTier of the card ("" for cash): stripe, uid_only or sun
    voided_by_seq: int = 0  # the VOID row that cancelled this sale (FN 3), 0 if none


class ForwardKind(StrEnum):
    REVERSAL = "reversal"  # 0420 / 0421: goes before everything else
    ADVICE = "advice"  # 0220 / 0221


@dataclass(frozen=True)
class ForwardItem:
    """One message the forwarder must get acknowledged, with the card data unsealed for sending."""

    kind: ForwardKind
    row: JournalRow
    card: Card | None  # unsealed for the advice; None for a reversal that needs no card data

    @property
    def repeat(self) -> bool:
        return self.row.attempts > 0


@dataclass(frozen=True)
class OfflineExposure:
    """The card risk the terminal carries: offline approvals the host has not acknowledged."""

    count: int
    amount_minor: int
    oldest_age_s: float


@dataclass(frozen=True)
class OwedRow:
    """A transaction still owed to the host, read from a damaged journal for salvage."""

    seq: int  # in the file it came from
    kind: TxnKind
    mode: TxnMode
    amount_minor: int
    currency: str
    status: TxnStatus  # PENDING (an advice to send), REVERSAL_PENDING or AUTHORIZING (reverse)
    masked_pan: str
    stan: int
    local_datetime: str
    response_code: str
    attempts: int
    created_at: str
    card: Card | None  # unsealed for an advice; None for a reversal


@dataclass(frozen=True)
class StatusTotal:
    """One line of the report's aggregate query: the transactions of one kind, mode and status."""

    kind: TxnKind
    mode: TxnMode
    status: TxnStatus
    currency: str
    count: int
    amount_minor: int
