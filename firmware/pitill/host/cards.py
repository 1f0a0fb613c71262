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
from pathlib import Path

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


# --- the program's NTAG 424 DNA keys (card/sun.py) ------------------------------------------

SUN_META_KEY_NAME = "sun-meta.key"  # the SDM meta read key: terminals hold a copy too
SUN_MASTER_KEY_NAME = "sun-master.key"  # the master key of the per-card keys: host only


@dataclass(frozen=True)
class SunKeys:
    """What the host needs to check a SUN tap: decrypt it (meta read key) and verify its SDMMAC
    with the card's key diversified from the master key."""

    meta_key: bytes
    master_key: bytes


def _read_key(path: Path) -> bytes:
    try:
        key = bytes.fromhex(path.read_text(encoding="ascii").strip())
    except (UnicodeDecodeError, ValueError):
        key = b""
    if len(key) != 16:
        raise ConfigError(
            f"{path}: not an AES-128 key (32 hex digits); restore it, or remove both "
            f"{SUN_META_KEY_NAME} and {SUN_MASTER_KEY_NAME} to accept no SUN cards"
        )
    return key


def load_sun_keys(data_dir: Path) -> SunKeys | None:
    """The program's SUN keys from the data directory, or None when it has none (SUN taps are
    then refused: `pitill host sun-keys init` makes them)."""
    meta, master = data_dir / SUN_META_KEY_NAME, data_dir / SUN_MASTER_KEY_NAME
    if not meta.exists() and not master.exists():
        return None
    for path in (meta, master):
        if not path.exists():
            raise ConfigError(f"{path}: missing while its pair is there; restore it from backup")
    return SunKeys(_read_key(meta), _read_key(master))


def write_sun_keys(data_dir: Path, keys: SunKeys) -> None:
    """Write both key files (0600, 32 hex digits each); never over existing ones."""
    for name in (SUN_META_KEY_NAME, SUN_MASTER_KEY_NAME):
        if (data_dir / name).exists():
            raise ConfigError(
                f"{data_dir / name}: exists already; the program's cards are keyed to it, keep it"
            )
    for name, key in ((SUN_META_KEY_NAME, keys.meta_key), (SUN_MASTER_KEY_NAME, keys.master_key)):
        path = data_dir / name
        try:
            with path.open("x", encoding="ascii") as out:
                path.chmod(0o600)
                out.write(key.hex().upper() + "\n")
        except FileExistsError:
            raise ConfigError(
                f"{path}: exists already; the program's cards are keyed to it, keep it"
            ) from None
