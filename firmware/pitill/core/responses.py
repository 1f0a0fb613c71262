"""The one table of ISO 8583 response codes (field 39): what each means to pitill.

Every module that looks at a response code asks this table: the core (what the customer is told),
the upstream client and monitor (is the host failing?), the journal and its forwarder (is an
offline sale accepted, or must it go again?), the drill and the sandbox acquirer.

Each code has a class per kind of answer, because the same code can mean different things:
- for a sale (0210): APPROVED (the card is charged), RETRY (the host said "not now": the sale
  stands in offline, and the monitor counts the host as failing), FINAL (a decline: the customer
  is told so and the sale ends);
- for an advice or a reversal (0230/0430, and the echo 0810): APPROVED (the host took it: the
  offline sale is acknowledged, the reversal done), RETRY (send the same message again later),
  FINAL (the host refused it for good: an advice stays declined-after, the merchant's loss for
  a sale, a refund refused by host for a refund (the customer is still owed it);
  a reversal becomes REVERSAL_REFUSED, NOT reversed: the sale may stand, a person settles it).
  A final answer to an advice that says the host did not process the message (format error,
  routing, the terminal's set-up, an unknown code: `advice_held`) never judged the card: the
  advice is held (ADVICE_REFUSED, card kept sealed) for a person, not declined.

A code not in the table is a FINAL decline for both, shown as "CODE xx". Codes the terminal writes
itself for decisions taken without the host (EMV's Y3/Z3) are in the table too, so the journal's
codes all have a meaning, but a host never sends them.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class ResponseClass(StrEnum):
    APPROVED = "approved"
    RETRY = "retry"  # transient: the host said "not now"; the same message may go again later
    FINAL = "final"  # a decline that sending again will not change


class AnswerKind(StrEnum):
    """Which column of the table applies: the answer to a sale, or to an advice/reversal/echo."""

    SALE = "sale"  # 0210
    ADVICE = "advice"  # 0230, 0430 (and 0810)


@dataclass(frozen=True)
class ResponseCode:
    code: str
    meaning: str  # for people reading a log, the journal or the docs
    sale: ResponseClass  # the answer to an 0200
    advice: ResponseClass  # the answer to an 0220/0221 or 0420/0421 (and an 0800)
    screen: str  # what the terminal shows (at most SCREEN_CHARS)


SCREEN_CHARS = 18  # what fits one line of the 128 px OLED in its body font

# Field-39 codes by name, for the code that builds or checks answers.
APPROVED = "00"
DO_NOT_HONOUR = "05"
HONOUR_WITH_ID = "08"
INVALID_AMOUNT = "13"
INVALID_CARD = "14"
FORMAT_ERROR = "30"
INSUFFICIENT_FUNDS = "51"
EXPIRED_CARD = "54"
SECURITY_VIOLATION = "63"  # e.g. an NTAG 424 DNA tap whose SUN message is forged or replayed
ISSUER_INOPERATIVE = "91"
RECONCILE_ERROR = "95"  # an 0510: the host's end-of-day totals differ from the terminal's
SYSTEM_MALFUNCTION = "96"
# Written by the terminal itself for decisions taken without the host (EMV vocabulary).
OFFLINE_APPROVED = "Y3"  # approved, unable to go online
OFFLINE_DECLINED = "Z3"  # declined, unable to go online
# The reason a reversal carries in its own field 39 (not an answer): the supervisor voided it.
REVERSAL_REASON_CUSTOMER_CANCELLATION = "17"
# To a reversal: no original under field 90's key (final; store.mark_forwarded_many reads it).
UNABLE_TO_LOCATE_ORIGINAL = "25"

_A, _R, _F = ResponseClass.APPROVED, ResponseClass.RETRY, ResponseClass.FINAL

_TABLE = (
    # code, meaning, sale, advice/reversal, screen
    ResponseCode(APPROVED, "approved", _A, _A, "APPROVED"),
    ResponseCode("01", "refer to card issuer", _F, _F, "CALL ISSUER"),
    ResponseCode("03", "invalid merchant", _F, _F, "INVALID MERCHANT"),
    ResponseCode("04", "pick up card", _F, _F, "KEEP CARD"),
    ResponseCode(DO_NOT_HONOUR, "do not honour", _F, _F, "DO NOT HONOUR"),
    ResponseCode("06", "error", _F, _F, "HOST ERROR"),
    # The host charged the card: on a sale too it is an approval, never a decline.
    ResponseCode(HONOUR_WITH_ID, "honour with identification", _A, _A, "APPROVED CHECK ID"),
    ResponseCode("11", "approved (VIP)", _A, _A, "APPROVED"),
    ResponseCode("12", "invalid transaction", _F, _F, "INVALID TXN"),
    ResponseCode(INVALID_AMOUNT, "invalid amount", _F, _F, "INVALID AMOUNT"),
    ResponseCode(INVALID_CARD, "invalid card number", _F, _F, "INVALID CARD"),
    ResponseCode("19", "re-enter transaction", _R, _R, "TRY AGAIN LATER"),
    # To a reversal: the host found no original under field 90's key. It may still hold the
    # sale under another (a 0200 sent otherwise): refused, never counted as reversed; but to
    # a reversal by STAN alone of a seq with no record it means "nothing to reverse" (store).
    ResponseCode(UNABLE_TO_LOCATE_ORIGINAL, "unable to locate original", _F, _F, "NOT FOUND"),
    ResponseCode(FORMAT_ERROR, "format error", _F, _F, "FORMAT ERROR"),
    ResponseCode("41", "lost card, pick up", _F, _F, "KEEP CARD"),
    ResponseCode("43", "stolen card, pick up", _F, _F, "KEEP CARD"),
    ResponseCode(INSUFFICIENT_FUNDS, "insufficient funds", _F, _F, "INSUFFICIENT FUNDS"),
    ResponseCode(EXPIRED_CARD, "expired card", _F, _F, "EXPIRED CARD"),
    ResponseCode("55", "incorrect PIN", _F, _F, "INCORRECT PIN"),
    ResponseCode("57", "not permitted to cardholder", _F, _F, "NOT PERMITTED"),
    ResponseCode("58", "not permitted to terminal", _F, _F, "NOT PERMITTED"),
    ResponseCode("61", "exceeds amount limit", _F, _F, "OVER CARD LIMIT"),
    ResponseCode("62", "restricted card", _F, _F, "RESTRICTED CARD"),
    ResponseCode(SECURITY_VIOLATION, "security violation", _F, _F, "CARD NOT GENUINE"),
    ResponseCode("65", "exceeds frequency limit", _F, _F, "OVER CARD LIMIT"),
    # The issuer answered the switch too late: nothing was decided, so "not now" for both.
    ResponseCode("68", "response received too late", _R, _R, "ISSUER TOO SLOW"),
    ResponseCode("90", "cutoff in progress", _R, _R, "TRY AGAIN LATER"),
    ResponseCode(ISSUER_INOPERATIVE, "issuer or switch inoperative", _R, _R, "ISSUER UNAVAILABLE"),
    ResponseCode("92", "no route to the issuer", _F, _F, "NO ROUTE TO ISSUER"),
    # A repeat the host already holds: for an advice or reversal that means it was taken.
    ResponseCode("94", "duplicate transmission", _F, _A, "DUPLICATE"),
    # An 0510's verdict on the day's totals (end of day): they differ from the host's.
    ResponseCode(RECONCILE_ERROR, "reconcile error", _F, _F, "HOST DISAGREES"),
    ResponseCode(SYSTEM_MALFUNCTION, "system malfunction", _R, _R, "SYSTEM ERROR"),
    ResponseCode(OFFLINE_APPROVED, "approved offline by the terminal", _A, _A, "APPROVED OFFLINE"),
    ResponseCode(OFFLINE_DECLINED, "declined offline by the terminal", _F, _F, "DECLINED OFFLINE"),
)

RESPONSE_CODES: dict[str, ResponseCode] = {entry.code: entry for entry in _TABLE}


def is_response_code(code: str) -> bool:
    """Field 39 is two letters or digits."""
    return len(code) == 2 and code.isascii() and code.isalnum()


def lookup(code: str) -> ResponseCode:
    """The table's entry; an unknown (well-formed) code is a final decline. A malformed code
    raises ValueError: check it with is_response_code where it comes from outside."""
    if not is_response_code(code):
        raise ValueError(f"response code {code!r} is not two letters or digits")
    entry = RESPONSE_CODES.get(code)
    if entry is None:
        return ResponseCode(code, "unknown code", _F, _F, f"CODE {code}")
    return entry


def sale_class(code: str) -> ResponseClass:
    """What an 0210 with this code means for the sale."""
    return lookup(code).sale


def advice_class(code: str) -> ResponseClass:
    """What an 0230/0430 (or 0810) with this code means for the message."""
    return lookup(code).advice


def classify(code: str, kind: AnswerKind) -> ResponseClass:
    return sale_class(code) if kind is AnswerKind.SALE else advice_class(code)


def screen_text(code: str) -> str:
    """The line the terminal shows for this code."""
    return lookup(code).screen if is_response_code(code) else "CODE ??"


def codes_of(kind: AnswerKind, klass: ResponseClass) -> frozenset[str]:
    """Every listed code of one class in one column (e.g. the retry codes of a sale)."""
    return frozenset(e.code for e in _TABLE if classify(e.code, kind) is klass)


# Final answers to an advice (0220/0221) that say the host did not process the message, so it
# never judged the card (ISO 8583:1987): 03 invalid merchant and 58 not permitted to terminal (the
# acquirer's set-up of this terminal), 06 error and 12 invalid transaction (the message, not the
# card: a card-level refusal has its own code), 25 (no original: meaningless for an advice), 30
# format error, 92 no route to the issuer, 95 (an 0510's verdict, not an advice's). A code not in
# the table is held too: pitill cannot tell it judged the card. Sending again after a fix may go
# through, so the advice is held (ADVICE_REFUSED) for a person instead of becoming the shop's
# loss; issuer declines (05, 14, 51, 54...) stay DECLINED_AFTER (DECISIONS.md).
NOT_PROCESSED_CODES = frozenset({"03", "06", "12", "25", FORMAT_ERROR, "58", "92", RECONCILE_ERROR})


def advice_held(code: str) -> bool:
    """A final answer to an advice that does not judge the card: hold it, do not decline it."""
    if advice_class(code) is not ResponseClass.FINAL:
        return False
    return code in NOT_PROCESSED_CODES or code not in RESPONSE_CODES


# "Not now" whatever was asked: the codes a host (or the sandbox's chaos) answers without
# processing the message.
RETRY_CODES = codes_of(AnswerKind.SALE, ResponseClass.RETRY) & codes_of(
    AnswerKind.ADVICE, ResponseClass.RETRY
)
