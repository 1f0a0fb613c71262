"""Message framing on the upstream TCP stream: a 2-byte big-endian length, then the message.

Bounded both ways: a frame longer than max_len is refused before a byte of it is buffered, so a
confused or hostile peer cannot make the terminal allocate much.
"""

from __future__ import annotations

import asyncio
import struct

from pitill.errors import ProtocolError

MAX_FRAME = 4096  # our messages are a few hundred bytes; the prefix could say up to 65535
_PREFIX = struct.Struct(">H")


async def read_frame(reader: asyncio.StreamReader, max_len: int = MAX_FRAME) -> bytes | None:
    """The next frame's payload, or None when the peer closed cleanly between frames.

    A zero or too-long length, or a close in the middle of a frame, raises ProtocolError: the
    stream cannot be trusted after that and should be closed.
    """
    try:
        prefix = await reader.readexactly(_PREFIX.size)
    except asyncio.IncompleteReadError as exc:
        if not exc.partial:
            return None
        raise ProtocolError("connection closed inside a frame's length prefix") from None
    (length,) = _PREFIX.unpack(prefix)
    if not 1 <= length <= max_len:
        raise ProtocolError(f"frame length {length} is outside 1..{max_len}; closing the stream")
    try:
        return await reader.readexactly(length)
    except asyncio.IncompleteReadError as exc:
        raise ProtocolError(
            f"connection closed after {len(exc.partial)} of {length} frame bytes"
        ) from None


def frame(payload: bytes, max_len: int = MAX_FRAME) -> bytes:
    """The payload with its length prefix."""
    limit = min(max_len, 0xFFFF)  # what two bytes can say
    if not 1 <= len(payload) <= limit:
        raise ProtocolError(f"payload of {len(payload)} bytes cannot be framed (1..{limit})")
    return _PREFIX.pack(len(payload)) + payload


async def write_frame(
    writer: asyncio.StreamWriter, payload: bytes, max_len: int = MAX_FRAME
) -> None:
    """Send one frame and wait until the transport's buffer has drained."""
    writer.write(frame(payload, max_len))
    await writer.drain()
