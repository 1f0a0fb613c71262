"""What the journal's own readers get: offline exposure, report totals, rows owed by a bad file.

The records other rooms share with the journal (a stored row, a forwarding work item) live in
pitill/records.py, so that upstream/ can build messages from them without importing journal/.
"""

from __future__ import annotations

from dataclasses import dataclass

from pitill.card.model import Card
from pitill.core.types import TxnKind, TxnMode, TxnStatus


@dataclass(frozen=True)
class OfflineExposure:
    """The card risk the terminal carries: offline approvals the host has not acknowledged."""

    count: int
    amount_minor: int
    oldest_age_s: float


@dataclass(frozen=True)
class OwedRow:
    """A transaction still owed to the host (or waiting for a person), read from a damaged
    journal for salvage."""

    seq: int  # in the file it came from
    kind: TxnKind
    mode: TxnMode
    amount_minor: int
    currency: str
    # PENDING (an advice to send), REVERSAL_PENDING or AUTHORIZING (reverse), or waiting for a
    # person: REVERSAL_REFUSED, ADVICE_REFUSED (its card kept, held_card)
    status: TxnStatus
    masked_pan: str
    stan: int
    local_datetime: str
    response_code: str
    attempts: int
    created_at: str
    card: Card | None  # unsealed: an advice's, or a reversal's when the file kept it


@dataclass(frozen=True)
class StatusTotal:
    """One line of the report's aggregate query: the transactions of one kind, mode and status."""

    kind: TxnKind
    mode: TxnMode
    status: TxnStatus
    currency: str
    count: int
    amount_minor: int
    card_tier: str = ""  # CardTier of these card rows ("" for cash)
