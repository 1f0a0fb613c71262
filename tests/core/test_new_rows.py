"""Every new transaction row goes through machine.journal_new: it takes the next seq, which moves
past it, and its Record comes before the 0200, the beep, the drawer and the screen that follow."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from till import GOOD, TODAY, Till

from pitill.core.effects import Authorize, Beep, OpenDrawer, Record, Show
from pitill.core.events import Booted, CardSwiped, RecentSalesFound
from pitill.core.txn import SaleOnRecord
from pitill.core.types import LinkStatus, TxnKind, TxnMode, TxnStatus

SEQ = 30


def _sold(kind: TxnKind) -> SaleOnRecord:
    card = kind is TxnKind.CARD
    status = TxnStatus.APPROVED if card else TxnStatus.COMPLETED
    pan = GOOD.masked_pan if card else ""
    return SaleOnRecord(7, kind, TxnMode.ONLINE, status, 800, "EUR", pan, 60.0, False)


def _refund(kind: TxnKind) -> Callable[[Till], object]:
    def run(till: Till) -> object:
        till.open_menu()
        till.keys("4")
        till.feed(RecentSalesFound(till.now_s, (_sold(kind),)))
        till.keys("OK")
        effects = till.feed_key("OK")
        return till.swipe() if kind is TxnKind.CARD else effects

    return run


def _sale(till: Till) -> object:
    till.keys("8", "0", "0", "OK")
    return till.swipe()


def _blocked(till: Till) -> object:
    till.keys("8", "0", "0", "OK")
    return till.feed(CardSwiped(till.now_s, GOOD, TODAY, hotlisted=True))


def _cash(till: Till) -> object:
    till.keys("8", "0", "0", "FN")
    return till.feed_key("OK")


def _topup(till: Till) -> object:
    till.open_menu()
    till.keys("7", "8", "0", "0", "OK")
    return till.swipe()


PATHS = {
    "card sale": (_sale, LinkStatus.ONLINE, TxnStatus.AUTHORIZING),
    "offline sale": (_sale, LinkStatus.OFFLINE, TxnStatus.PENDING),
    "hotlisted offline": (_blocked, LinkStatus.OFFLINE, TxnStatus.DECLINED),
    "cash sale": (_cash, LinkStatus.ONLINE, TxnStatus.COMPLETED),
    "cash refund": (_refund(TxnKind.CASH), LinkStatus.ONLINE, TxnStatus.COMPLETED),
    "card refund": (_refund(TxnKind.CARD), LinkStatus.ONLINE, TxnStatus.AUTHORIZING),
    "offline refund": (_refund(TxnKind.CARD), LinkStatus.OFFLINE, TxnStatus.PENDING),
    "top-up": (_topup, LinkStatus.ONLINE, TxnStatus.AUTHORIZING),
}


@pytest.mark.parametrize("path", PATHS)
def test_a_new_row_takes_the_next_seq_and_is_journaled_first(path: str) -> None:
    run, link, status = PATHS[path]
    till = Till(booted=Booted(0.0, next_seq=SEQ, pin_set=True))
    till.link(link)
    effects = run(till)
    assert isinstance(effects, tuple)
    (record,) = [e for e in effects if isinstance(e, Record)]
    assert (record.txn.seq, record.txn.status) == (SEQ, status)
    assert till.state.next_seq == SEQ + 1 and till.state.txn == record.txn
    told = [i for i, e in enumerate(effects) if isinstance(e, Authorize | Beep | OpenDrawer | Show)]
    assert told and min(told) > effects.index(record)
