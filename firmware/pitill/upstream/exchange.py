"""One request and its answer on an open stream: send a frame, then read frames until the one
whose MTI and STAN answer it. Strays (late or duplicate replies) and undecodable frames between
are skipped and counted, never mistaken for the answer.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter

from pitill.errors import ProtocolError
from pitill.upstream.failures import (
    LinkReason,
    OutcomeUnknown,
    UnreachableError,
    reason_for_os_error,
)
from pitill.upstream.framing import MAX_FRAME, read_frame, write_frame
from pitill.upstream.messages import Message, decode, encode, response_mti

log = logging.getLogger(__name__)


async def send_request(
    writer: asyncio.StreamWriter, request: Message, max_len: int = MAX_FRAME
) -> None:
    """Send `request`. A socket error here means the connection was already gone: not sent."""
    payload = encode(request)
    try:
        await write_frame(writer, payload, max_len)
    except OSError as exc:
        raise UnreachableError(
            reason_for_os_error(exc),
            f"{request['t']} not sent, the connection was lost: {exc.strerror or exc}",
        ) from None


async def await_response(
    reader: asyncio.StreamReader,
    request: Message,
    max_len: int = MAX_FRAME,
    counts: Counter[str] | None = None,
) -> Message:
    """The answer to `request` (already sent); OutcomeUnknown when the stream breaks first.

    No timeout here: the caller bounds the wait and maps it to OutcomeUnknown(TIMEOUT).
    """
    expected_mti = response_mti(request["t"])
    stan = request["11"]
    what = f"{request['t']} STAN {stan}"
    while True:
        try:
            payload = await read_frame(reader, max_len)
        except ProtocolError as exc:
            raise OutcomeUnknown(LinkReason.PROTOCOL, f"{what}: unreadable stream: {exc}") from None
        except OSError as exc:
            raise OutcomeUnknown(
                reason_for_os_error(exc), f"{what}: connection lost before the answer: {exc}"
            ) from None
        if payload is None:
            raise OutcomeUnknown(LinkReason.RESET, f"{what}: host closed before answering")
        try:
            message = decode(payload)
        except ProtocolError as exc:
            _count(counts, "garbage")
            log.warning("dropped an undecodable frame while awaiting %s: %s", what, exc)
            continue
        if message.get("t") == expected_mti and message.get("11") == stan:
            return message
        _count(counts, "stray")
        log.info("ignored stray %s STAN %s awaiting %s", message.get("t"), message.get("11"), what)


def _count(counts: Counter[str] | None, key: str) -> None:
    if counts is not None:
        counts[key] += 1
