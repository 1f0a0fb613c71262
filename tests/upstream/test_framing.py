"""Framing: 2-byte big-endian length prefix, split reads, bounds, torn frames, real sockets."""

from __future__ import annotations

import asyncio
from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pitill.errors import ProtocolError
from pitill.upstream.connect import close_stream
from pitill.upstream.framing import MAX_FRAME, frame, read_frame, write_frame

payloads = st.lists(st.binary(min_size=1, max_size=300), min_size=1, max_size=5)


def _read_all(chunks: list[bytes], max_len: int = MAX_FRAME) -> list[bytes | None]:
    """Feed `chunks` to a real StreamReader one by one, then EOF; read frames until None."""

    async def scenario() -> list[bytes | None]:
        reader = asyncio.StreamReader()

        async def feed() -> None:
            for chunk in chunks:
                reader.feed_data(chunk)
                await asyncio.sleep(0)  # let the reader see each piece alone
            reader.feed_eof()

        feeder = asyncio.create_task(feed())
        frames: list[bytes | None] = []
        while True:
            payload = await read_frame(reader, max_len)
            frames.append(payload)
            if payload is None:
                break
        await feeder
        return frames

    return asyncio.run(scenario())


@given(payloads=payloads, cuts=st.lists(st.integers(min_value=0, max_value=2000), max_size=8))
def test_frames_survive_any_split(payloads: list[bytes], cuts: list[int]) -> None:
    stream = b"".join(frame(p) for p in payloads)
    points = sorted({0, len(stream), *(c % (len(stream) + 1) for c in cuts)})
    chunks = [stream[a:b] for a, b in pairwise(points) if b > a]
    assert _read_all(chunks) == [*payloads, None]


def test_prefix_is_big_endian() -> None:
    assert frame(b"x" * 258)[:2] == b"\x01\x02"


def test_byte_by_byte() -> None:
    stream = frame(b"hello") + frame(b"world")
    assert _read_all([bytes([b]) for b in stream]) == [b"hello", b"world", None]


@pytest.mark.parametrize(
    ("chunks", "message"),
    [
        ([b"\x00\x00"], "outside"),  # zero length
        ([b"\x10\x00" + b"x" * 10], "outside"),  # 4096 > max_len 100
        ([b"\x00"], "length prefix"),  # EOF inside the prefix
        ([b"\x00\x05abc"], "3 of 5"),  # EOF inside the payload
    ],
)
def test_bad_streams_raise(chunks: list[bytes], message: str) -> None:
    with pytest.raises(ProtocolError, match=message):
        _read_all(chunks, max_len=100)


def test_frame_refuses_empty_and_oversize_payloads() -> None:
    with pytest.raises(ProtocolError):
        frame(b"")
    with pytest.raises(ProtocolError):
        frame(b"x" * 11, max_len=10)
    with pytest.raises(ProtocolError, match="65535"):
        frame(b"x" * 70_000, max_len=100_000)


def test_split_writes_over_loopback() -> None:
    """A peer that dribbles frames out in pieces over a real TCP connection."""
    payloads = [b"0800" + b"1" * 50, b"0210" + b"2" * 120, b"z"]
    stream = b"".join(frame(p) for p in payloads)

    async def scenario() -> list[bytes | None]:
        async def dribble(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            for i in range(0, len(stream), 7):
                writer.write(stream[i : i + 7])
                await writer.drain()
                await asyncio.sleep(0.001)
            writer.close()

        server = await asyncio.start_server(dribble, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            got = [await read_frame(reader) for _ in range(len(payloads) + 1)]
            await close_stream(writer)
        return got

    assert asyncio.run(scenario()) == [*payloads, None]


def test_write_frame_over_loopback() -> None:
    async def scenario() -> bytes | None:
        received: asyncio.Queue[bytes | None] = asyncio.Queue()

        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await received.put(await read_frame(reader))
            writer.close()

        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        async with server:
            _, writer = await asyncio.open_connection(
                "127.0.0.1", server.sockets[0].getsockname()[1]
            )
            await write_frame(writer, b"payload")
            got = await asyncio.wait_for(received.get(), 5)
            await close_stream(writer)
        return got

    assert asyncio.run(scenario()) == b"payload"
