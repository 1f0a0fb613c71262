"""The card as the rest of pitill sees it: an identity that never prints in full, how it was read
and its security tier.

Every reader ends in a Card. A stripe gives a PAN and an expiry (tier `stripe`); an NFC tag gives
its UID (tier `uid_only`: public, anyone can clone it); an NTAG 424 DNA with Secure Unique NFC gives
its UID and read counter decrypted from the tag's SUN message, plus that message for the host to
verify (tier `sun`, see card/sun.py). Limits and reports differ by tier (docs/cards.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from pitill.card.sealed_track import SealedTrack


class CardTier(StrEnum):
    """How much a read proves about the card; the journal writes it into every card row."""

    STRIPE = "stripe"  # magnetic stripe: PAN and expiry, copyable; the issuer's host decides
    UID_ONLY = "uid_only"  # an NFC tag's UID: public and clonable, online only by default
    SUN = "sun"  # NTAG 424 DNA SUN: encrypted UID + counter with a CMAC only the tag can make


class ReadBy(StrEnum):
    """Which kind of reader produced the card ([reader] type in the config)."""

    SERIAL_STRIPE = "serial-stripe"
    USB_STRIPE = "usb-stripe"
    PN532 = "pn532"


UID_LENGTHS_BYTES = (4, 7, 10)  # ISO 14443-3 single, double and triple size UIDs
PICC_DATA_BYTES = 16  # the encrypted PICCData block of a SUN message
SDMMAC_BYTES = 8  # the truncated CMAC of a SUN message


@dataclass(frozen=True)
class SunMessage:
    """What an NTAG 424 DNA mirrored on this tap: encrypted PICCData and its SDMMAC, as sent."""

    picc_data: bytes
    sdmmac: bytes

    def __post_init__(self) -> None:
        if len(self.picc_data) != PICC_DATA_BYTES or len(self.sdmmac) != SDMMAC_BYTES:
            raise ValueError(
                f"a SUN message is {PICC_DATA_BYTES} bytes of PICCData and a {SDMMAC_BYTES}-byte "
                f"SDMMAC, got {len(self.picc_data)} and {len(self.sdmmac)}"
            )

    def hex(self) -> str:
        """PICCDATA:SDMMAC in upper-case hex, the form sent upstream."""
        return f"{self.picc_data.hex().upper()}:{self.sdmmac.hex().upper()}"

    @classmethod
    def from_hex(cls, text: str) -> SunMessage:
        picc, sep, mac = text.partition(":")
        try:
            if not sep:
                raise ValueError
            return cls(bytes.fromhex(picc), bytes.fromhex(mac))
        except ValueError:
            raise ValueError(
                f"SUN data must be {PICC_DATA_BYTES * 2} hex digits, ':' and "
                f"{SDMMAC_BYTES * 2} hex digits, got {len(text)} characters"
            ) from None


def mask_uid(uid: str) -> str:
    """An NFC UID as screens and the journal show it: first byte and last two bytes."""
    if len(uid) <= 6:
        return uid
    return uid[:2] + "*" * (len(uid) - 6) + uid[-4:]


def uid_ok(uid: str) -> bool:
    """True for upper-case hex of a 4, 7 or 10 byte UID."""
    return len(uid) in tuple(2 * n for n in UID_LENGTHS_BYTES) and all(
        c in "0123456789ABCDEF" for c in uid
    )


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
    """A card as a reader read it. repr() and str() show the masked identity only.

    A stripe card has a PAN and an expiry; an NFC card has a UID (upper-case hex) instead, an
    empty PAN and expiry, and for tier `sun` the tag's read counter and its SUN message.
    """

    pan: str = field(repr=False)
    expiry_yymm: str
    service_code: str = ""
    cardholder_name: str = field(default="", repr=False)
    read_by: ReadBy = ReadBy.SERIAL_STRIPE
    tier: CardTier = CardTier.STRIPE
    uid: str = field(default="", repr=False)
    sun_counter: int = -1  # SDMReadCtr decrypted from the SUN message; -1 when there is none
    sun: SunMessage | None = field(default=None, repr=False)
    # A swipe's track as read, sealed in memory for its one 0200 (card/sealed_track.py); never
    # journaled, never compared (a card is the same card with or without it)
    track: SealedTrack | None = field(default=None, repr=False, compare=False)

    @classmethod
    def from_uid(cls, uid: str, read_by: ReadBy = ReadBy.PN532) -> Card:
        """A UID-only NFC card (NTAG21x, MIFARE Classic, a wristband): tier uid_only."""
        return cls(pan="", expiry_yymm="", read_by=read_by, tier=CardTier.UID_ONLY, uid=uid.upper())

    @classmethod
    def from_sun(
        cls, uid: str, counter: int, message: SunMessage, read_by: ReadBy = ReadBy.PN532
    ) -> Card:
        """An NTAG 424 DNA whose SUN message decrypted to `uid` and `counter`: tier sun."""
        return cls(
            pan="",
            expiry_yymm="",
            read_by=read_by,
            tier=CardTier.SUN,
            uid=uid.upper(),
            sun_counter=counter,
            sun=message,
        )

    @property
    def is_nfc(self) -> bool:
        return self.tier is not CardTier.STRIPE

    @property
    def identity(self) -> str:
        """What makes two reads the same card (per-card limits, counters): PAN or 'uid:' UID."""
        return f"uid:{self.uid}" if self.is_nfc else self.pan

    @property
    def masked_pan(self) -> str:
        return mask_uid(self.uid) if self.is_nfc else mask_pan(self.pan)

    def __repr__(self) -> str:
        if self.is_nfc:
            return f"Card(uid={self.masked_pan!r}, tier={self.tier.value!r})"
        return f"Card(pan={self.masked_pan!r}, expiry_yymm={self.expiry_yymm!r})"

    __str__ = __repr__

    def is_expired(self, today_yymm: str) -> bool:
        """A card is valid through the last day of its expiry month."""
        return self.expiry_yymm < today_yymm

    def problem(self, today_yymm: str) -> str | None:
        """Why this card cannot be used, as the screen says it, or None when it can."""
        if self.is_nfc:
            if not uid_ok(self.uid):
                return "CARD READ ERROR"
            if self.tier is CardTier.SUN and (self.sun is None or self.sun_counter < 0):
                return "CARD READ ERROR"
            return None
        if not luhn_ok(self.pan) or not 12 <= len(self.pan) <= 19:
            return "INVALID CARD"
        if not _valid_yymm(self.expiry_yymm):
            return "CARD READ ERROR"
        if self.is_expired(today_yymm):
            return "EXPIRED CARD"
        return None


def _valid_yymm(yymm: str) -> bool:
    return len(yymm) == 4 and yymm.isdigit() and 1 <= int(yymm[2:]) <= 12
