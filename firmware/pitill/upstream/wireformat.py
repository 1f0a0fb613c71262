"""How ISO 8583 messages look on the wire, where hosts differ: the bitmap and the length prefix.

[upstream] bitmap and length_prefix choose them; `pitill acquirer` and `pitill host serve` take the
same two options, so a sandbox speaks what the terminal under test is set to. The defaults are
the most common pairing for ISO 8583:1987 ASCII: a 16-character hex bitmap, and a 2-byte binary
big-endian length before each message (docs/iso8583.md lists what else is common).

- bitmap "ascii": each bitmap as 16 hex characters; "binary": as 8 bytes (pyiso8583's "b"
  encoding of fields p and 1; every other field stays ASCII).
- length_prefix "2-byte-binary": unsigned 16-bit big-endian (jPOS NACChannel, PostChannel);
  "4-digit-ascii": four decimal digits, zero-filled (jPOS ASCIIChannel); "4-byte-binary":
  unsigned 32-bit big-endian (jPOS RawChannel). The length never counts the prefix itself.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass
from typing import Literal

from pitill.errors import ProtocolError

BitmapEncoding = Literal["ascii", "binary"]
LengthPrefix = Literal["2-byte-binary", "4-digit-ascii", "4-byte-binary"]
BITMAP_ENCODINGS: tuple[str, ...] = typing.get_args(BitmapEncoding)
LENGTH_PREFIXES: tuple[str, ...] = typing.get_args(LengthPrefix)

_PREFIX_SIZE = {"2-byte-binary": 2, "4-digit-ascii": 4, "4-byte-binary": 4}
_PREFIX_MAX = {"2-byte-binary": 0xFFFF, "4-digit-ascii": 9999, "4-byte-binary": 0xFFFF_FFFF}


@dataclass(frozen=True)
class WireFormat:
    bitmap: BitmapEncoding = "ascii"
    length_prefix: LengthPrefix = "2-byte-binary"

    def __post_init__(self) -> None:
        if self.bitmap not in BITMAP_ENCODINGS:
            raise ProtocolError(
                f"bitmap {self.bitmap!r} is unknown; use one of {', '.join(BITMAP_ENCODINGS)}"
            )
        if self.length_prefix not in LENGTH_PREFIXES:
            raise ProtocolError(
                f"length prefix {self.length_prefix!r} is unknown; use one of "
                f"{', '.join(LENGTH_PREFIXES)}"
            )

    @property
    def prefix_size(self) -> int:
        """Bytes of the length prefix."""
        return _PREFIX_SIZE[self.length_prefix]

    @property
    def max_length(self) -> int:
        """The longest message the prefix can announce."""
        return _PREFIX_MAX[self.length_prefix]

    def pack_length(self, length: int) -> bytes:
        if not 0 <= length <= self.max_length:
            raise ProtocolError(
                f"a {self.length_prefix} prefix cannot say {length} (0..{self.max_length})"
            )
        if self.length_prefix == "4-digit-ascii":
            return f"{length:04d}".encode("ascii")
        return length.to_bytes(self.prefix_size, "big")

    def unpack_length(self, prefix: bytes) -> int:
        """The length a prefix announces; ProtocolError for a 4-digit-ascii one not all digits."""
        if self.length_prefix == "4-digit-ascii":
            if not (len(prefix) == 4 and prefix.isdigit()):
                raise ProtocolError(
                    f"length prefix {prefix!r} is not 4 ASCII digits (length_prefix "
                    "4-digit-ascii); is the host set to the same length prefix?"
                )
            return int(prefix)
        return int.from_bytes(prefix, "big")

    def describe(self) -> str:
        return f"bitmap {self.bitmap}, length prefix {self.length_prefix}"


DEFAULT_WIRE = WireFormat()
