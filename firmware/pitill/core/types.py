"""Small value types shared across the core: keys, link status, transaction kinds and statuses."""

from __future__ import annotations

from enum import StrEnum


class Key(StrEnum):
    """A logical key of the terminal, whatever device produced it."""

    D0 = "0"
    D1 = "1"
    D2 = "2"
    D3 = "3"
    D4 = "4"
    D5 = "5"
    D6 = "6"
    D7 = "7"
    D8 = "8"
    D9 = "9"
    OK = "OK"
    CLEAR = "CLEAR"
    CANCEL = "CANCEL"
    FN = "FN"

    @property
    def digit(self) -> int | None:
        """The digit this key stands for, or None for a function key."""
        return int(self.value) if self.value.isdigit() else None

    @classmethod
    def parse(cls, name: str) -> Key:
        """Key from its name as written in scripts and configs ("5", "OK", "cancel")."""
        try:
            return cls(name.upper())
        except ValueError:
            known = ", ".join(k.value for k in cls)
            raise ValueError(f"unknown key {name!r}; known keys: {known}") from None


class LinkStatus(StrEnum):
    """What the connectivity monitor believes about the upstream host."""

    UNKNOWN = "UNKNOWN"
    ONLINE = "ONLINE"
    DEGRADED = "DEGRADED"
    OFFLINE = "OFFLINE"


class OfflineMode(StrEnum):
    """How the terminal treats card sales when the host is down (Stripe Terminal's names)."""

    PREFER_ONLINE = "prefer_online"  # online when possible, offline within limits otherwise
    REQUIRE_ONLINE = "require_online"  # never approve a card offline: cash only while down
    FORCE_OFFLINE = "force_offline"  # the operator declares the host bad: decide every sale offline

    @property
    def label(self) -> str:
        return self.value.replace("_", " ")


class TxnKind(StrEnum):
    """What a journal row is. A REFUND gives money back for the sale its refunds_seq names (FN 4):
    to the card (online 0200 or offline 0220/0221, processing code 20) or, for a cash sale, out
    of the drawer (status COMPLETED, never sent upstream). Its amount is positive, like a VOID's:
    the kind says which way the money goes."""

    CARD = "card"
    CASH = "cash"
    TOPUP = "topup"  # cash onto a closed-loop card at a staffed terminal (FN 7, 0200 code 21)
    BALANCE = "balance"  # a balance inquiry (FN 8, 0200 code 31): moves no money
    REFUND = "refund"


class TxnMode(StrEnum):
    ONLINE = "online"
    OFFLINE = "offline"


class TxnStatus(StrEnum):
    """Lifecycle of a journaled transaction.

    AUTHORIZING   0200 about to be sent / in flight; found at boot means the outcome is unknown.
    APPROVED      approved online by the host (final).
    DECLINED      declined online or locally (final, nothing to forward).
    PENDING       approved offline, waiting to be forwarded as an 0220/0221 advice.
    FORWARDED     the host acknowledged the advice (final).
    DECLINED_AFTER the host declined the advice after an offline approval: the merchant's loss.
    REVERSAL_PENDING a 0200 whose outcome is unknown; an 0420/0421 must go before anything else.
    REVERSED      the host acknowledged the reversal (final).
    REVERSAL_REFUSED the host answered the 0420/0421 with a final code other than an approval
                  (30 format error, 12, an unknown code...): it did NOT reverse, the customer may
                  still be charged. Final for the forwarder (never sent again by itself, its
                  card wiped); shown by `pitill report`, the FN and Z reports and `pitill
                  doctor` until a person settles it with the acquirer.
    ADVICE_REFUSED the host answered an offline sale's (or refund's) 0220/0221 with a code that
                  says it did not process the message (30 format error...; responses.advice_held):
                  it never judged the card. Held, its card kept sealed, never sent again by
                  itself; shown like REVERSAL_REFUSED until a person re-queues it (PENDING) after
                  a fix or records it declined (DECLINED_AFTER).
    COMPLETED     a cash sale (final; never sent upstream).
    VOIDED        the terminal said "NOT saved" after a failed write, or the supervisor voided
                  the sale before it reached the host: never forwarded, never counted as sold,
                  even if the failed commit reappears after a crash.
    VOID          the record of a supervisor's void (FN 3): its reverses_seq is the sale voided,
                  its amount what went back (cash out of the drawer). Final; never sent upstream.
    """

    AUTHORIZING = "AUTHORIZING"
    APPROVED = "APPROVED"
    DECLINED = "DECLINED"
    PENDING = "PENDING"
    FORWARDED = "FORWARDED"
    DECLINED_AFTER = "DECLINED_AFTER"
    REVERSAL_PENDING = "REVERSAL_PENDING"
    REVERSED = "REVERSED"
    REVERSAL_REFUSED = "REVERSAL_REFUSED"
    ADVICE_REFUSED = "ADVICE_REFUSED"
    COMPLETED = "COMPLETED"
    VOIDED = "VOIDED"
    VOID = "VOID"


# The supervisor PIN's length (keyed on the keypad; the shell refuses others at `pitill pin set`).
PIN_MIN_DIGITS = 4
PIN_MAX_DIGITS = 8


class PinPurpose(StrEnum):
    """What the digits keyed on the PIN screen are for."""

    UNLOCK = "unlock"  # the supervisor opens the FN menu
    NEW = "new"  # no PIN yet: the first supervisor sets one
    CONFIRM = "confirm"  # the new PIN once more


class BeepPattern(StrEnum):
    CLICK = "click"
    APPROVE = "approve"
    DECLINE = "decline"
    ERROR = "error"
    ALERT = "alert"


def format_amount(amount_minor: int, exponent: int = 2) -> str:
    """12.50 from 1250: integer arithmetic only, never a float."""
    sign = "-" if amount_minor < 0 else ""
    units, minor = divmod(abs(amount_minor), 10**exponent)
    if exponent == 0:
        return f"{sign}{units}"
    return f"{sign}{units}.{minor:0{exponent}d}"


def parse_amount(text: str, exponent: int = 2) -> int:
    """1250 from "12.50" (or "12.5", "12"): as a cashier writes it, never through a float.
    Raises ValueError naming the text for anything else (a sign, more decimals, letters)."""
    raw = text.strip()
    units, dot, minor = raw.partition(".")
    if (
        not units.isdigit()
        or not units.isascii()
        or (dot and (not minor.isdigit() or not minor.isascii() or len(minor) > exponent))
        or (dot and exponent == 0)
    ):
        raise ValueError(
            f"amount {text!r}: write it as on the terminal, e.g. 12.50 (at most {exponent} "
            "decimals, no sign)"
        )
    scale: int = 10**exponent
    return int(units) * scale + (int(minor.ljust(exponent, "0")) if dot else 0)
