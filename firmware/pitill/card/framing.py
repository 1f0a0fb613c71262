"""The card reader's wire protocols, sans-IO: bytes in, frames and the replies to send back out.

Framed protocol (what pitill's reader and its emulator speak)::

    STX 0x02 | track data, ASCII | ETX 0x03 | LRC

The LRC is the XOR of the data bytes and the ETX; the STX is left out. That is the usual choice
for STX/ETX serial protocols (the sender starts its running XOR once the STX is out, and the
receiver can check it as bytes arrive), and it makes an empty frame's LRC equal to ETX. The terminal
answers ACK 0x06 to a good frame and NAK 0x15 to one with a bad LRC; the reader then sends it
again. The LRC byte may take any value, STX and ETX included, so the decoder knows it by position.

Lines protocol (many off-the-shelf magstripe readers): the track text ends in CR, LF or CRLF; there
is no framing, no check and no reply.

Both decoders keep memory bounded (a frame or line longer than `max_data_len` is dropped), never
raise on bad input, drop garbage and count it, and resynchronise on the next STX (or line end).
Feeding a stream in any split gives the same results as feeding it at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum, StrEnum
from functools import reduce
from typing import Protocol

STX = 0x02
ETX = 0x03
ACK = 0x06
NAK = 0x15
ACK_BYTES = bytes([ACK])
NAK_BYTES = bytes([NAK])

DEFAULT_MAX_DATA_LEN = 256  # tracks 1 + 2 + 3 on one swipe are 79 + 40 + 107 characters
_LINE_ENDS = frozenset(b"\r\n")


def frame_lrc(data: bytes) -> int:
    """XOR of the data bytes and the ETX (the STX is not included)."""
    return reduce(int.__xor__, data, ETX)


def encode_frame(data: bytes) -> bytes:
    """STX data ETX LRC; data must not contain STX or ETX (track data is printable ASCII)."""
    if STX in data or ETX in data:
        raise ValueError("frame data must not contain STX (0x02) or ETX (0x03)")
    return bytes([STX]) + data + bytes([ETX, frame_lrc(data)])


class RejectReason(StrEnum):
    BAD_LRC = "bad LRC"  # answered with NAK: the reader sends the frame again
    TOO_LONG = "too long"  # more than max_data_len data bytes: dropped
    TORN = "torn"  # a new STX before the ETX: the partial frame is dropped


@dataclass(frozen=True)
class DecodedFrame:
    """A good frame (or line): its data, and the reply to send back (ACK, or nothing for lines).

    repr() shows the length only: the data is a track, with a full PAN in it.
    """

    data: bytes = field(repr=False)
    reply: bytes

    def __repr__(self) -> str:
        return f"DecodedFrame(<{len(self.data)} bytes>, reply={self.reply!r})"


@dataclass(frozen=True)
class FrameRejected:
    """A frame (or line) that was dropped; reply is NAK for a bad LRC and empty otherwise."""

    reason: RejectReason
    reply: bytes
    size: int  # bytes of the stream it took up


Result = DecodedFrame | FrameRejected


class Decoder(Protocol):
    """What the serial reader needs from either protocol."""

    @property
    def bytes_dropped(self) -> int: ...

    def feed(self, data: bytes) -> list[Result]: ...

    def reset(self) -> None: ...


class _State(Enum):
    HUNT = "hunt"  # dropping bytes until an STX
    DATA = "data"  # collecting data until ETX
    LRC = "lrc"  # the next byte is the LRC


class FrameDecoder:
    """Decode STX/ETX/LRC frames from a byte stream.

    Every fed byte ends up in exactly one of: a good frame, a bad-LRC frame, `bytes_dropped`, or
    `pending` (the frame in progress, at most max_data_len + 2 bytes).
    """

    def __init__(self, max_data_len: int = DEFAULT_MAX_DATA_LEN) -> None:
        if max_data_len < 1:
            raise ValueError(f"max_data_len must be >= 1, got {max_data_len}")
        self.max_data_len = max_data_len
        self.frames_ok = 0
        self.frames_bad_lrc = 0
        self.frames_too_long = 0
        self.frames_torn = 0
        self.bytes_dropped = 0
        self._state = _State.HUNT
        self._data = bytearray()
        self._lrc = ETX

    @property
    def pending(self) -> int:
        """Bytes of the frame in progress (STX, data, and the ETX once seen)."""
        if self._state is _State.HUNT:
            return 0
        return 1 + len(self._data) + (self._state is _State.LRC)

    def reset(self) -> None:
        """Forget the frame in progress (the port was reopened); its bytes count as dropped."""
        self.bytes_dropped += self.pending
        self._state = _State.HUNT
        self._data.clear()

    def feed(self, data: bytes) -> list[Result]:
        results: list[Result] = []
        for byte in data:
            result = self._step(byte)
            if result is not None:
                results.append(result)
        return results

    def _step(self, byte: int) -> Result | None:
        if self._state is _State.HUNT:
            if byte == STX:
                self._start()
            else:
                self.bytes_dropped += 1
            return None
        if self._state is _State.DATA:
            return self._step_data(byte)
        return self._step_lrc(byte)

    def _step_data(self, byte: int) -> Result | None:
        if byte == ETX:
            self._state = _State.LRC
            return None
        if byte == STX:  # the sender gave up on that frame, or it was noise: start again here
            self.frames_torn += 1
            return self._drop(RejectReason.TORN, restart=True)
        if len(self._data) == self.max_data_len:
            self.frames_too_long += 1
            self.bytes_dropped += 1  # this byte too: the frame is abandoned with it
            return self._drop(RejectReason.TOO_LONG, restart=False, extra=1)
        self._data.append(byte)
        self._lrc ^= byte
        return None

    def _step_lrc(self, byte: int) -> Result | None:
        size = self.pending + 1
        if byte == self._lrc:
            frame = DecodedFrame(bytes(self._data), ACK_BYTES)
            self.frames_ok += 1
            self._state = _State.HUNT
            self._data.clear()
            return frame
        if byte == STX:
            # More likely noise that looked like a frame end, followed by a real frame, than an
            # LRC corrupted into exactly STX: keep the new frame and do not NAK the noise.
            self.frames_torn += 1
            return self._drop(RejectReason.TORN, restart=True)
        self.frames_bad_lrc += 1
        self._state = _State.HUNT
        self._data.clear()
        return FrameRejected(RejectReason.BAD_LRC, NAK_BYTES, size)

    def _drop(self, reason: RejectReason, restart: bool, extra: int = 0) -> FrameRejected:
        size = self.pending
        self.bytes_dropped += size
        if restart:
            self._start()
        else:
            self._state = _State.HUNT
            self._data.clear()
        return FrameRejected(reason, b"", size + extra)

    def _start(self) -> None:
        self._state = _State.DATA
        self._data.clear()
        self._lrc = ETX


class LineDecoder:
    """Decode track lines ending in CR, LF or CRLF; no framing, no replies.

    Bytes before the first start sentinel of a line (noise, a reader's prefix) are dropped and
    counted, and so is a line with no start sentinel at all; empty lines are skipped. A line longer
    than max_data_len is dropped whole, up to its line end.
    """

    def __init__(
        self, max_data_len: int = DEFAULT_MAX_DATA_LEN, start_sentinels: bytes = b"%;"
    ) -> None:
        if max_data_len < 1:
            raise ValueError(f"max_data_len must be >= 1, got {max_data_len}")
        self.max_data_len = max_data_len
        self.start_sentinels = frozenset(start_sentinels)
        self.lines_ok = 0
        self.lines_too_long = 0
        self.bytes_dropped = 0
        self._line = bytearray()
        self._overflowed = 0  # bytes of an over-long line dropped so far

    @property
    def pending(self) -> int:
        return len(self._line)

    def reset(self) -> None:
        self.bytes_dropped += len(self._line)
        self._line.clear()
        self._overflowed = 0

    def feed(self, data: bytes) -> list[Result]:
        results: list[Result] = []
        for byte in data:
            if byte in _LINE_ENDS:
                result = self._end_line()
                self.bytes_dropped += 1  # the terminator itself carries nothing
                if result is not None:
                    results.append(result)
            elif self._overflowed:
                self._overflowed += 1
                self.bytes_dropped += 1
            elif not self._line and byte not in self.start_sentinels:
                self.bytes_dropped += 1  # noise before the track starts
            elif len(self._line) == self.max_data_len:
                self._overflowed = len(self._line) + 1
                self.bytes_dropped += self._overflowed
                self._line.clear()
            else:
                self._line.append(byte)
        return results

    def _end_line(self) -> Result | None:
        if self._overflowed:
            size, self._overflowed = self._overflowed, 0
            self.lines_too_long += 1
            return FrameRejected(RejectReason.TOO_LONG, b"", size)
        if not self._line:
            return None
        line = bytes(self._line)
        self._line.clear()
        self.lines_ok += 1
        return DecodedFrame(line, b"")
