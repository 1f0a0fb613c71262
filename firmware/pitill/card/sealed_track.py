"""A swipe's track data as read, sealed in memory for the one 0200 that carries it (field 35/45).

Full track data is sensitive authentication data (PCI DSS 3.3.1): never stored after the
authorization, not even encrypted. So it is never sealed with the journal's key nor written
anywhere: it lives only in this object, encrypted under a key made at process start and held
only in memory, and `take()` hands it out once, to the 0200 being built, and forgets it; a sale
decided without a 0200 (offline, refused) drops it when its outcome is journaled (app.py).

What this protects against: the track showing up by accident (a repr in a log, a traceback's
locals, a Card copied into an event or a report, a pickle). What it does not: someone who can
read the process's memory also finds the key there (a Pi has no secure element), and Python
cannot wipe the short-lived strings of the one message that goes out (docs/iso8583.md).
"""

from __future__ import annotations

import os

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_NONCE_SIZE_BYTES = 12
_AEAD = AESGCM(AESGCM.generate_key(bit_length=256))  # this process only, never written


class SealedTrack:
    """One track's data between its sentinels (track 2: PAN=YYMMSVC...; track 1: B...^...^...).

    Equal to every other SealedTrack and hashed alike, so a Card compares by its identity only.
    """

    __slots__ = ("_sealed", "track")

    def __init__(self, track: int, data: str) -> None:
        if track not in (1, 2):
            raise ValueError(f"a swipe has track 1 or track 2, got {track}")
        self.track = track
        nonce = os.urandom(_NONCE_SIZE_BYTES)
        aad = bytes([track])
        self._sealed: bytes | None = nonce + _AEAD.encrypt(nonce, data.encode("ascii"), aad)

    def take(self) -> str | None:
        """The track data, once; None when it was taken already (or dropped)."""
        sealed, self._sealed = self._sealed, None
        if sealed is None:
            return None
        nonce, body = sealed[:_NONCE_SIZE_BYTES], sealed[_NONCE_SIZE_BYTES:]
        return _AEAD.decrypt(nonce, body, bytes([self.track])).decode("ascii")

    def drop(self) -> None:
        """Forget the track without reading it (the sale ended before a 0200 went out)."""
        self._sealed = None

    @property
    def held(self) -> bool:
        return self._sealed is not None

    def __repr__(self) -> str:
        return f"SealedTrack(track={self.track}, held={self.held})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SealedTrack)

    def __hash__(self) -> int:
        return 0

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("track data is never serialized (PCI DSS 3.3.1)")

    def __copy__(self) -> SealedTrack:
        return self  # one track, one take: a copied Card shares it

    def __deepcopy__(self, memo: object) -> SealedTrack:
        return self
