"""Message framing on the upstream TCP stream: a length prefix, then the message.

The prefix is [upstream] length_prefix (upstream/wireformat.py): 2-byte binary big-endian unless
a host wants 4 ASCII digits or 4 binary bytes. Bounded both ways: a frame longer than max_len
is refused before a byte of it is buffered, so a confused or hostile peer cannot make the
terminal allocate much.
"""

from __future__ import annotations

import asyncio

from pitill.errors import ProtocolError
from pitill.upstream.wireformat import DEFAULT_WIRE, WireFormat

MAX_FRAME = 4096  # our messages are a few hundred bytes; a prefix could say far more


async def read_frame(
    reader: asyncio.StreamReader, max_len: int = MAX_FRAME, wire: WireFormat = DEFAULT_WIRE
) -> bytes | None:
    """The next frame's payload, or None when the peer closed cleanly between frames.

    A zero or too-long length, or a close in the middle of a frame, raises ProtocolError: the
    stream cannot be trusted after that and should be closed.
    """
    try:
        prefix = await reader.readexactly(wire.prefix_size)
    except asyncio.IncompleteReadError as exc:
        if not exc.partial:
            return None
        raise ProtocolError("connection closed inside a frame's length prefix") from None
    length = wire.unpack_length(prefix)
    if not 1 <= length <= max_len:
        raise ProtocolError(f"frame length {length} is outside 1..{max_len}; closing the stream")
    try:
        return await reader.readexactly(length)
    except asyncio.IncompleteReadError as exc:
        raise ProtocolError(
            f"connection closed after {len(exc.partial)} of {length} frame bytes"
        ) from None


def frame(payload: bytes, max_len: int = MAX_FRAME, wire: WireFormat = DEFAULT_WIRE) -> bytes:
    """The payload with its length prefix."""
    limit = min(max_len, wire.max_length)  # what the prefix can say
    if not 1 <= len(payload) <= limit:
        raise ProtocolError(f"payload of {len(payload)} bytes cannot be framed (1..{limit})")
    return wire.pack_length(len(payload)) + payload


async def write_frame(
    writer: asyncio.StreamWriter,
    payload: bytes,
    max_len: int = MAX_FRAME,
    wire: WireFormat = DEFAULT_WIRE,
) -> None:
    """Send one frame and wait until the transport's buffer has drained."""
    writer.write(frame(payload, max_len, wire))
    await writer.drain()
