"""The sandbox host's policy: which message is which, and the answer a sandbox issuer gives
(approve a valid card, decline by the amount's last digits or the test card, check SUN data).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from enum import StrEnum
from typing import Any

from pitill.card.model import luhn_ok
from pitill.core.responses import (
    APPROVED,
    DO_NOT_HONOUR,
    EXPIRED_CARD,
    FORMAT_ERROR,
    INSUFFICIENT_FUNDS,
    INVALID_AMOUNT,
    INVALID_CARD,
    AnswerKind,
    ResponseClass,
    classify,
)
from pitill.upstream.messages import (
    ADVICE,
    ADVICE_REPEAT,
    REVERSAL,
    REVERSAL_REPEAT,
    SALE_REQUEST,
    Request,
)

log = logging.getLogger("pitill.sim.acquirer")

TEST_CARD_DECLINED = "4000000000000002"


class Mode(StrEnum):
    UP = "up"
    DOWN = "down"
    BLACKHOLE = "blackhole"


class MessageClass(StrEnum):
    """Dedup is per class: an advice does not collide with the sale of the same STAN."""

    SALE = "sale"
    ADVICE = "advice"
    REVERSAL = "reversal"


MESSAGE_CLASS = {
    SALE_REQUEST: MessageClass.SALE,
    ADVICE: MessageClass.ADVICE,
    ADVICE_REPEAT: MessageClass.ADVICE,
    REVERSAL: MessageClass.REVERSAL,
    REVERSAL_REPEAT: MessageClass.REVERSAL,
}
FINANCIAL_MTIS = frozenset(MESSAGE_CLASS)


def answer_class(entry: dict[str, Any]) -> ResponseClass:
    """What a ledger entry's answer meant, by the response-code table's column for its MTI."""
    kind = AnswerKind.SALE if entry["mti"] == SALE_REQUEST else AnswerKind.ADVICE
    return classify(entry["response_code"], kind)


def accepted(entry: dict[str, Any]) -> bool:
    """Whether the answer took the message: an approved sale, an accepted advice, a reversal."""
    return answer_class(entry) is ResponseClass.APPROVED


# --- decisions -------------------------------------------------------------------------------


def decide_sale(request: Request, today_yymm: str) -> str:
    """The response code a sandbox issuer gives this card and amount on `today_yymm`.

    An NFC card (field 48) has no PAN or expiry: its card checks are AcquirerHost's (it keeps the
    SUN counters), and only the amount rules apply here.
    """
    if request.card_data:
        return _amount_code(request)
    pan, expiry = request.pan, request.expiry_yymm
    if not (12 <= len(pan) <= 19 and luhn_ok(pan)):
        return INVALID_CARD
    if len(expiry) != 4 or not expiry.isdigit() or not 1 <= int(expiry[2:]) <= 12:
        return FORMAT_ERROR
    if expiry < today_yymm:
        return EXPIRED_CARD
    if pan == TEST_CARD_DECLINED:
        return DO_NOT_HONOUR
    return _amount_code(request)


def _amount_code(request: Request) -> str:
    amount = request.amount_minor
    if amount is None or amount <= 0:
        return INVALID_AMOUNT
    if amount % 100 == 51:
        return INSUFFICIENT_FUNDS
    if amount % 100 == 5:
        return DO_NOT_HONOUR
    return APPROVED


AdvicePolicy = Callable[[Request, str], str]
"""(advice, today_yymm) -> response code; decide_sale itself declines advices like sales."""


def acknowledge(request: Request, today_yymm: str) -> str:
    """The default advice policy: every offline sale is accepted."""
    return APPROVED


def _today_yymm() -> str:
    return datetime.now().strftime("%y%m")
