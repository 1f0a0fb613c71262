"""The card as the rest of pitill sees it: a PAN that never prints in full, and an expiry."""

from __future__ import annotations

from dataclasses import dataclass, field


def mask_pan(pan: str) -> str:
    """First 6 and last 4 digits at most (PCI DSS 3.4.1); shorter PANs show less."""
    if len(pan) <= 10:
        keep_last = max(0, min(4, len(pan) - 4))
        return "*" * (len(pan) - keep_last) + pan[len(pan) - keep_last :]
    return pan[:6] + "*" * (len(pan) - 10) + pan[-4:]


def luhn_ok(pan: str) -> bool:
    """True when the digit string passes the Luhn (mod 10) check."""
    if not pan.isdigit() or len(pan) < 2:
        return False
    total = 0
    for index, char in enumerate(reversed(pan)):
        digit = int(char)
        if index % 2 == 1:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return total % 10 == 0


@dataclass(frozen=True)
class Card:
    """A card read from the stripe. repr() and str() show the masked PAN only."""

    pan: str = field(repr=False)
    expiry_yymm: str
    service_code: str = ""
    cardholder_name: str = field(default="", repr=False)

    @property
    def masked_pan(self) -> str:
        return mask_pan(self.pan)

    def __repr__(self) -> str:
        return f"Card(pan={self.masked_pan!r}, expiry_yymm={self.expiry_yymm!r})"

    __str__ = __repr__

    def is_expired(self, today_yymm: str) -> bool:
        """A card is valid through the last day of its expiry month."""
        return self.expiry_yymm < today_yymm

    def problem(self, today_yymm: str) -> str | None:
        """Why this card cannot be used, as the screen says it, or None when it can."""
        if not luhn_ok(self.pan) or not 12 <= len(self.pan) <= 19:
            return "INVALID CARD"
        if not _valid_yymm(self.expiry_yymm):
            return "CARD READ ERROR"
        if self.is_expired(today_yymm):
            return "EXPIRED CARD"
        return None


def _valid_yymm(yymm: str) -> bool:
    return len(yymm) == 4 and yymm.isdigit() and 1 <= int(yymm[2:]) <= 12
