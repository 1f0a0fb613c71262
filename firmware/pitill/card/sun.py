"""NTAG 424 DNA Secure Unique NFC (SUN, Secure Dynamic Messaging): make, decrypt and verify.

On every read an NTAG 424 DNA mirrors into its NDEF data (NXP NT4H2421Gx, AN12196):

- PICCData, 16 bytes: AES-128-CBC (IV zero) under the SDMMetaReadKey of
  ``PICCDataTag (0xC7: UID and counter mirrored, UID 7 bytes) || UID || SDMReadCtr (3 bytes, LSB
  first) || 5 random bytes``;
- SDMMAC, 8 bytes: a session key ``CMAC(SDMFileReadKey, 3CC3 0001 0080 || UID || SDMReadCtr)``
  (SV2), then the CMAC under it of the mirrored data between SDMMACInputOffset and SDMMACOffset
  (empty here), truncated to its bytes 1, 3, 5 ... 15 (MACt).

The keys of a pitill program (the Bolt Card layout): the SDMMetaReadKey is one key for the whole
program, so a terminal can decrypt UID and counter and refuse a replayed counter offline; the
SDMFileReadKey is diversified per card from the program master key (AN10922, AES-128), so only the
host, which holds the master key, can check the SDMMAC. A terminal never holds the master key.

Pure functions over bytes: no I/O, no clock; the random padding of a new message is an argument.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.cmac import CMAC

from pitill.card.model import PICC_DATA_BYTES, SDMMAC_BYTES, CardTier, SunMessage, uid_ok
from pitill.errors import SunError

KEY_BYTES = 16
PICC_DATA_TAG_UID7 = 0xC7  # bit 7: UID mirrored, bit 6: SDMReadCtr mirrored, bits 3..0: UID length
COUNTER_MAX = 0xFFFFFF  # SDMReadCtr is 3 bytes; the tag refuses to read past it
_SV2_PREFIX = bytes.fromhex("3CC300010080")
_RB_128 = 0x87  # the constant of CMAC subkey generation (NIST SP 800-38B) for 128-bit blocks
_DIV_CONSTANT_AES128 = 0x01  # AN10922: diversification of an AES-128 key
# pitill's diversification input after the UID: its "system identifier" (AN10922 lets a program
# choose one; it keeps keys of this program apart from keys another system derives from a UID).
SYSTEM_IDENTIFIER = b"pitill-sun"
# The sandbox program's keys: public constants for the simulator's virtual cards, tests and demos
# (`pitill sim`, `pitill host sun-keys init --sandbox`); a real program makes its own.
SANDBOX_META_KEY = hashlib.sha256(b"pitill sandbox program: SDM meta read key").digest()[:16]
SANDBOX_MASTER_KEY = hashlib.sha256(b"pitill sandbox program: master key").digest()[:16]


@dataclass(frozen=True)
class PiccData:
    """What a SUN message says once decrypted: the tag's UID and its read counter."""

    uid: bytes
    counter: int


def _check_key(key: bytes, name: str) -> None:
    if len(key) != KEY_BYTES:
        raise SunError(f"{name} must be {KEY_BYTES} bytes (AES-128), got {len(key)}")


def aes_cmac(key: bytes, data: bytes) -> bytes:
    """AES-CMAC (NIST SP 800-38B), the full 16 bytes."""
    _check_key(key, "the CMAC key")
    mac = CMAC(algorithms.AES(key))
    mac.update(data)
    return mac.finalize()


def _ecb_block(key: bytes, block: bytes) -> bytes:
    encryptor = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    return encryptor.update(block) + encryptor.finalize()


def _shift1(block: bytes) -> bytes:
    value = (int.from_bytes(block, "big") << 1) & ((1 << 128) - 1)
    if block[0] & 0x80:
        value ^= _RB_128
    return value.to_bytes(16, "big")


def diversify_key(master_key: bytes, diversification_input: bytes) -> bytes:
    """AN10922 AES-128 key diversification of `master_key` with input M (1..31 bytes).

    D = 0x01 || M, padded with 80 00.. to 32 bytes when shorter; its last block is XORed with
    the CMAC subkey K2 when padded (K1 when not); the key is the last block of AES-CBC (IV zero).
    A plain CMAC pads to 16 bytes, not 32, so it differs for inputs under 16 bytes: done by hand.
    """
    _check_key(master_key, "the master key")
    if not 1 <= len(diversification_input) <= 31:
        raise SunError(
            f"AN10922 diversification input must be 1..31 bytes, got {len(diversification_input)}"
        )
    k1 = _shift1(_ecb_block(master_key, bytes(16)))
    k2 = _shift1(k1)
    data = bytes([_DIV_CONSTANT_AES128]) + diversification_input
    subkey = k1
    if len(data) < 32:
        data = (data + b"\x80").ljust(32, b"\x00")
        subkey = k2
    last = bytes(a ^ b for a, b in zip(data[16:], subkey, strict=True))
    encryptor = Cipher(algorithms.AES(master_key), modes.CBC(bytes(16))).encryptor()
    out = encryptor.update(data[:16] + last) + encryptor.finalize()
    return out[16:]


def card_file_key(master_key: bytes, uid: bytes) -> bytes:
    """The per-card SDMFileReadKey of a pitill program: AN10922 over UID || system identifier."""
    return diversify_key(master_key, uid + SYSTEM_IDENTIFIER)


def _cbc(key: bytes, data: bytes, *, decrypt: bool) -> bytes:
    cipher = Cipher(algorithms.AES(key), modes.CBC(bytes(16)))
    context = cipher.decryptor() if decrypt else cipher.encryptor()
    return context.update(data) + context.finalize()


def card_app_key(master_key: bytes, uid: bytes) -> bytes:
    """Key 0 (the application master key) of a pitill card, set by `pitill card enroll` so that
    no one without the program's master key can change the card's keys or its SDM settings."""
    return diversify_key(master_key, uid + SYSTEM_IDENTIFIER + b"-app")


def decrypt_picc_data(meta_key: bytes, picc_data: bytes) -> PiccData:
    """UID and counter from encrypted PICCData; SunError when it is not a pitill SUN block."""
    _check_key(meta_key, "the SDM meta read key")
    if len(picc_data) != PICC_DATA_BYTES:
        raise SunError(f"PICCData must be {PICC_DATA_BYTES} bytes, got {len(picc_data)}")
    plain = _cbc(meta_key, picc_data, decrypt=True)
    if plain[0] != PICC_DATA_TAG_UID7:
        raise SunError(
            f"PICCData tag is {plain[0]:#04x}, expected {PICC_DATA_TAG_UID7:#04x} (UID and "
            "counter mirrored, 7-byte UID): a wrong meta read key, or not a SUN message"
        )
    return PiccData(uid=plain[1:8], counter=int.from_bytes(plain[8:11], "little"))


def session_mac_key(file_key: bytes, uid: bytes, counter: int) -> bytes:
    """KSesSDMFileReadMAC: CMAC of SV2 under the card's SDMFileReadKey."""
    if len(uid) != 7 or not 0 <= counter <= COUNTER_MAX:
        raise SunError(f"SV2 needs a 7-byte UID and a counter 0..{COUNTER_MAX}")
    return aes_cmac(file_key, _SV2_PREFIX + uid + counter.to_bytes(3, "little"))


def sdmmac(file_key: bytes, uid: bytes, counter: int, mac_input: bytes = b"") -> bytes:
    """The 8-byte SDMMAC (MACt: the odd-numbered bytes of the CMAC) over `mac_input`."""
    return aes_cmac(session_mac_key(file_key, uid, counter), mac_input)[1::2]


def make_sun(
    meta_key: bytes, file_key: bytes, uid: bytes, counter: int, padding: bytes
) -> SunMessage:
    """The SUN message a tag with these keys mirrors at `counter` (padding: 5 random bytes)."""
    _check_key(meta_key, "the SDM meta read key")
    if len(uid) != 7 or len(padding) != 5 or not 0 <= counter <= COUNTER_MAX:
        raise SunError("a SUN message needs a 7-byte UID, a 3-byte counter and 5 padding bytes")
    plain = bytes([PICC_DATA_TAG_UID7]) + uid + counter.to_bytes(3, "little") + padding
    return SunMessage(_cbc(meta_key, plain, decrypt=False), sdmmac(file_key, uid, counter))


def verify_sun(meta_key: bytes, master_key: bytes, message: SunMessage) -> PiccData:
    """The host's check: decrypt, derive the card's key, compare the SDMMAC in constant time."""
    picc = decrypt_picc_data(meta_key, message.picc_data)
    expected = sdmmac(card_file_key(master_key, picc.uid), picc.uid, picc.counter)
    if len(message.sdmmac) != SDMMAC_BYTES or not hmac.compare_digest(expected, message.sdmmac):
        raise SunError(
            f"SDMMAC of the tap of card {picc.uid.hex().upper()} at counter {picc.counter} does "
            "not match: a forged or altered SUN message (or another program's card)"
        )
    return picc


@dataclass(frozen=True)
class NfcTap:
    """An NFC card as a host knows it after checking field 48: its UID (upper-case hex) and,
    for a SUN tap, the read counter it proved (None for a UID-only card)."""

    uid: str
    counter: int | None


def check_nfc_card_data(card_data: str, meta_key: bytes, master_key: bytes) -> NfcTap:
    """A host's check of field 48 (upstream/messages.py nfc_card_data): `uid_only:UID`, or
    `sun:PICCDATA:SDMMAC` decrypted and its SDMMAC verified (verify_sun). SunError for a SUN tap
    that is not genuine (garbled, forged, another program's card); ValueError for anything else
    (an unknown tier, a malformed UID). Whether the counter is fresh is the caller's rule."""
    tier, _, data = card_data.partition(":")
    if tier == CardTier.UID_ONLY.value:
        if not uid_ok(data):
            raise ValueError(f"field 48 {card_data!r}: not a UID (4, 7 or 10 bytes in hex)")
        return NfcTap(data, None)
    if tier != CardTier.SUN.value:
        raise ValueError(f"field 48 {card_data[:20]!r}: neither uid_only: nor sun:")
    try:
        message = SunMessage.from_hex(data)
    except ValueError as exc:
        raise SunError(str(exc)) from None
    picc = verify_sun(meta_key, master_key, message)
    return NfcTap(picc.uid.hex().upper(), picc.counter)


def counter_is_fresh(last_seen: int | None, counter: int) -> bool:
    """A SUN counter must only go up per card: equal or lower is a replay (a clone, a copy)."""
    return last_seen is None or counter > last_seen


# The URL a pitill card mirrors (NDEF URI record): the SDM offsets point into its two parameters.
SUN_URL_BASE = "https://pitill.invalid/sun"


def sun_url(message: SunMessage, base: str = SUN_URL_BASE) -> str:
    """The tag's NDEF URL with this SUN message mirrored into it, as an NTAG 424 DNA sends it."""
    return f"{base}?picc_data={message.picc_data.hex().upper()}&cmac={message.sdmmac.hex().upper()}"


def sun_from_url(url: str) -> SunMessage | None:
    """The SUN message in a tag's URL (picc_data= and cmac=), or None when it carries none."""
    _, _, query = url.partition("?")
    fields = dict(part.partition("=")[::2] for part in query.split("&") if part)
    picc, mac = fields.get("picc_data"), fields.get("cmac")
    if picc is None or mac is None:
        return None
    try:
        return SunMessage(bytes.fromhex(picc), bytes.fromhex(mac))
    except ValueError:
        return None


def sun_template(base: str = SUN_URL_BASE) -> tuple[bytes, int, int]:
    """(the NDEF file a pitill card is written with, the PICCData offset, the SDMMAC offset).

    The file is NLEN (2 bytes) and one short URI record whose URL holds zeros where the tag
    mirrors PICCData and SDMMAC in hex on every read; offsets count from the file's first byte.
    """
    url = sun_url(SunMessage(bytes(PICC_DATA_BYTES), bytes(SDMMAC_BYTES)), base)
    body = url.removeprefix("https://").encode("ascii")
    payload = b"\x04" + body  # URI identifier code 04: "https://"
    record = bytes((0xD1, 0x01, len(payload))) + b"U" + payload
    file = len(record).to_bytes(2, "big") + record
    picc = file.index(b"picc_data=") + len("picc_data=")
    mac = file.index(b"cmac=") + len("cmac=")
    return file, picc, mac
