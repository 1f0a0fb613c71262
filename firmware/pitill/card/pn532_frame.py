"""The PN532 host interface frame (NXP PN532 User Manual UM0701-02, section 6.2), sans-IO.

Normal information frame::

    00 | 00 FF | LEN | LCS | TFI | PD0 .. PDn | DCS | 00
    preamble, start code, LEN = bytes of TFI + PD (1..255), LEN + LCS = 0 (mod 256),
    TFI = D4 (host to PN532) or D5 (PN532 to host), TFI + PD0 + .. + PDn + DCS = 0 (mod 256)

Extended information frame (LEN > 255): ``00 00 FF FF FF LENM LENL LCS TFI PD.. DCS 00`` with
LENM + LENL + LCS = 0. ACK is ``00 00 FF 00 FF 00``, NACK ``00 00 FF FF 00 00``, and the
application-level error frame ``00 00 FF 01 FF 7F 81 00``.

`FrameReader.feed(bytes)` returns what the bytes completed, in order: frames, ACKs, NACKs and
rejections (a bad checksum, a bad postamble, an impossible length). It resynchronises on the
next start code and never holds more than one longest frame, so no input can make it grow or
crash. The emulator in the simulator and its tests build on it; nothing here does I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

PREAMBLE = b"\x00"
START_CODE = b"\x00\xff"
POSTAMBLE = b"\x00"
ACK = b"\x00\x00\xff\x00\xff\x00"
NACK = b"\x00\x00\xff\xff\x00\x00"
ERROR_FRAME = b"\x00\x00\xff\x01\xff\x7f\x81\x00"
TFI_HOST_TO_PN532 = 0xD4
TFI_PN532_TO_HOST = 0xD5
MAX_DATA_BYTES = 265  # the PN532's largest frame data (TFI + PD), extended frames included
_MAX_BUFFER = 2 + 3 + 3 + MAX_DATA_BYTES + 2  # start code, ext. LEN, LCS.., data, DCS, postamble


def checksum(data: bytes) -> int:
    """The byte that makes `data` plus itself sum to 0 modulo 256 (LCS, DCS)."""
    return -sum(data) & 0xFF


def encode_frame(tfi: int, payload: bytes) -> bytes:
    """One information frame (extended when TFI + payload exceed 255 bytes)."""
    body = bytes([tfi]) + payload
    if not 1 <= len(body) <= MAX_DATA_BYTES:
        raise ValueError(f"a PN532 frame carries 1..{MAX_DATA_BYTES} bytes, got {len(body)}")
    if len(body) <= 255:
        header = bytes([len(body), checksum(bytes([len(body)]))])
    else:
        length = len(body).to_bytes(2, "big")
        header = b"\xff\xff" + length + bytes([checksum(length)])
    return PREAMBLE + START_CODE + header + body + bytes([checksum(body)]) + POSTAMBLE


class Rejected(StrEnum):
    LENGTH_CHECKSUM = "length checksum"
    DATA_CHECKSUM = "data checksum"
    POSTAMBLE = "postamble"
    LENGTH = "length"


@dataclass(frozen=True)
class Frame:
    tfi: int
    payload: bytes  # PD0..PDn: the command code and its parameters


@dataclass(frozen=True)
class Ack:
    pass


@dataclass(frozen=True)
class Nack:
    pass


@dataclass(frozen=True)
class ErrorFrame:
    pass


@dataclass(frozen=True)
class Dropped:
    reason: Rejected


Result = Frame | Ack | Nack | ErrorFrame | Dropped


class FrameReader:
    """Bytes in, frames out; state is only the bytes of a frame not complete yet."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self.dropped = 0

    def feed(self, data: bytes) -> list[Result]:
        self._buffer += data
        results: list[Result] = []
        while True:
            result, used = self._next()
            if used == 0:
                break
            del self._buffer[:used]
            if result is not None:
                if isinstance(result, Dropped):
                    self.dropped += 1
                results.append(result)
        if len(self._buffer) > _MAX_BUFFER:  # cannot happen for a well-formed stream
            del self._buffer[: len(self._buffer) - _MAX_BUFFER]
        return results

    def _next(self) -> tuple[Result | None, int]:
        """The next result and how many buffered bytes it used; (None, 0) to wait for more."""
        buf = self._buffer
        start = buf.find(START_CODE)
        if start < 0:
            # Keep a trailing 00: it may be the first byte of the next start code.
            keep = 1 if buf[-1:] == b"\x00" else 0
            return None, len(buf) - keep
        if start > 0:
            return None, start  # noise and preambles before the start code
        head = bytes(buf[2:4])
        if len(head) < 2:
            return None, 0
        if head == b"\x00\xff":
            return Ack(), 4 + _postamble_len(buf, 4)
        if head == b"\xff\x00":
            return Nack(), 4 + _postamble_len(buf, 4)
        if head == b"\xff\xff":
            if len(buf) < 7:
                return None, 0
            length_bytes = bytes(buf[4:6])
            if (sum(length_bytes) + buf[6]) & 0xFF:
                return Dropped(Rejected.LENGTH_CHECKSUM), 2
            length, body_at = int.from_bytes(length_bytes, "big"), 7
        else:
            if (head[0] + head[1]) & 0xFF:
                return Dropped(Rejected.LENGTH_CHECKSUM), 2
            length, body_at = head[0], 4
        if not 1 <= length <= MAX_DATA_BYTES:
            return Dropped(Rejected.LENGTH), 2
        end = body_at + length + 2  # data, DCS, postamble
        if len(buf) < end:
            return None, 0
        body = bytes(buf[body_at : body_at + length])
        if (sum(body) + buf[body_at + length]) & 0xFF:
            return Dropped(Rejected.DATA_CHECKSUM), 2
        if buf[end - 1] != 0:
            return Dropped(Rejected.POSTAMBLE), 2
        if body == b"\x7f":
            return ErrorFrame(), end
        return Frame(body[0], body[1:]), end


def _postamble_len(buf: bytearray, at: int) -> int:
    return 1 if buf[at : at + 1] == b"\x00" else 0
