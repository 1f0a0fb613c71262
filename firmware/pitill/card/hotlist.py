"""How a closed-loop program names a card on its hotlist, without its number.

An entry is the first 8 bytes (16 hex digits) of HMAC-SHA256 under the program's hotlist key,
over the card as the program writes it: `pan:` and the PAN for a stripe card, `uid:` and the
UID in capitals for an NFC tag (host/cards.py writes cards the same way). The host derives the
key from its secret and sends it with the list (over the enrolled terminal's TLS), so every
terminal of the program computes the same entry for a card and stores no card number: a copy
of the list without the key names no card, and the PAN-space search a bare hash allows (a BIN,
a Luhn digit, about 10^9 tries) needs the key. 64 bits make a false match between two cards of
a program of a million cards about 1 in 10^13.
"""

from __future__ import annotations

import hashlib
import hmac

from pitill.card.model import Card

FINGERPRINT_BYTES = 8
KEY_BYTES = 32


def program_card(card: Card) -> str:
    """The card as the program's host writes it (host/cards.py CardRef.canonical)."""
    return card.identity if card.is_nfc else f"pan:{card.pan}"


def hotlist_entry(key: bytes, program_text: str) -> str:
    """The hotlist entry of a card written as program_card() writes it."""
    digest = hmac.new(key, program_text.encode(), hashlib.sha256).digest()
    return digest[:FINGERPRINT_BYTES].hex()
