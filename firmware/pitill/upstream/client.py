"""UpstreamClient: the terminal's one persistent TCP connection to the authorization host.

One request in flight at a time. The connection is opened on first use and after any failure;
after a failure it is dropped, so a late answer can never be read as the answer to a later request.

What the caller learns from an exception:
- UnreachableError (reason DNS, REFUSED, TIMEOUT, RESET, UNREACHABLE): nothing was sent, the sale
  is not authorized and nothing needs reversing.
- OutcomeUnknown (an UpstreamTimeout; reason TIMEOUT, RESET, PROTOCOL): the request went out and
  no usable answer came. The host may have approved it: reverse it.
Each failure, and each transient response code, is also reported to `on_signal`, the monitor's
passive input.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime

from pitill.config import TerminalConfig, UpstreamConfig
from pitill.core.txn import Txn
from pitill.errors import ProtocolError
from pitill.journal.model import ForwardItem, ForwardKind
from pitill.upstream.connect import close_stream, open_stream
from pitill.upstream.exchange import await_response, send_request
from pitill.upstream.failures import LinkReason, OutcomeUnknown, UnreachableError
from pitill.upstream.framing import MAX_FRAME
from pitill.upstream.messages import (
    AuthAnswer,
    Message,
    ResponseClass,
    build_advice,
    build_echo,
    build_reversal,
    build_sale_request,
    parse_answer,
    transmission_stamp,
)
from pitill.upstream.resolver import Resolver

log = logging.getLogger(__name__)

SignalHook = Callable[[LinkReason], None]
"""Told why a request failed (or that the host answered with a retry code)."""


def _utc_now() -> datetime:
    return datetime.now(UTC)


class UpstreamClient:
    def __init__(
        self,
        host: str,
        port: int,
        resolver: Resolver,
        terminal: TerminalConfig,
        *,
        request_timeout_s: float = 3.0,
        connect_timeout_s: float = 3.0,
        max_frame: int = MAX_FRAME,
        on_signal: SignalHook | None = None,
        wall_clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self.host = host
        self.port = port
        self._resolver = resolver
        self._terminal = terminal
        self._request_timeout_s = request_timeout_s
        self._connect_timeout_s = connect_timeout_s
        self._max_frame = max_frame
        self.on_signal = on_signal
        self._wall_clock = wall_clock
        self._lock = asyncio.Lock()
        self._streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        self._echo_stans = itertools.cycle(range(1, 1_000_000))
        self.counts: Counter[str] = Counter()  # connects, stray and garbage frames

    @classmethod
    def from_config(
        cls,
        upstream: UpstreamConfig,
        terminal: TerminalConfig,
        resolver: Resolver,
        on_signal: SignalHook | None = None,
    ) -> UpstreamClient:
        return cls(
            upstream.host,
            upstream.port,
            resolver,
            terminal,
            request_timeout_s=upstream.request_timeout_s,
            connect_timeout_s=upstream.request_timeout_s,
            on_signal=on_signal,
        )

    @property
    def connected(self) -> bool:
        return self._streams is not None and _usable(*self._streams)

    async def exchange(self, message: Message, timeout_s: float | None = None) -> Message:
        """Send `message` and return the response with its MTI and STAN.

        timeout_s bounds the wait for the answer once sent (connecting has its own bound).
        """
        wait_s = self._request_timeout_s if timeout_s is None else timeout_s
        async with self._lock:
            try:
                reader, writer = await self._connection()
                await send_request(writer, message, self._max_frame)
                try:
                    async with asyncio.timeout(wait_s):
                        return await await_response(reader, message, self._max_frame, self.counts)
                except OutcomeUnknown:
                    raise  # is a TimeoutError too: keep its own reason
                except TimeoutError:
                    raise OutcomeUnknown(
                        LinkReason.TIMEOUT,
                        f"{message['t']} STAN {message['11']}: no answer within {wait_s:g} s",
                    ) from None
            except (UnreachableError, OutcomeUnknown) as exc:
                await self._drop()
                self._signal(exc.reason)
                raise

    async def authorize(
        self, txn: Txn, local_datetime: str, timeout_s: float | None = None
    ) -> AuthAnswer:
        """0200 for an online card sale; the host's answer, approved or declined."""
        request = build_sale_request(txn, local_datetime, self._terminal)
        return await self._answered(request, timeout_s)

    async def send_advice(self, item: ForwardItem, timeout_s: float | None = None) -> str:
        """0220/0221 for an offline sale; the host's response code."""
        answer = await self._answered(build_advice(item, self._terminal), timeout_s)
        return answer.response_code

    async def send_reversal(self, item: ForwardItem, timeout_s: float | None = None) -> str:
        """0420/0421 reversing a 0200 whose outcome was unknown; the host's response code."""
        answer = await self._answered(build_reversal(item, self._terminal), timeout_s)
        return answer.response_code

    async def forward(self, item: ForwardItem, timeout_s: float | None = None) -> str:
        """The advice or reversal for a forwarder work item; the host's response code."""
        if item.kind is ForwardKind.REVERSAL:
            return await self.send_reversal(item, timeout_s)
        return await self.send_advice(item, timeout_s)

    async def echo(self, timeout_s: float | None = None) -> str:
        """0800 echo test on the persistent connection; the host's response code."""
        stamp = transmission_stamp(self._wall_clock())
        request = build_echo(next(self._echo_stans), stamp, self._terminal.terminal_id)
        answer = await self._answered(request, timeout_s)
        return answer.response_code

    async def close(self) -> None:
        async with self._lock:
            await self._drop()

    # --- internals ---------------------------------------------------------------------------

    async def _answered(self, request: Message, timeout_s: float | None) -> AuthAnswer:
        response = await self.exchange(request, timeout_s)
        try:
            answer = parse_answer(response)
        except ProtocolError as exc:  # sent, and what came back cannot be used
            self._signal(LinkReason.PROTOCOL)
            raise OutcomeUnknown(LinkReason.PROTOCOL, f"unusable answer: {exc}") from None
        if answer.response_class is ResponseClass.RETRY:
            self._signal(LinkReason.RETRY)
        return answer

    async def _connection(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._streams is not None and not _usable(*self._streams):
            await self._drop()  # the host closed it while we were idle
        if self._streams is None:
            self._streams = await open_stream(
                self._resolver, self.host, self.port, self._connect_timeout_s
            )
            self.counts["connects"] += 1
        return self._streams

    async def _drop(self) -> None:
        streams, self._streams = self._streams, None
        if streams is None:
            return
        await close_stream(streams[1])

    def _signal(self, reason: LinkReason) -> None:
        if self.on_signal is not None:
            self.on_signal(reason)


def _usable(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
    return not (writer.is_closing() or reader.at_eof() or reader.exception() is not None)
