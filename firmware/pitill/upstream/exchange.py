"""One request and its answer on an open stream.

The host's answer is the answer to this request, or it is no answer at all:
- Before a request is sent, frames already received (left over from an earlier exchange, or an
  "answer" sent ahead of its request) are discarded (discard_stale).
- After it is sent, frames are read until one matches it: the response MTI of its MTI, its STAN
  (field 11) and terminal id (41), and the amount (4) and transmission date/time (7) it carried.
- Anything else (an answer to another STAN, a wrong MTI, another terminal, another amount or
  time, an undecodable frame) is dropped and counted by kind; the request stays unanswered, so the
  caller's timeout turns it into OutcomeUnknown (a sale is reversed and decided offline).
Drops are logged once per kind and then at most once a minute per kind, with how many there were:
a host sending thousands of bad frames cannot flood the log. Text from the host is shown in a log
only through messages.host_text (printable ASCII).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable
from enum import StrEnum

from pitill.errors import ProtocolError
from pitill.upstream.failures import (
    LinkReason,
    OutcomeUnknown,
    UnreachableError,
    reason_for_os_error,
)
from pitill.upstream.framing import MAX_FRAME, read_frame, write_frame
from pitill.upstream.messages import Message, decode, encode, host_text, response_mti
from pitill.upstream.wireformat import DEFAULT_WIRE, WireFormat

log = logging.getLogger(__name__)

DROP_LOG_INTERVAL_S = 60.0  # after its first line, a kind of drop is logged at most this often
_STALE_READS = 16  # bound on the reads that empty the buffer before a request
_STALE_POLLS = 3  # loop turns given to bytes already on the socket to reach the reader


class Drop(StrEnum):
    """Why a frame read while awaiting an answer was not the answer."""

    GARBAGE = "garbage"  # not an ISO 8583 message we can decode
    STALE = "stale"  # received before the request was sent
    OTHER_STAN = "other STAN"  # an answer to another request (late, duplicated, or not yet sent)
    WRONG_MTI = "wrong MTI"  # this STAN, but not the response MTI of the request's MTI
    OTHER_TERMINAL = "other terminal"  # field 41 is not the request's
    OTHER_AMOUNT = "other amount"  # field 4 is not the request's
    OTHER_TIME = "other transmission time"  # field 7 is not the request's


# Fields an answer must echo unchanged when its request carried them.
_ECHOED = (("41", Drop.OTHER_TERMINAL), ("4", Drop.OTHER_AMOUNT), ("7", Drop.OTHER_TIME))


def mismatch(request: Message, answer: Message) -> Drop | None:
    """None when `answer` answers `request`, else the first reason it does not."""
    if answer.get("11") != request["11"]:
        return Drop.OTHER_STAN
    if answer.get("t") != response_mti(request["t"]):
        return Drop.WRONG_MTI
    for key, drop in _ECHOED:
        if key in request and answer.get(key) != request[key]:
            return drop
    return None


class DropLog:
    """Counts dropped frames by kind; logs the first of each kind, then at most one line per kind
    per interval_s saying how many were dropped since the last line."""

    def __init__(
        self,
        interval_s: float = DROP_LOG_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
        logger: logging.Logger = log,
    ) -> None:
        self.interval_s = interval_s
        self._clock = clock
        self._log = logger
        self.total: Counter[Drop] = Counter()
        self._unlogged: Counter[Drop] = Counter()
        self._logged_at: dict[Drop, float] = {}

    def dropped(self, kind: Drop, detail: str, counts: Counter[str] | None = None) -> None:
        self.total[kind] += 1
        if counts is not None:
            counts[kind.value] += 1
        self._unlogged[kind] += 1
        now = self._clock()
        last = self._logged_at.get(kind)
        if last is not None and now - last < self.interval_s:
            return
        count, self._unlogged[kind] = self._unlogged[kind], 0
        self._logged_at[kind] = now
        more = f" ({count} dropped since the last report)" if last is not None else ""
        self._log.warning("dropped a frame from the host: %s: %s%s", kind.value, detail, more)


DROPS = DropLog()  # one for the process: the client and the monitor share the budget


def describe(message: Message) -> str:
    """A frame in a log line: its MTI, STAN and terminal id, printable only."""
    return (
        f"{host_text(message, 't') or '?'} STAN {host_text(message, '11') or '?'}"
        f" terminal {host_text(message, '41')!r}"
    )


async def send_request(
    writer: asyncio.StreamWriter,
    request: Message,
    max_len: int = MAX_FRAME,
    wire: WireFormat = DEFAULT_WIRE,
) -> None:
    """Send `request`. A socket error here means the connection was already gone: not sent."""
    payload = encode(request, wire)
    try:
        await write_frame(writer, payload, max_len, wire)
    except OSError as exc:
        raise UnreachableError(
            reason_for_os_error(exc),
            f"{request['t']} not sent, the connection was lost: {exc.strerror or exc}",
        ) from None


async def _buffered(reader: asyncio.StreamReader, max_len: int) -> bytes | None:
    """What the reader holds now (after a few loop turns for bytes already on the socket),
    without waiting for more: b"" when nothing, None when the stream ended or failed."""
    pending = asyncio.ensure_future(reader.read(max_len))
    try:
        for _ in range(_STALE_POLLS):
            await asyncio.sleep(0)
            if pending.done():
                break
    finally:
        if not pending.done():
            pending.cancel()  # nothing came (or we are cancelled): read() consumed nothing
    if not pending.done():
        # Wait for the read to end before the stream is used again. asyncio.wait neither raises
        # the read's CancelledError nor swallows our own: a caller cancelling us still stops us.
        await asyncio.wait({pending})
    if pending.cancelled():
        return b""
    if pending.exception() is not None:
        return None
    data = pending.result()
    return data or None  # b"" from read() is the end of the stream


async def discard_stale(
    reader: asyncio.StreamReader,
    max_len: int = MAX_FRAME,
    counts: Counter[str] | None = None,
    drops: DropLog | None = None,
    wire: WireFormat = DEFAULT_WIRE,
) -> bool:
    """Drop every frame received before a request is sent; False when the stream cannot be used
    for the next request (it ended, failed, or what was buffered ends inside a frame)."""
    drops = drops or DROPS
    data = b""
    for _ in range(_STALE_READS):
        chunk = await _buffered(reader, max_len + wire.prefix_size)
        if chunk is None:
            return False
        if not chunk:
            break
        data += chunk
    offset, size = 0, wire.prefix_size
    while offset + size <= len(data):
        try:
            length = wire.unpack_length(data[offset : offset + size])
        except ProtocolError:
            return False  # not a prefix: the stream is out of step
        end = offset + size + length
        if end > len(data):
            break
        try:
            what = describe(decode(data[offset + size : end], wire))
        except ProtocolError:
            what = f"{length} undecodable bytes"
        drops.dropped(Drop.STALE, f"{what}, received before the request was sent", counts)
        offset = end
    return offset == len(data)


async def await_response(
    reader: asyncio.StreamReader,
    request: Message,
    max_len: int = MAX_FRAME,
    counts: Counter[str] | None = None,
    drops: DropLog | None = None,
    wire: WireFormat = DEFAULT_WIRE,
) -> Message:
    """The answer to `request` (already sent); OutcomeUnknown when the stream breaks first.

    No timeout here: the caller bounds the wait and maps it to OutcomeUnknown(TIMEOUT).
    """
    drops = drops or DROPS
    what = f"{request['t']} STAN {request['11']}"
    while True:
        try:
            payload = await read_frame(reader, max_len, wire)
        except ProtocolError as exc:
            raise OutcomeUnknown(LinkReason.PROTOCOL, f"{what}: unreadable stream: {exc}") from None
        except OSError as exc:
            raise OutcomeUnknown(
                reason_for_os_error(exc), f"{what}: connection lost before the answer: {exc}"
            ) from None
        if payload is None:
            raise OutcomeUnknown(LinkReason.RESET, f"{what}: host closed before answering")
        try:
            message = decode(payload, wire)
        except ProtocolError as exc:
            drops.dropped(Drop.GARBAGE, f"awaiting {what}: {exc}", counts)
            continue
        drop = mismatch(request, message)
        if drop is None:
            return message
        drops.dropped(drop, f"{describe(message)} awaiting {what}", counts)
