"""await_response: strays and garbage skipped and counted; a broken stream is OutcomeUnknown."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable

import pytest

from pitill.upstream.connect import close_stream
from pitill.upstream.exchange import await_response, discard_stale, send_request
from pitill.upstream.failures import LinkReason, OutcomeUnknown
from pitill.upstream.framing import frame, read_frame
from pitill.upstream.messages import Message, build_echo, build_response, decode, encode

Behaviour = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
ECHO = build_echo(7, "1128101530")


async def _exchange(behaviour: Behaviour, counts: Counter[str]) -> Message:
    server = await asyncio.start_server(behaviour, "127.0.0.1", 0)
    async with server:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", server.sockets[0].getsockname()[1]
        )
        try:
            await send_request(writer, ECHO)
            async with asyncio.timeout(5):
                return await await_response(reader, ECHO, counts=counts)
        finally:
            await close_stream(writer)


def test_skips_strays_and_garbage() -> None:
    async def noisy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = decode(await read_frame(reader) or b"")
        stale = build_response(build_echo(6, "1128101529"), "00")  # a late answer to STAN 6
        writer.write(frame(encode(stale)) + frame(b"not iso 8583"))
        writer.write(frame(encode(build_response(request, "00"))) * 2)  # answer, duplicated
        await writer.drain()
        await read_frame(reader)  # until the client hangs up
        writer.close()

    counts: Counter[str] = Counter()
    answer = asyncio.run(_exchange(noisy, counts))
    assert (answer["t"], answer["11"], answer["39"]) == ("0810", "000007", "00")
    assert counts == Counter({"other STAN": 1, "garbage": 1})


def test_close_before_the_answer_is_outcome_unknown() -> None:
    async def rude(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_frame(reader)
        writer.close()

    with pytest.raises(OutcomeUnknown) as caught:
        asyncio.run(_exchange(rude, Counter()))
    assert caught.value.reason is LinkReason.RESET


def test_torn_frame_is_outcome_unknown() -> None:
    async def torn(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_frame(reader)
        writer.write(b"\x00\x40half")
        await writer.drain()
        writer.close()

    with pytest.raises(OutcomeUnknown) as caught:
        asyncio.run(_exchange(torn, Counter()))
    assert caught.value.reason is LinkReason.PROTOCOL


@pytest.mark.parametrize("turns", range(8))
def test_discarding_leftovers_never_swallows_a_cancel(turns: int) -> None:
    """Cancelled at any loop turn while it looks for leftovers, the caller is cancelled (a
    monitor being stopped must stop), and the stream is left usable."""

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_frame(reader)  # until the client hangs up
        writer.close()

    async def scenario() -> tuple[bool, bool]:
        server = await asyncio.start_server(silent, "127.0.0.1", 0)
        async with server:
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", server.sockets[0].getsockname()[1]
            )
            try:
                task = asyncio.ensure_future(discard_stale(reader))
                for _ in range(turns):
                    await asyncio.sleep(0)
                done_before = task.done()
                task.cancel()
                await asyncio.wait({task})
                for _ in range(3):  # the cancelled read winds down
                    await asyncio.sleep(0)
                return task.cancelled() or done_before, await discard_stale(reader)
            finally:
                await close_stream(writer)

    cancelled_or_done_before, usable = asyncio.run(scenario())
    assert cancelled_or_done_before
    assert usable  # no read left pending on the stream
