"""Records the journal hands to other rooms: a stored row, and a forwarding work item.

A leaf below journal/ and upstream/ (it imports only core/ and card/): the journal writes and
reads these, upstream/ builds its 0220/0420 from them, reports and the drill read them, and
none of those needs to import the others (DESIGN.md: upstream must never import journal).
"""

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
    # A reversal of a reserved STAN whose row a power loss took: amount and original local
    # date/time unknown, so the host matches it by STAN alone (journal/store.py recover_at_boot).
    stan_only: bool = False
    balance_minor: int | None = None  # the card's balance after it, as the host answered (54)
    refunds_seq: int = 0  # a REFUND: the sale it gives money back for (core/refund.py)


@dataclass(frozen=True)
class HotlistPage:
    """One answer to a hotlist request (0810, field 48): the program's hotlist key, the version
    the terminal is at once it applied `changes` (entry, listed) in order, and whether more
    changes wait after it. See card/hotlist.py for what an entry is."""

    key_hex: str
    version: int
    more: bool
    changes: tuple[tuple[str, bool], ...]


class ForwardKind(StrEnum):
    REVERSAL = "reversal"  # 0420 / 0421: goes before everything else
    ADVICE = "advice"  # 0220 / 0221


@dataclass(frozen=True)
class ForwardItem:
    """One message the forwarder must get acknowledged, with the card data unsealed for sending."""

    kind: ForwardKind
    row: JournalRow
    # Unsealed for sending: an advice's card; a reversal's when the journal kept it (an unanswered
    # 0200's), None for a void's or a STAN-only reversal
    card: Card | None

    @property
    def repeat(self) -> bool:
        return self.row.attempts > 0
