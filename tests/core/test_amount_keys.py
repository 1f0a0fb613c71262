"""Keying an amount (machine.amount_keys, the table's rule 6), the same in every phase that keys
one: the sale's amount, the cash tendered, a top-up and a refund, each with its own limit."""

from __future__ import annotations

import pytest
from till import GOOD, Till

from pitill.core.effects import Beep
from pitill.core.events import Booted, RecentSalesFound
from pitill.core.state import Phase, Settings
from pitill.core.txn import SaleOnRecord
from pitill.core.types import BeepPattern, LinkStatus, TxnKind, TxnMode, TxnStatus

SETTINGS = Settings(max_amount_minor=9999)  # tendered at most ten times that: 999.90


def keying(phase: Phase) -> Till:
    """A terminal in `phase`, nothing keyed there yet."""
    till = Till(SETTINGS, booted=Booted(0.0, next_seq=20, pin_set=True))
    till.link(LinkStatus.ONLINE)
    if phase is Phase.TENDER:
        till.keys("5", "FN")
    elif phase is Phase.TOPUP_AMOUNT:
        till.open_menu()
        till.keys("7")
    elif phase is Phase.REFUND_AMOUNT:
        sold = SaleOnRecord(7, TxnKind.CARD, TxnMode.ONLINE, TxnStatus.APPROVED, 1250, "EUR",
                            GOOD.masked_pan, 60.0, False)  # fmt: skip
        till.open_menu()
        till.keys("4")
        till.feed(RecentSalesFound(till.now_s, (sold,)))
        till.keys("OK")
    assert phase is Phase.AMOUNT or till.state.phase is phase
    return till


def keyed(till: Till) -> int:
    phase = till.state.phase
    return till.state.tendered_minor if phase is Phase.TENDER else till.state.amount_minor


@pytest.mark.parametrize(
    ("phase", "digits", "refused", "notice"),
    [
        (Phase.AMOUNT, "9999", "1", "Max EUR 99.99"),
        (Phase.TENDER, "9999", "1", "Amount too large"),
        (Phase.TOPUP_AMOUNT, "9999", "1", "Max EUR 99.99"),
        (Phase.REFUND_AMOUNT, "125", "1", "At most EUR 12.50"),
    ],
)
def test_digits_shift_in_up_to_the_phases_limit_and_clear_takes_the_last_back(
    phase: Phase, digits: str, refused: str, notice: str
) -> None:
    till = keying(phase)
    till.keys(*digits)
    assert (till.state.phase, keyed(till)) == (phase, int(digits))
    effects = till.feed_key(refused)
    assert keyed(till) == int(digits) and Beep(BeepPattern.ERROR) in effects
    assert notice in till.screen_text
    till.keys("CLEAR")
    assert (till.state.phase, keyed(till)) == (phase, int(digits) // 10)
    assert notice not in till.screen_text
