"""Sealing of the card data an offline sale needs upstream: PAN and expiry, under AES-256-GCM.

Only the PAN and the expiry are ever sealed: never CVV, PIN or a full track (PCI DSS 3.3.1).
Each seal uses a fresh random 96-bit nonce and binds the transaction's seq as associated data,
so a blob copied onto another row does not open.

The key is 32 random bytes in a file readable by its owner only. It is created at the first
seal (not at load), so a missing key file is never silently replaced while sealed data that
needs it still exists: the journal checks every sealed blob against the loaded key at open.

Blob layout: version (1 byte) | key id (8) | nonce (12) | ciphertext + GCM tag (16).
The key id (a hash of the key) lets a wrong key be told apart from altered data.

The same key also keys the card fingerprint: HMAC-SHA256 of the PAN under a key derived from
the seal key, so the journal can count one card's offline sales without keeping its PAN. A plain
hash would not do: there are few enough PANs that one could be found from its hash.

A Pi has no secure element: whoever can read the SD card as this user can read the key file
too. Sealing keeps PANs out of the database file, its WAL, backups and exports; it does not
protect against someone who holds the whole card.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import stat
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from pitill.card.model import Card, CardTier, ReadBy, SunMessage, uid_ok
from pitill.errors import SealError

KEY_FILE_NAME = "seal.key"
KEY_SIZE_BYTES = 32
NONCE_SIZE_BYTES = 12
TAG_SIZE_BYTES = 16
KEY_ID_SIZE_BYTES = 8
BLOB_VERSION = 1
_HEADER_SIZE_BYTES = 1 + KEY_ID_SIZE_BYTES + NONCE_SIZE_BYTES
_AAD_DOMAIN = b"pitill/sealed-card/v1\0"
_KEY_ID_DOMAIN = b"pitill/seal-key-id/v1\0"
_FINGERPRINT_DOMAIN = b"pitill/card-fingerprint/v1\0"
FINGERPRINT_SIZE_BYTES = 16  # 128 bits: no two cards of one terminal collide
# PAN (at most 19 digits) + "=" + YYMM, padded so the blob length does not reveal the PAN length.
_PLAINTEXT_SIZE = 24
# An NFC card: "N|tier|read_by|UID|counter|PICCDATA:SDMMAC", padded the same way.
_NFC_PLAINTEXT_SIZE = 96
_NFC_MARK = "N"


def key_id(key: bytes) -> bytes:
    """A short public fingerprint of a key: tells which key sealed a blob, reveals nothing of it."""
    return hashlib.sha256(_KEY_ID_DOMAIN + key).digest()[:KEY_ID_SIZE_BYTES]


def _aad(seq: int) -> bytes:
    return _AAD_DOMAIN + seq.to_bytes(8, "big")


class Sealer:
    """Seals and opens card data with the key in one key file.

    Use `Sealer.load_or_create(path)`; the key file is created (0600, exclusively) at the first
    `seal()` when it does not exist yet.
    """

    def __init__(self, path: Path, key: bytes | None) -> None:
        if key is not None and len(key) != KEY_SIZE_BYTES:
            raise SealError(f"a seal key is {KEY_SIZE_BYTES} bytes, got {len(key)}")
        self.path = path
        self._key = key
        self._aead = AESGCM(key) if key is not None else None
        self._fingerprint_key: tuple[bytes, bytes] | None = None  # (key, its fingerprint key)

    @classmethod
    def load_or_create(cls, path: Path) -> Sealer:
        """Load the key at `path`; when there is none, the first seal() creates it."""
        return cls(path, _read_key(path))

    @property
    def has_key(self) -> bool:
        return self._key is not None

    @property
    def key_id(self) -> str | None:
        """Hex fingerprint of the loaded key, or None before the key exists."""
        return key_id(self._key).hex() if self._key is not None else None

    def seal(self, seq: int, card: Card) -> bytes:
        """Encrypt the card's PAN and expiry for transaction `seq`; creates the key if needed.

        An NFC card's tier, reader, UID, counter and SUN message are sealed instead: the host
        needs the SUN message with the advice to verify the tap after the fact.
        """
        plaintext = _nfc_plaintext(seq, card) if card.is_nfc else _stripe_plaintext(seq, card)
        aead, key = self._ensure_key()
        nonce = os.urandom(NONCE_SIZE_BYTES)
        header = bytes([BLOB_VERSION]) + key_id(key) + nonce
        return header + aead.encrypt(nonce, plaintext, _aad(seq))

    def fingerprint(self, identity: str, *, create_key: bool = True) -> str | None:
        """The card's fingerprint (hex) from its identity (the PAN, or an NFC card's UID): the
        same for every read of this card on this terminal, useless without the key. None when
        there is no key yet and `create_key` is False (then no fingerprint was ever written, so
        there is nothing to match)."""
        if self._key is None and not create_key:
            return None
        _, key = self._ensure_key()
        if self._fingerprint_key is None or self._fingerprint_key[0] != key:  # once per key
            derived = hmac.new(key, _FINGERPRINT_DOMAIN, hashlib.sha256).digest()
            self._fingerprint_key = (key, derived)
        fingerprint_key = self._fingerprint_key[1]
        digest = hmac.new(fingerprint_key, identity.encode("utf-8"), hashlib.sha256).digest()
        return digest[:FINGERPRINT_SIZE_BYTES].hex()

    def check(self, seq: int, blob: bytes) -> None:
        """Raise SealError unless the loaded key is the one that sealed `blob` (no decryption)."""
        self._opener(seq, blob)

    def open(self, seq: int, blob: bytes) -> Card:
        """Decrypt the card data sealed for transaction `seq`."""
        aead = self._opener(seq, blob)
        nonce = blob[1 + KEY_ID_SIZE_BYTES : _HEADER_SIZE_BYTES]
        try:
            plaintext = aead.decrypt(nonce, blob[_HEADER_SIZE_BYTES:], _aad(seq))
        except InvalidTag:
            raise SealError(
                f"sealed card data of seq {seq} fails its integrity check: it was altered or "
                "belongs to another transaction. It cannot be forwarded; keep the journal file "
                "for investigation"
            ) from None
        text = plaintext.decode("ascii").rstrip(" ")
        if text.startswith(_NFC_MARK + "|"):
            return _nfc_card(seq, text)
        pan, _, expiry_yymm = text.partition("=")
        return Card(pan=pan, expiry_yymm=expiry_yymm)

    def _opener(self, seq: int, blob: bytes) -> AESGCM:
        if not isinstance(blob, bytes) or len(blob) <= _HEADER_SIZE_BYTES + TAG_SIZE_BYTES:
            raise SealError(f"sealed card data of seq {seq} is malformed; it cannot be forwarded")
        if blob[0] != BLOB_VERSION:
            raise SealError(
                f"sealed card data of seq {seq} is malformed (format version {blob[0]}, this "
                f"pitill reads {BLOB_VERSION}); it cannot be forwarded"
            )
        sealed_with = blob[1 : 1 + KEY_ID_SIZE_BYTES].hex()
        if self._aead is None:
            raise SealError(
                f"the seal key file {self.path} is missing, but seq {seq} holds card data "
                f"sealed with key {sealed_with}. Restore that file from your backup (do not "
                "create a new key): pending offline sales cannot be forwarded without it"
            )
        if sealed_with != self.key_id:
            raise SealError(
                f"wrong seal key: {self.path} holds key {self.key_id}, but seq {seq} was sealed "
                f"with key {sealed_with}. Put the original key file back at {self.path}"
            )
        return self._aead

    def _ensure_key(self) -> tuple[AESGCM, bytes]:
        if self._aead is None or self._key is None:
            self._key = _create_key(self.path)
            self._aead = AESGCM(self._key)
        return self._aead, self._key


def _stripe_plaintext(seq: int, card: Card) -> bytes:
    if not (card.pan.isdigit() and len(card.pan) <= 19):
        raise SealError(f"cannot seal card of seq {seq}: the PAN must be 1..19 digits")
    if not (card.expiry_yymm.isdigit() and len(card.expiry_yymm) == 4):
        raise SealError(f"cannot seal card of seq {seq}: expiry {card.expiry_yymm!r} is not YYMM")
    return f"{card.pan}={card.expiry_yymm}".ljust(_PLAINTEXT_SIZE).encode("ascii")


def _nfc_plaintext(seq: int, card: Card) -> bytes:
    if not uid_ok(card.uid):
        raise SealError(f"cannot seal card of seq {seq}: the UID is not 4, 7 or 10 bytes of hex")
    sun = card.sun.hex() if card.sun is not None else ""
    fields = (_NFC_MARK, card.tier.value, card.read_by.value, card.uid, str(card.sun_counter), sun)
    return "|".join(fields).ljust(_NFC_PLAINTEXT_SIZE).encode("ascii")


def _nfc_card(seq: int, text: str) -> Card:
    try:
        _, tier, read_by, uid, counter, sun = text.split("|")
        return Card(
            pan="",
            expiry_yymm="",
            read_by=ReadBy(read_by),
            tier=CardTier(tier),
            uid=uid,
            sun_counter=int(counter),
            sun=SunMessage.from_hex(sun) if sun else None,
        )
    except ValueError:
        raise SealError(
            f"sealed NFC card data of seq {seq} does not parse; it cannot be forwarded"
        ) from None


def _read_key(path: Path) -> bytes | None:
    """The key in `path`, or None when there is no file; refuses a file others can read."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise SealError(f"cannot read the seal key file {path}: {exc.strerror}") from exc
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise SealError(f"the seal key file {path} is not a regular file")
        if info.st_mode & 0o077:
            raise SealError(
                f"the seal key file {path} is readable by group or others (mode "
                f"{stat.S_IMODE(info.st_mode):04o}); run `chmod 600 {path}` and check who "
                "may have copied it"
            )
        key = os.read(fd, KEY_SIZE_BYTES + 1)
    finally:
        os.close(fd)
    if len(key) != KEY_SIZE_BYTES:
        raise SealError(
            f"the seal key file {path} holds {len(key)}{'+' if len(key) > KEY_SIZE_BYTES else ''}"
            f" bytes, a seal key is exactly {KEY_SIZE_BYTES}: restore the right file from backup"
        )
    return key


def _create_key(path: Path) -> bytes:
    """Write a new random key to `path`, owner-only, durably; never overwrites an existing file.

    The key goes to an exclusive temporary file first and is hard-linked into place, so a
    power cut leaves either no key file or a complete one, never a truncated key.
    """
    key = AESGCM.generate_key(bit_length=KEY_SIZE_BYTES * 8)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(
            tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600
        )
        try:
            os.fchmod(fd, 0o600)  # the umask can only narrow the mode; make it exact
            os.write(fd, key)
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)  # fails if a key appeared meanwhile: never replace a key
        except FileExistsError:
            existing = _read_key(path)
            assert existing is not None
            return existing
        finally:
            tmp.unlink(missing_ok=True)
        _fsync_dir(path.parent)
    except OSError as exc:
        raise SealError(
            f"cannot create the seal key file {path}: {exc.strerror}; check that the data "
            "directory is writable and has free space"
        ) from exc
    return key


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
