"""One home for a stored secret (the supervisor PIN, an operator's password): scrypt, memory-hard,
with a fresh 16-byte salt and its parameters kept beside it, `scrypt$N$r$p$salt_hex$hash_hex`,
so a cost raised later needs no migration. Checking compares in constant time."""

from __future__ import annotations

import hashlib
import hmac
import secrets

SCRYPT_R = 8
SCRYPT_P = 1
SALT_BYTES = 16
HASH_BYTES = 32
_SCRYPT_MAXMEM = 64 * 1024 * 1024  # room for N=2**15, r=8 (32 MiB)


def hash_secret(secret: str, n: int, salt: bytes | None = None) -> str:
    """The stored form of `secret`: scrypt with cost `n` (a power of 2) and a random salt."""
    salt = salt if salt is not None else secrets.token_bytes(SALT_BYTES)
    digest = _scrypt(secret, salt, n, SCRYPT_R, SCRYPT_P)
    return f"scrypt${n}${SCRYPT_R}${SCRYPT_P}${salt.hex()}${digest.hex()}"


def secret_matches(secret: str, stored: str) -> bool:
    """Whether `secret` hashes to `stored` (constant time). A malformed record: False."""
    try:
        scheme, n, r, p, salt_hex, digest_hex = stored.split("$")
        if scheme != "scrypt":
            return False
        digest = _scrypt(secret, bytes.fromhex(salt_hex), int(n), int(r), int(p))
    except ValueError:
        return False
    return hmac.compare_digest(digest, bytes.fromhex(digest_hex))


def _scrypt(secret: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        secret.encode(), salt=salt, n=n, r=r, p=p, maxmem=_SCRYPT_MAXMEM, dklen=HASH_BYTES
    )
