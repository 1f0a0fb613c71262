"""What identifies a program's card on the host: a PAN (a closed-loop stripe card) or an NFC
tag's UID (`uid:04A1B2C3D4E5F6`), written as the operator types it.

The host stores no card number it does not need: an account is found by a keyed hash of the
card (HMAC-SHA256 with the host's secret key, so a stolen database does not list the cards), and
shows at most the first 6 and last 4 digits.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass

from pitill.card.model import luhn_ok, mask_pan
from pitill.errors import ConfigError

_UID = re.compile(r"^uid:([0-9A-Fa-f]{8}|[0-9A-Fa-f]{14}|[0-9A-Fa-f]{20})$")


@dataclass(frozen=True)
class CardRef:
    """A card as the program knows it: its canonical text and what may be shown of it."""

    canonical: str  # "pan:4111..." or "uid:04A1B2..."
    shown: str  # "411111******1111" or "uid:04A1B2C3D4E5F6"

    def key(self, secret: bytes) -> str:
        """The account's lookup key: a keyed hash, never the card number itself."""
        return hmac.new(secret, self.canonical.encode(), hashlib.sha256).hexdigest()


def parse_card(text: str) -> CardRef:
    """CARD as given on the command line or read from a message: a PAN or uid:HEX."""
    raw = text.strip().replace(" ", "")
    if raw.lower().startswith("uid:"):
        match = _UID.match(raw)
        if match is None:
            raise ConfigError(
                f"card {text!r}: a tag's UID is uid: and 4, 7 or 10 bytes in hex, "
                "e.g. uid:04A1B2C3D4E5F6"
            )
        uid = match.group(1).upper()
        return CardRef(f"uid:{uid}", f"uid:{uid}")
    if not raw.isdigit() or not 12 <= len(raw) <= 19:
        raise ConfigError(
            f"card {mask_pan(raw) if raw.isdigit() else text!r}: not a card number (12-19 "
            "digits) nor uid:HEX"
        )
    if not luhn_ok(raw):
        raise ConfigError(f"card {mask_pan(raw)}: the check digit is wrong (Luhn); retype it")
    return CardRef(f"pan:{raw}", mask_pan(raw))
