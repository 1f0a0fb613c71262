"""The host's answer is the answer to this request: a lying or confused host on 127.0.0.1.

A scripted host answers each request as told; the real UpstreamClient talks to it over TCP.
Anything that does not match the request in flight (STAN, MTI pair, terminal, amount,
transmission time) is dropped and the request stays unanswered (OutcomeUnknown: the sale is
reversed and decided offline); frames that arrived before the request are discarded.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest
from upstream_helpers import LOCAL_DATETIME, TERMINAL, forward_item, sale

from pitill.sim.resolver import SIM_HOST, SimResolver
from pitill.upstream import exchange
from pitill.upstream.client import UpstreamClient
from pitill.upstream.exchange import Drop, DropLog
from pitill.upstream.failures import LinkReason, OutcomeUnknown
from pitill.upstream.framing import frame, read_frame
from pitill.upstream.messages import Message, build_response, build_sale_request, decode, encode

WAIT_S = 0.3  # how long the client waits for an answer in these tests (no assert on time)

Responder = Callable[[Message, int], list[Message | bytes]]
"""(request, how many requests came before it) -> what the host sends back, in one write."""


def truthful(request: Message, _n: int) -> list[Message | bytes]:
    return [build_response(request, "00", auth_code="A1B2C3")]


@asynccontextmanager
async def lying_host(responder: Responder) -> AsyncIterator[tuple[UpstreamClient, list[str]]]:
    """A host on loopback answering as `responder` says, and a client dialling it."""
    seen = 0

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal seen
        try:
            while (payload := await read_frame(reader)) is not None:
                replies = responder(decode(payload), seen)
                seen += 1
                writer.write(
                    b"".join(r if isinstance(r, bytes) else frame(encode(r)) for r in replies)
                )
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    signals: list[str] = []
    client = UpstreamClient(
        SIM_HOST,
        server.sockets[0].getsockname()[1],
        SimResolver(),
        TERMINAL,
        request_timeout_s=WAIT_S,
        on_signal=lambda reason: signals.append(str(reason)),
    )
    try:
        async with server:
            yield client, signals
    finally:
        await client.close()


def answer_with(**changed: str) -> Responder:
    """Answers every request approved, but with some fields changed (a field "t": another MTI)."""

    def responder(request: Message, _n: int) -> list[Message | bytes]:
        return [build_response(request, "00", auth_code="A1B2C3") | changed]

    return responder


@pytest.mark.parametrize(
    ("changed", "drop"),
    [
        ({"11": "000002"}, Drop.OTHER_STAN),  # an answer for a STAN not yet sent
        ({"4": "000000001251"}, Drop.OTHER_AMOUNT),  # the request was for 12.50
        ({"41": "OTHER001"}, Drop.OTHER_TERMINAL),
        ({"7": "0101000000"}, Drop.OTHER_TIME),
        ({"t": "0230"}, Drop.WRONG_MTI),  # an advice's answer for the sale's STAN
    ],
)
def test_an_answer_that_does_not_match_the_sale_leaves_it_unanswered(
    changed: dict[str, str], drop: Drop
) -> None:
    async def scenario() -> tuple[OutcomeUnknown, Counter[str], list[str]]:
        async with lying_host(answer_with(**changed)) as (client, signals):
            with pytest.raises(OutcomeUnknown) as caught:
                await client.authorize(sale(1250, seq=1), LOCAL_DATETIME)
            return caught.value, client.counts, signals

    error, counts, signals = asyncio.run(scenario())
    assert error.reason is LinkReason.TIMEOUT  # the timeout path: reverse, decide offline
    assert "1 frame(s) that did not answer it dropped" in str(error)
    assert counts[drop.value] == 1
    assert signals == ["TIMEOUT"]  # the monitor hears of a failed request


def test_an_advice_answered_for_another_amount_is_unanswered() -> None:
    async def scenario() -> Counter[str]:
        async with lying_host(answer_with(**{"4": "000000000001"})) as (client, _):
            with pytest.raises(OutcomeUnknown):
                await client.send_advice(forward_item(amount_minor=900))
            return client.counts

    assert asyncio.run(scenario())[Drop.OTHER_AMOUNT.value] == 1


def test_the_right_answer_after_a_wrong_one_is_taken() -> None:
    """A dropped frame does not end the wait: the real answer, when it comes, is the answer."""

    def responder(request: Message, _n: int) -> list[Message | bytes]:
        forged = build_response(request, "00", auth_code="FORGED") | {"41": "OTHER001"}
        return [forged, build_response(request, "51")]

    async def scenario() -> tuple[str, str, Counter[str]]:
        async with lying_host(responder) as (client, _):
            answer = await client.authorize(sale(1250, seq=1), LOCAL_DATETIME)
            return answer.response_code, answer.auth_code, client.counts

    code, auth, counts = asyncio.run(scenario())
    assert (code, auth, counts[Drop.OTHER_TERMINAL.value]) == ("51", "", 1)


def test_a_stale_frame_queued_before_the_request_is_discarded() -> None:
    """With its answer to sale 1 the host sends an approval of sale 2, before sale 2 is asked.
    Sale 2's real answer is a decline: the guessed approval must never be taken for it."""
    second = build_sale_request(sale(1250, seq=2), LOCAL_DATETIME, TERMINAL)

    def responder(request: Message, n: int) -> list[Message | bytes]:
        if n == 0:
            return [build_response(request, "00"), build_response(second, "00", "GUESS1")]
        return [build_response(request, "05")]

    async def scenario() -> tuple[list[str], Counter[str]]:
        async with lying_host(responder) as (client, _):
            first = await client.authorize(sale(1250, seq=1), LOCAL_DATETIME)
            answer = await client.authorize(sale(1250, seq=2), LOCAL_DATETIME)
            return [first.response_code, answer.response_code, answer.auth_code], client.counts

    codes, counts = asyncio.run(scenario())
    assert codes == ["00", "05", ""]
    assert counts[Drop.STALE.value] == 1 and counts["connects"] == 1


def test_a_torn_stale_frame_means_a_fresh_connection() -> None:
    """Leftovers that end inside a frame: the stream is out of step, so it is not used again."""

    def responder(request: Message, n: int) -> list[Message | bytes]:
        extra = [b"\x00\x40half a frame"] if n == 0 else []
        return [build_response(request, "00"), *extra]

    async def scenario() -> tuple[list[str], int]:
        async with lying_host(responder) as (client, _):
            codes = [await client.echo(), await client.echo()]
            return codes, client.counts["connects"]

    assert asyncio.run(scenario()) == (["00", "00"], 2)


def test_auth_code_with_control_characters_reaches_no_one_unprintable(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)

    async def scenario() -> str:
        async with lying_host(answer_with(**{"38": "\x1b[2J\x07\r"})) as (client, _):
            answer = await client.authorize(sale(1250, seq=1), LOCAL_DATETIME)
            return answer.auth_code

    assert asyncio.run(scenario()) == "[2J"
    assert not any("\x1b" in record.getMessage() for record in caplog.records)


def test_a_flood_of_wrong_frames_is_one_log_line(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(exchange, "DROPS", DropLog())  # a fresh budget, as at start

    def responder(request: Message, _n: int) -> list[Message | bytes]:
        return [build_response(request, "00") | {"11": f"{900_000 + i:06d}"} for i in range(200)]

    async def scenario() -> Counter[str]:
        async with lying_host(responder) as (client, _):
            with pytest.raises(OutcomeUnknown):
                await client.echo()
            return client.counts

    caplog.set_level(logging.INFO, logger="pitill.upstream.exchange")
    counts = asyncio.run(scenario())
    assert counts[Drop.OTHER_STAN.value] == 200
    lines = [r for r in caplog.records if r.name == "pitill.upstream.exchange"]
    assert len(lines) == 1 and "other STAN" in lines[0].getMessage()


def test_drop_log_says_how_many_were_dropped_between_lines(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [0.0]
    drops = DropLog(interval_s=60.0, clock=lambda: now[0], logger=logging.getLogger("t.drops"))
    caplog.set_level(logging.INFO, logger="t.drops")
    counts: Counter[str] = Counter()
    for second in range(150):
        now[0] = float(second)
        drops.dropped(Drop.OTHER_AMOUNT, "0210 STAN 000001", counts)
        drops.dropped(Drop.OTHER_TERMINAL, "0210 STAN 000001", counts)
    lines = [r.getMessage() for r in caplog.records if r.name == "t.drops"]
    amount_lines = [line for line in lines if "other amount" in line]
    assert len(lines) == 6 and len(amount_lines) == 3  # at 0, 60 and 120 s, for each kind
    assert "(60 dropped since the last report)" in amount_lines[1]
    assert counts == Counter({"other amount": 150, "other terminal": 150})
    assert drops.total[Drop.OTHER_AMOUNT] == 150
